"""Checkers for chapter 12, "Across devices".

Single-process exercises on the two facts the chapter builds on: the per-shard
summaries (m_r, S_r) combine into the global log-sum-exp, and with the global lse a
shard's gradient needs nothing from the other shards. NumPy only.

    from celib.exercises import ch12
    ch12.check_combine_lse(my_combine_lse)

Each checker calls the learner's function positionally and returns a
:class:`celib.exercises.CheckResult`, truthy only on a pass; ``WRONG_ANSWERS``
and ``MORE_WRONG_ANSWERS`` hold typical mistakes the checkers reject.
"""

from __future__ import annotations

import numpy as np

from .. import reference
from ._core import Case, exercise_title, first_wrong_answers, run_checker

__all__ = ["MORE_WRONG_ANSWERS", "WRONG_ANSWERS", "check_combine_lse", "check_shard_grad"]


def _rng():
    return np.random.default_rng(12)


def _summaries(x, bounds):
    """(maxes, sumexps), each (R, N): m_r = max of the shard, S_r = sum e^(x - m_r)."""
    maxes, sums = [], []
    for lo, hi in bounds:
        part = x[:, lo:hi]
        if hi == lo:
            maxes.append(np.full(len(x), -np.inf))
            sums.append(np.zeros(len(x)))
            continue
        m = part.max(axis=1)
        maxes.append(m)
        sums.append(np.exp(part - m[:, None]).sum(axis=1))
    return np.array(maxes), np.array(sums)


# ---------------------------------------------------------------------------
# exercise 1: combine per-shard (max, sum of exponentials) into the global lse
# ---------------------------------------------------------------------------


def _combine_reference(maxes, sumexps):
    m = maxes.max(axis=0)
    safe = np.where(np.isfinite(m), m, 0.0)
    with np.errstate(divide="ignore"):
        return safe + np.log((sumexps * np.exp(maxes - safe)).sum(axis=0))


def _combine_cases():
    r = _rng()
    x = r.normal(size=(4, 10)) * 3
    big = r.normal(size=(3, 9)) * 3 + np.array([[0.0] * 3 + [900.0] * 3 + [-900.0] * 3])
    return [
        Case(
            {"maxes": np.array([[1.0], [2.0]]), "sumexps": np.array([[1.5], [1.0]])},
            {"en": "one row, two shards", "zh": "一列，兩個分片"},
        ),
        Case(
            dict(zip(("maxes", "sumexps"), _summaries(x, [(0, 5), (5, 10)]))),
            {"en": "two even shards", "zh": "兩個等寬分片"},
        ),
        Case(
            dict(zip(("maxes", "sumexps"), _summaries(x, [(0, 2), (2, 9), (9, 10)]))),
            {"en": "three uneven shards", "zh": "三個寬度不等的分片"},
        ),
        Case(
            dict(zip(("maxes", "sumexps"), _summaries(big, [(0, 3), (3, 6), (6, 9)]))),
            {"en": "shards 900 apart (e^900 overflows)", "zh": "相差 900 的分片（e^900 會溢位）"},
        ),
        Case(
            dict(zip(("maxes", "sumexps"), _summaries(x, [(0, 6), (6, 6), (6, 10)]))),
            {"en": "an empty shard (m = -inf, S = 0)", "zh": "空的分片（m = -inf，S = 0）"},
        ),
    ]


def check_combine_lse(fn, *, lang=None, quiet=False):
    """Check ``fn(maxes, sumexps)`` -> the (N,) global log-sum-exp.

    The reference is lse = m + log sum_r S_r e^(m_r - m) with m = max_r m_r
    (the online-softmax rule of chapter 9 across shards).

    Parameters
    ----------
    fn : callable
        The learner's ``my_combine_lse(maxes, sumexps)``; ``maxes`` and ``sumexps``
        are float64 arrays of shape (R, N): shard r's row maxima m_r and its sums
        S_r = sum_{c in r} e^(x_c - m_r); an empty shard has m_r = -inf and S_r = 0.
    lang : {'en', 'zh'}, optional
        Language of the report; defaults to the notebook's.
    quiet : bool
        Return the result without printing.

    Returns
    -------
    CheckResult
        Truthy only when every case matches (rtol 1e-6, atol 1e-9, float64).
    """
    return run_checker(
        exercise_title("12.1", "my_combine_lse"),
        fn,
        _combine_reference,
        _combine_cases(),
        lang=lang,
        quiet=quiet,
    )


