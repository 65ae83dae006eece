"""Checkers for chapter 8, "The linear layer and large vocabularies".

The output layer of a language model: logits Z = h W^T + b with hidden states
h of shape (N, H), a weight W of shape (V, H) (the layout of torch.nn.Linear)
and a bias b of shape (V,). With G = dL/dZ the chapter derives

    dL/dW = G^T h   (V, H),    dL/db = sum_n G_n   (V,),    dL/dh = G W   (N, H).

    from celib.exercises import ch08
    ch08.check_logits_gib(my_logits_gib)
    ch08.check_linear_ce_grads(my_linear_ce_grads)
    ch08.check_chunked_logsumexp(my_chunked_logsumexp)

Each checker prints that all cases pass, the first failing case (naming the
part, dh, dW or db, that differs) or "not attempted yet", in the notebook's
language, and returns a :class:`celib.exercises.CheckResult`.
``WRONG_ANSWERS`` and ``MORE_WRONG_ANSWERS`` hold typical mistakes the
checkers reject.
"""

from __future__ import annotations

import numpy as np

from .. import reference
from ._core import Case, exercise_title, first_wrong_answers, run_checker

__all__ = [
    "check_logits_gib",
    "check_linear_ce_grads",
    "check_chunked_logsumexp",
    "WRONG_ANSWERS",
    "MORE_WRONG_ANSWERS",
]

# ---------------------------------------------------------------------------
# exercise 1: the size of the logits
# ---------------------------------------------------------------------------


def _logits_gib(tokens, vocab, bytes_per_element):
    return tokens * vocab * bytes_per_element / 2**30


def check_logits_gib(fn, *, lang=None, quiet=False):
    """Check ``fn(tokens, vocab, bytes_per_element) -> GiB`` of an N x V logits tensor.

    1 GiB = 2^30 bytes (IEC 80000-13), the unit in which torch and nvidia-smi
    report memory.

    Returns
    -------
    CheckResult
        Truthy only when every case matches to rtol 1e-12 (float32 rejected).
    """

    def case(t, v, nbytes, label):
        return Case(
            {"tokens": t, "vocab": v, "bytes_per_element": nbytes}, label, rtol=1e-12, atol=0.0
        )

    cases = [
        case(
            8192,
            50257,
            4,
            {"en": "GPT-2, 8192 tokens, float32", "zh": "GPT-2，8192 個 token，float32"},
        ),
        case(
            131072,
            256000,
            2,
            {"en": "Gemma, 131072 tokens, bfloat16", "zh": "Gemma，131072 個 token，bfloat16"},
        ),
        case(1, 128256, 2, {"en": "a single token", "zh": "只有一個 token"}),
        case(0, 50257, 4, {"en": "no tokens", "zh": "沒有 token"}),
        case(2**15, 2**15, 1, {"en": "exactly 1 GiB (8-bit)", "zh": "剛好 1 GiB（8 位元）"}),
    ]
    return run_checker(
        exercise_title("8.1", "my_logits_gib"), fn, _logits_gib, cases, lang=lang, quiet=quiet
    )


# ---------------------------------------------------------------------------
# exercise 2: dh, dW, db of the linear layer followed by cross-entropy
# ---------------------------------------------------------------------------


def _linear_ce_grads(h, W, b, target):
    G = reference.cross_entropy_grad(h @ W.T + b, target)
    return G @ W, G.T @ h, G.sum(axis=0)


def _grad_problem(seed, N, H, V, scale=1.0, ignored=()):
    rng = np.random.default_rng(seed)
    target = rng.integers(0, V, size=N)
    target[list(ignored)] = -100
    return {
        "h": scale * rng.standard_normal((N, H)),
        "W": 0.5 * rng.standard_normal((V, H)),
        "b": 0.1 * rng.standard_normal(V),
        "target": target,
    }


