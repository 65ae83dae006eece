"""Checkers for chapter 1's exercises: softmax, one row's cross-entropy, NLL.

Each ``check_*`` function calls the learner's function positionally on a list
of cases (edge cases included), compares it with celib's reference and prints,
in the notebook's language, a pass line, the first failing case or "not
attempted yet"; it returns a :class:`celib.exercises.CheckResult`, truthy only
on a pass. ``WRONG_ANSWERS`` and ``MORE_WRONG_ANSWERS`` hold typical mistakes
the checkers reject (tests/test_exercises_ch01.py, tests/test_run_all.py).
"""

from __future__ import annotations

import numpy as np

from .. import reference
from ._core import Case, exercise_title, first_wrong_answers, run_checker

__all__ = [
    "check_softmax",
    "check_cross_entropy",
    "check_nll_loss",
    "nll_loss",
    "WRONG_ANSWERS",
    "MORE_WRONG_ANSWERS",
]

RUNNING_EXAMPLE = np.array([2.0, 1.0, 0.1])


# ---------------------------------------------------------------------------
# Exercise 1.1: a stable softmax
# ---------------------------------------------------------------------------


def softmax_cases():
    """Cases for :func:`check_softmax`: kwargs ``x`` of shape (C,) or (N, C)."""
    rng = np.random.default_rng(101)
    return [
        Case(
            {"x": RUNNING_EXAMPLE.copy()},
            {"en": "the running example [2.0, 1.0, 0.1]", "zh": "本書範例 [2.0, 1.0, 0.1]"},
        ),
        Case(
            {"x": np.array([1000.0, 999.0, 998.1])},
            {"en": "large logits: exp would overflow", "zh": "很大的 logits：直接取 exp 會溢位"},
        ),
        Case(
            {"x": np.array([-1000.0, -1001.0, -1002.0])},
            {
                "en": "very negative logits: exp would underflow to 0",
                "zh": "很小的 logits：直接取 exp 會下溢成 0",
            },
        ),
        Case(
            {"x": np.zeros(4)},
            {
                "en": "equal logits give the uniform distribution",
                "zh": "logits 全部相等時應為均勻分布",
            },
        ),
        Case({"x": np.array([3.0])}, {"en": "a single class", "zh": "只有一個類別"}),
        Case(
            {"x": np.array([0.5, -np.inf, 1.5])},
            {"en": "a logit of -inf gets probability 0", "zh": "logit 為 -inf 的類別機率應為 0"},
        ),
        Case(
            {"x": rng.normal(scale=3.0, size=(5, 7))},
            {
                "en": "a batch of shape (5, 7): softmax along the last axis",
                "zh": "形狀 (5, 7) 的批次：沿最後一個軸計算",
            },
        ),
        Case(
            {"x": np.array([[1000.0, 999.0, 998.0], [0.0, -1.0, -2.0]])},
            {
                "en": "rows 1000 apart: shift each row by its own maximum",
                "zh": "相差 1000 的兩列：每一列要減去自己的最大值",
            },
        ),
    ]