# ---------------------------------------------------------------------------
# exercise 2: one shard's gradient from the global lse
# ---------------------------------------------------------------------------


def _shard_grad_reference(local_logits, target, lse, vocab_start):
    N, V_local = local_logits.shape
    g = np.exp(local_logits - lse[:, None]) / N
    rows = np.arange(N)
    mine = (target >= vocab_start) & (target < vocab_start + V_local)
    g[rows[mine], target[mine] - vocab_start] -= 1.0 / N
    return g


def _shard_grad_cases():
    r = _rng()
    x = r.normal(size=(6, 10)) * 2
    y = np.array([0, 3, 4, 5, 8, 9])
    lse = reference.logsumexp(x)

    def shard(lo, hi, label):
        return Case(
            {"local_logits": x[:, lo:hi].copy(), "target": y, "lse": lse, "vocab_start": lo}, label
        )

    big = np.array([[1000.0, 999.0, 0.0, -1000.0]])
    return [
        shard(0, 5, {"en": "the first of two shards", "zh": "兩個分片中的第一個"}),
        shard(5, 10, {"en": "the second of two shards", "zh": "兩個分片中的第二個"}),
        shard(4, 6, {"en": "a middle shard of width 2", "zh": "寬度為 2 的中間分片"}),
        shard(1, 3, {"en": "a shard owning none of the targets", "zh": "不含任何目標類別的分片"}),
        Case(
            {
                "local_logits": big[:, 1:3].copy(),
                "target": np.array([0]),
                "lse": reference.logsumexp(big),
                "vocab_start": 1,
            },
            {"en": "logits near 1000", "zh": "接近 1000 的 logits"},
        ),
    ]


def check_shard_grad(fn, *, lang=None, quiet=False):
    """Check ``fn(local_logits, target, lse, vocab_start)`` -> this shard's gradient.

    The mean cross-entropy over N rows, class-index targets (global indices), no
    weights; the reference is (e^(x - lse) - onehot(target - vocab_start)) / N on the
    shard's columns, the one-hot only in rows whose target the shard owns.

    Parameters
    ----------
    fn : callable
        The learner's ``my_shard_grad(local_logits, target, lse, vocab_start)``:
        ``local_logits`` float64 (N, V_local), the columns [vocab_start, vocab_start +
        V_local) of the logits; ``target`` int (N,), global class indices; ``lse``
        float64 (N,), the global log-sum-exp; ``vocab_start`` an int.
    lang : {'en', 'zh'}, optional
        Language of the report; defaults to the notebook's.
    quiet : bool
        Return the result without printing.

    Returns
    -------
    CheckResult
        Truthy only when every case matches (rtol 1e-6, atol 1e-9, float64).
    """
    return run_checker(
        exercise_title("12.2", "my_shard_grad"),
        fn,
        _shard_grad_reference,
        _shard_grad_cases(),
        lang=lang,
        quiet=quiet,
    )


# ---------------------------------------------------------------------------
# Typical wrong answers each checker must reject (tested in
# tests/test_exercises_ch12.py; the first is pasted into the stub by
# tests/test_run_all.py). Each source defines the learner's function.
# ---------------------------------------------------------------------------