def check_linear_ce_grads(fn, *, lang=None, quiet=False):
    """Check ``fn(h, W, b, target) -> (dh, dW, db)`` for the mean cross-entropy of h W^T + b.

    ``target`` holds class indices; -100 marks an ignored position (no loss, no
    gradient, not counted in the mean), as in torch.nn.functional.cross_entropy.

    Returns
    -------
    CheckResult
        Truthy only when the three parts match (rtol 1e-6, atol 1e-9; float32 rejected).
    """
    cases = [
        Case(_grad_problem(0, 4, 3, 5), {"en": "N = 4, H = 3, V = 5", "zh": "N = 4、H = 3、V = 5"}),
        Case(_grad_problem(1, 1, 2, 6), {"en": "a single token", "zh": "只有一個 token"}),
        Case(
            _grad_problem(2, 6, 4, 7, ignored=(1, 4)),
            {"en": "two ignored targets (-100)", "zh": "有兩個被忽略的目標（-100）"},
        ),
        Case(_grad_problem(3, 5, 6, 3), {"en": "H > V", "zh": "H > V"}),
        Case(
            _grad_problem(4, 3, 2, 4, scale=500.0),
            {"en": "large logits (hundreds)", "zh": "很大的 logits（數百）"},
        ),
        Case(
            _grad_problem(5, 4, 3, 3, ignored=(0, 1, 2, 3)),
            {"en": "every target ignored: zero gradients", "zh": "所有目標都被忽略：梯度為零"},
        ),
    ]
    return run_checker(
        exercise_title("8.2", "my_linear_ce_grads"),
        fn,
        _linear_ce_grads,
        cases,
        lang=lang,
        quiet=quiet,
        outputs=("dh", "dW", "db"),
    )


# ---------------------------------------------------------------------------
# exercise 3: log-sum-exp over chunks of the vocabulary
# ---------------------------------------------------------------------------


def _chunked_logsumexp(Z, chunk_size):
    return reference.logsumexp(Z, axis=-1)


def check_chunked_logsumexp(fn, *, lang=None, quiet=False):
    """Check ``fn(Z, chunk_size) -> lse`` of shape (N,), visiting the V columns in chunks.

    The reference is ``celib.logsumexp(Z, axis=-1)``; the checker cannot see
    whether the columns were visited in chunks, but its cases break the usual
    mistakes of an online log-sum-exp: chunk sizes that do not divide V, logits
    near 1e4 (no max shift: overflow), a whole chunk of -inf (a running maximum
    of -inf gives -inf - (-inf) = NaN), and rows that are all -inf.

    Returns
    -------
    CheckResult
        Truthy only when every case matches (rtol 1e-6, atol 1e-9; float32 rejected).
    """
    rng = np.random.default_rng(8)
    Z = rng.standard_normal((3, 10))
    Z_minf = rng.standard_normal((2, 9))
    Z_minf[:, :4] = -np.inf
    Z_all = rng.standard_normal((3, 5))
    Z_all[1] = -np.inf
    cases = [
        Case({"Z": Z, "chunk_size": 4}, {"en": "V = 10 in chunks of 4", "zh": "V = 10，每塊 4 行"}),
        Case({"Z": Z, "chunk_size": 1}, {"en": "chunks of one column", "zh": "每塊只有一行"}),
        Case(
            {"Z": Z, "chunk_size": 64}, {"en": "one chunk larger than V", "zh": "一塊就比 V 還大"}
        ),
        Case(
            {"Z": 1e4 + rng.standard_normal((2, 7)), "chunk_size": 3},
            {"en": "logits near 1e4", "zh": "logits 約為 1e4"},
        ),
        Case(
            {"Z": Z_minf, "chunk_size": 4},
            {"en": "a first chunk of -inf only", "zh": "第一塊全是 -inf"},
        ),
        Case(
            {"Z": Z_all, "chunk_size": 2},
            {"en": "a row of all -inf (lse = -inf)", "zh": "有一列全是 -inf（lse = -inf）"},
        ),
        Case(
            {
                "Z": np.array([[1000.0, 999.0, 998.0, 997.0], [-1000.0, -1001.0, -999.0, -1002.0]]),
                "chunk_size": 2,
            },
            {
                "en": "rows 2000 apart: a running maximum per row",
                "zh": "相差 2000 的兩列：每一列各自的累計最大值",
            },
        ),
    ]
    return run_checker(
        exercise_title("8.3", "my_chunked_logsumexp"),
        fn,
        _chunked_logsumexp,
        cases,
        lang=lang,
        quiet=quiet,
    )


# ---------------------------------------------------------------------------
# Typical wrong answers each checker must reject (tested in
# tests/test_exercises_ch08.py; the first is pasted into the stub by
# tests/test_run_all.py). Each source defines the learner's function.
# ---------------------------------------------------------------------------