def check_softmax(fn, *, lang=None, quiet=False):
    """Check ``fn(x)`` against :func:`celib.reference.softmax` along the last axis.

    Parameters
    ----------
    fn : callable
        The learner's ``my_softmax(x)``.
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
        exercise_title("1.1", "my_softmax"),
        fn,
        lambda x: reference.softmax(x, axis=-1),
        softmax_cases(),
        lang=lang,
        quiet=quiet,
    )


# ---------------------------------------------------------------------------
# Exercise 1.2: cross-entropy of one row
# ---------------------------------------------------------------------------


def cross_entropy_cases():
    """Cases for :func:`check_cross_entropy`: kwargs ``x`` (C,) and class index ``y``."""
    return [
        Case(
            {"x": RUNNING_EXAMPLE.copy(), "y": 0},
            {"en": "the running example, target 0", "zh": "本書範例，正確類別 0"},
        ),
        Case(
            {"x": RUNNING_EXAMPLE.copy(), "y": 2},
            {"en": "the running example, target 2", "zh": "本書範例，正確類別 2"},
        ),
        Case(
            {"x": np.array([1000.0, 0.0, -1000.0]), "y": 1},
            {"en": "large logits: the loss is 1000", "zh": "很大的 logits：損失為 1000"},
        ),
        Case(
            {"x": np.zeros(10), "y": 7},
            {"en": "equal logits: the loss is log C", "zh": "logits 全部相等：損失為 log C"},
        ),
        Case(
            {"x": np.array([4.0]), "y": 0},
            {"en": "a single class: the loss is 0", "zh": "只有一個類別：損失為 0"},
        ),
        Case(
            {"x": np.array([0.0, -np.inf, 0.0]), "y": 0},
            {"en": "a logit of -inf in another class", "zh": "其他類別的 logit 為 -inf"},
        ),
    ]


def check_cross_entropy(fn, *, lang=None, quiet=False):
    """Check ``fn(x, y)`` against :func:`celib.reference.cross_entropy` for one row.

    Parameters and return value as in :func:`check_softmax`.
    """
    return run_checker(
        exercise_title("1.2", "my_cross_entropy"),
        fn,
        lambda x, y: reference.cross_entropy(x, y),
        cross_entropy_cases(),
        lang=lang,
        quiet=quiet,
    )


# ---------------------------------------------------------------------------
# Exercise 1.3: the NLL step
# ---------------------------------------------------------------------------


def nll_loss(log_probs, target):
    """Mean negative log-likelihood, ``-mean_n log_probs[n, target[n]]``.

    The definition of ``torch.nn.functional.nll_loss`` with its default
    ``reduction='mean'`` and no class weights (PyTorch documentation,
    ``NLLLoss``). celib has no separate NLL: its ``cross_entropy`` fuses it.

    Parameters
    ----------
    log_probs : ndarray, float, shape (N, C)
    target : ndarray, int, shape (N,), each in [0, C)

    Returns
    -------
    float
    """
    log_probs = np.asarray(log_probs, dtype=np.float64)
    target = np.asarray(target)
    return -np.mean(log_probs[np.arange(len(target)), target])


def nll_cases():
    """Cases for :func:`check_nll_loss`: kwargs ``log_probs`` (N, C) and ``target`` (N,)."""
    rng = np.random.default_rng(103)
    with np.errstate(divide="ignore"):
        with_zero = np.log(np.array([[1.0, 0.0], [0.5, 0.5], [0.0, 1.0]]))
    return [
        Case(
            {
                "log_probs": reference.log_softmax(rng.normal(size=(4, 5))),
                "target": np.array([1, 0, 4, 1]),
            },
            {"en": "a batch of 4 rows, 5 classes", "zh": "4 列、5 個類別的批次"},
        ),
        Case(
            {
                "log_probs": reference.log_softmax(np.array([[2.0, 1.0, 0.1]])),
                "target": np.array([0]),
            },
            {"en": "a single row (N = 1)", "zh": "只有一列（N = 1）"},
        ),
        Case(
            {
                "log_probs": reference.log_softmax(rng.normal(size=(6, 3))),
                "target": np.array([2, 2, 2, 2, 2, 2]),
            },
            {"en": "every target is the last class", "zh": "每一列的正確類別都是最後一類"},
        ),
        Case(
            {"log_probs": with_zero, "target": np.array([0, 1, 1])},
            {
                "en": "log-probability -inf in classes that are not the target",
                "zh": "非正確類別的對數機率為 -inf",
            },
        ),
        Case(
            {
                "log_probs": reference.log_softmax(rng.normal(scale=2.0, size=(100, 10))),
                "target": rng.integers(0, 10, size=100),
            },
            {"en": "100 rows, 10 classes", "zh": "100 列、10 個類別"},
        ),
    ]


def check_nll_loss(fn, *, lang=None, quiet=False):
    """Check ``fn(log_probs, target)`` against :func:`nll_loss`.

    Parameters and return value as in :func:`check_softmax`.
    """
    return run_checker(
        exercise_title("1.3", "my_nll_loss"), fn, nll_loss, nll_cases(), lang=lang, quiet=quiet
    )


# ---------------------------------------------------------------------------
# Typical wrong answers each checker must reject (tested in
# tests/test_exercises_ch01.py; the first is pasted into the stub by
# tests/test_run_all.py). Each source defines the learner's function.
# ---------------------------------------------------------------------------

MORE_WRONG_ANSWERS = {
    "my_softmax": {
        "global max instead of per-row": (
            "def my_softmax(x):\n"
            "    e = np.exp(x - np.max(x))\n"
            "    return e / e.sum(axis=-1, keepdims=True)\n"
        ),
        "no max shift (overflow)": (
            "def my_softmax(x):\n    e = np.exp(x)\n    return e / e.sum(axis=-1, keepdims=True)\n"
        ),
        "wrong axis": (
            "def my_softmax(x):\n"
            "    e = np.exp(x - np.max(x, axis=0, keepdims=True))\n"
            "    return e / e.sum(axis=0, keepdims=True)\n"
        ),
        "float32": ("def my_softmax(x):\n    return celib.softmax(x).astype(np.float32)\n"),
    },
    "my_cross_entropy": {
        "sign error": ("def my_cross_entropy(x, y):\n    return x[y] - celib.logsumexp(x)\n"),
        "log of the softmax (log 0)": (
            "def my_cross_entropy(x, y):\n"
            "    with np.errstate(divide='ignore'):\n"
            "        return -np.log(celib.softmax(x)[y])\n"
        ),
        "no max shift (overflow)": (
            "def my_cross_entropy(x, y):\n"
            "    with np.errstate(over='ignore'):\n"
            "        return np.log(np.sum(np.exp(x))) - x[y]\n"
        ),
        "float32": (
            "def my_cross_entropy(x, y):\n    return np.float32(celib.logsumexp(x) - x[y])\n"
        ),
    },
    "my_nll_loss": {
        "missing 1/N (sum)": (
            "def my_nll_loss(log_probs, target):\n"
            "    return -np.sum(log_probs[np.arange(len(target)), target])\n"
        ),
        "sign error": (
            "def my_nll_loss(log_probs, target):\n"
            "    return np.mean(log_probs[np.arange(len(target)), target])\n"
        ),
        "columns instead of rows": (
            "def my_nll_loss(log_probs, target):\n    return -np.mean(log_probs[:, target])\n"
        ),
        "float32": (
            "def my_nll_loss(log_probs, target):\n"
            "    return np.float32(-np.mean(log_probs[np.arange(len(target)), target]))\n"
        ),
    },
}

WRONG_ANSWERS = first_wrong_answers(MORE_WRONG_ANSWERS)