MORE_WRONG_ANSWERS = {
    "my_combine_lse": {
        "forgets to rescale each S_r to the global maximum": (
            "def my_combine_lse(maxes, sumexps):\n"
            "    m = maxes.max(axis=0)\n"
            "    return m + np.log(sumexps.sum(axis=0))\n"
        ),
        "undoes the shift with raw exponentials (overflow)": (
            "def my_combine_lse(maxes, sumexps):\n"
            "    with np.errstate(over='ignore'):\n"
            "        return np.log((sumexps * np.exp(maxes)).sum(axis=0))\n"
        ),
        "mean of the shards' lse": (
            "def my_combine_lse(maxes, sumexps):\n"
            "    with np.errstate(divide='ignore', invalid='ignore'):\n"
            "        return (maxes + np.log(sumexps)).mean(axis=0)\n"
        ),
        "sum of the shards' lse": (
            "def my_combine_lse(maxes, sumexps):\n"
            "    with np.errstate(divide='ignore', invalid='ignore'):\n"
            "        return (maxes + np.log(sumexps)).sum(axis=0)\n"
        ),
        "float32": (
            "def my_combine_lse(maxes, sumexps):\n"
            "    m = maxes.max(axis=0)\n"
            "    with np.errstate(divide='ignore'):\n"
            "        lse = m + np.log((sumexps * np.exp(maxes - m)).sum(axis=0))\n"
            "    return lse.astype(np.float32)\n"
        ),
    },
    "my_shard_grad": {
        "a softmax over the shard's own columns": (
            "def my_shard_grad(local_logits, target, lse, vocab_start):\n"
            "    N = len(local_logits)\n"
            "    e = np.exp(local_logits - local_logits.max(axis=1, keepdims=True))\n"
            "    g = e / e.sum(axis=1, keepdims=True) / N\n"
            "    for n in range(N):\n"
            "        if vocab_start <= target[n] < vocab_start + local_logits.shape[1]:\n"
            "            g[n, target[n] - vocab_start] -= 1 / N\n"
            "    return g\n"
        ),
        "the one-hot of another shard's target wraps around (negative index)": (
            "def my_shard_grad(local_logits, target, lse, vocab_start):\n"
            "    N, V_local = local_logits.shape\n"
            "    g = np.exp(local_logits - lse[:, None]) / N\n"
            "    for n in range(N):\n"
            "        if target[n] - vocab_start < V_local:\n"
            "            g[n, target[n] - vocab_start] -= 1 / N\n"
            "    return g\n"
        ),
        "one-hot forgotten": (
            "def my_shard_grad(local_logits, target, lse, vocab_start):\n"
            "    return np.exp(local_logits - lse[:, None]) / len(local_logits)\n"
        ),
        "missing 1/N": (
            "def my_shard_grad(local_logits, target, lse, vocab_start):\n"
            "    N, V_local = local_logits.shape\n"
            "    g = np.exp(local_logits - lse[:, None])\n"
            "    mine = (target >= vocab_start) & (target < vocab_start + V_local)\n"
            "    g[np.arange(N)[mine], target[mine] - vocab_start] -= 1.0\n"
            "    return g\n"
        ),
        "sign error (one-hot - p)": (
            "def my_shard_grad(local_logits, target, lse, vocab_start):\n"
            "    N, V_local = local_logits.shape\n"
            "    g = -np.exp(local_logits - lse[:, None]) / N\n"
            "    mine = (target >= vocab_start) & (target < vocab_start + V_local)\n"
            "    g[np.arange(N)[mine], target[mine] - vocab_start] += 1.0 / N\n"
            "    return g\n"
        ),
        "float32": (
            "def my_shard_grad(local_logits, target, lse, vocab_start):\n"
            "    N, V_local = local_logits.shape\n"
            "    g = np.exp(local_logits - lse[:, None]) / N\n"
            "    mine = (target >= vocab_start) & (target < vocab_start + V_local)\n"
            "    g[np.arange(N)[mine], target[mine] - vocab_start] -= 1.0 / N\n"
            "    return g.astype(np.float32)\n"
        ),
    },
}

WRONG_ANSWERS = first_wrong_answers(MORE_WRONG_ANSWERS)