MORE_WRONG_ANSWERS = {
    "my_logits_gib": {
        "GB (1e9 bytes) instead of GiB": (
            "def my_logits_gib(tokens, vocab, bytes_per_element):\n"
            "    return tokens * vocab * bytes_per_element / 1e9\n"
        ),
        "bytes per element forgotten": (
            "def my_logits_gib(tokens, vocab, bytes_per_element):\n"
            "    return tokens * vocab / 2**30\n"
        ),
        "float32": (
            "def my_logits_gib(tokens, vocab, bytes_per_element):\n"
            "    return np.float32(tokens * vocab * bytes_per_element / 2**30)\n"
        ),
    },
    "my_linear_ce_grads": {
        "dW transposed (H, V)": (
            "def my_linear_ce_grads(h, W, b, target):\n"
            "    G = celib.cross_entropy_grad(h @ W.T + b, target)\n"
            "    return G @ W, h.T @ G, G.sum(axis=0)\n"
        ),
        "ignore_index forgotten in the mean (divides by N)": (
            "def my_linear_ce_grads(h, W, b, target):\n"
            "    G = celib.cross_entropy_grad(h @ W.T + b, target, reduction='sum') / len(target)\n"
            "    return G @ W, G.T @ h, G.sum(axis=0)\n"
        ),
        "missing 1/N": (
            "def my_linear_ce_grads(h, W, b, target):\n"
            "    G = celib.cross_entropy_grad(h @ W.T + b, target, reduction='sum')\n"
            "    return G @ W, G.T @ h, G.sum(axis=0)\n"
        ),
        "sign error": (
            "def my_linear_ce_grads(h, W, b, target):\n"
            "    G = -celib.cross_entropy_grad(h @ W.T + b, target)\n"
            "    return G @ W, G.T @ h, G.sum(axis=0)\n"
        ),
        "only two of the three arrays": (
            "def my_linear_ce_grads(h, W, b, target):\n"
            "    G = celib.cross_entropy_grad(h @ W.T + b, target)\n"
            "    return G.T @ h, G.sum(axis=0)\n"
        ),
        "float32": (
            "def my_linear_ce_grads(h, W, b, target):\n"
            "    G = celib.cross_entropy_grad(h @ W.T + b, target).astype(np.float32)\n"
            "    return G @ W, G.T @ h, G.sum(axis=0)\n"
        ),
    },
    "my_chunked_logsumexp": {
        "no rescaling when the maximum grows": (
            "def my_chunked_logsumexp(Z, chunk_size):\n"
            "    N, V = Z.shape\n"
            "    m = np.full(N, -np.inf); s = np.zeros(N)\n"
            "    for lo in range(0, V, chunk_size):\n"
            "        z = Z[:, lo:lo + chunk_size]\n"
            "        m = np.maximum(m, z.max(axis=1))\n"
            "        sh = np.where(np.isfinite(m), m, 0.0)\n"
            "        s = s + np.exp(z - sh[:, None]).sum(axis=1)\n"
            "    with np.errstate(divide='ignore'):\n"
            "        return np.where(np.isfinite(m), m, 0.0) + np.log(s)\n"
        ),
        "a chunk of -inf gives NaN (shift by -inf)": (
            "def my_chunked_logsumexp(Z, chunk_size):\n"
            "    N, V = Z.shape\n"
            "    m = np.full(N, -np.inf); s = np.zeros(N)\n"
            "    with np.errstate(invalid='ignore', divide='ignore'):\n"
            "        for lo in range(0, V, chunk_size):\n"
            "            z = Z[:, lo:lo + chunk_size]\n"
            "            m_new = np.maximum(m, z.max(axis=1))\n"
            "            s = s * np.exp(m - m_new) + np.exp(z - m_new[:, None]).sum(axis=1)\n"
            "            m = m_new\n"
            "        return m + np.log(s)\n"
        ),
        "global max instead of per-row": (
            "def my_chunked_logsumexp(Z, chunk_size):\n"
            "    m = np.max(Z)\n"
            "    with np.errstate(divide='ignore'):\n"
            "        return m + np.log(np.exp(Z - m).sum(axis=1))\n"
        ),
        "float32": (
            "def my_chunked_logsumexp(Z, chunk_size):\n"
            "    return celib.logsumexp(Z, axis=-1).astype(np.float32)\n"
        ),
    },
}

WRONG_ANSWERS = first_wrong_answers(MORE_WRONG_ANSWERS)
