"""Checkers for chapter 9, "The GPU path".

The fused kernel of :mod:`celib.triton_kernels` visits a row of logits in blocks.
Pass 1 keeps a running maximum m and a running sum d = sum_c exp(x_c - shift(m)),
with shift(m) = m where m is finite and 0 where it is -inf; a new block with
maximum m' rescales the sum (Milakov and Gimelshein, 2018):

    d' = d exp(shift(m) - shift(m')) + sum_{c in block} exp(x_c - shift(m')).

Pass 2 reads the row again and writes the gradient p - onehot(y).

    from celib.exercises import ch09
    ch09.check_online_step(my_online_step)
    ch09.check_saved_bytes(my_saved_bytes)
    ch09.check_two_pass_row(my_two_pass_row)

Each checker prints that all cases pass, the first failing case (naming the
part that differs) or "not attempted yet", in the notebook's language, and
returns a :class:`celib.exercises.CheckResult`. ``WRONG_ANSWERS`` and
``MORE_WRONG_ANSWERS`` hold typical mistakes the checkers reject.
"""

from __future__ import annotations

import numpy as np

from .. import reference
from ._core import Case, exercise_title, first_wrong_answers, run_checker

__all__ = [
    "check_online_step",
    "check_saved_bytes",
    "check_two_pass_row",
    "WRONG_ANSWERS",
    "MORE_WRONG_ANSWERS",
]

# ---------------------------------------------------------------------------
# exercise 1: one step of the online log-sum-exp
# ---------------------------------------------------------------------------


def _online_step(m, d, block):
    block = np.asarray(block, dtype=np.float64)
    m_new = max(m, float(block.max())) if block.size else m
    shift_old = m if np.isfinite(m) else 0.0
    shift_new = m_new if np.isfinite(m_new) else 0.0
    # while d is 0 (no finite logit yet) there is nothing to rescale: 0 * exp(...) could be 0 * inf
    with np.errstate(over="ignore"):
        kept = 0.0 if d == 0.0 else d * np.exp(shift_old - shift_new)
    return m_new, kept + float(np.exp(block - shift_new).sum())


def check_online_step(fn, *, lang=None, quiet=False):
    """Check ``fn(m, d, block) -> (m_new, d_new)``, the kernel's pass-1 update for one block.

    ``m`` is the running maximum (a float, -inf before any finite logit), ``d`` the
    running sum of exp(x - shift(m)) with shift(m) = m if m is finite else 0,
    ``block`` a 1-D float64 array of logits (masked lanes are -inf).

    Returns
    -------
    CheckResult
        Truthy only when both numbers match (rtol 1e-12, atol 0; float32 rejected).
    """
    rng = np.random.default_rng(9)
    minf = -np.inf
    cases = [
        Case(
            {"m": 0.5, "d": 2.0, "block": np.array([0.1, 1.7, -0.3, 1.2])},
            {"en": "the maximum grows", "zh": "最大值變大"},
            rtol=1e-12,
            atol=0.0,
        ),
        Case(
            {"m": 2.0, "d": 1.25, "block": np.array([0.3, -1.0, 1.9])},
            {"en": "the maximum stays", "zh": "最大值不變"},
            rtol=1e-12,
            atol=0.0,
        ),
        Case(
            {"m": minf, "d": 0.0, "block": rng.standard_normal(5)},
            {"en": "the first block", "zh": "第一個區塊"},
            rtol=1e-12,
            atol=0.0,
        ),
        Case(
            {"m": minf, "d": 0.0, "block": np.full(4, minf)},
            {"en": "a first block of -inf only", "zh": "第一個區塊全是 -inf"},
            rtol=1e-12,
            atol=0.0,
        ),
        Case(
            {"m": minf, "d": 0.0, "block": -800.0 + rng.standard_normal(4)},
            {"en": "a first block near -800", "zh": "第一個區塊約為 -800"},
            rtol=1e-12,
            atol=0.0,
        ),
        Case(
            {"m": 1.0, "d": 1.5, "block": np.array([minf, minf, minf])},
            {
                "en": "a block of -inf after finite logits",
                "zh": "有限的 logits 之後出現全是 -inf 的區塊",
            },
            rtol=1e-12,
            atol=0.0,
        ),
        Case(
            {"m": 1e4, "d": 3.0, "block": 1e4 + np.array([2.0, -1.0, minf, 0.5])},
            {"en": "logits near 1e4, a masked lane", "zh": "logits 約為 1e4，含一個被遮蔽的位置"},
            rtol=1e-12,
            atol=0.0,
        ),
    ]
    return run_checker(
        exercise_title("9.1", "my_online_step"),
        fn,
        _online_step,
        cases,
        lang=lang,
        quiet=quiet,
        outputs=("m_new", "d_new"),
    )


# ---------------------------------------------------------------------------
# exercise 2: bytes kept for the backward pass
# ---------------------------------------------------------------------------


def _saved_bytes(N, V, bytes_per_element):
    lse_bytes = 8 if bytes_per_element == 8 else 4  # float64 stays float64, else float32
    return N * V * bytes_per_element, N * lse_bytes


def check_saved_bytes(fn, *, lang=None, quiet=False):
    """Check ``fn(N, V, bytes_per_element) -> (eager_bytes, celib_bytes)``.

    eager: the N x V log-probabilities that ``F.cross_entropy`` (log_softmax, then
    nll_loss) keeps, in the logits' dtype. celib (torch backend): one log-sum-exp
    per row, float32 for 16- and 32-bit logits and float64 for float64. The
    class indices, which both keep, are left out.

    Returns
    -------
    CheckResult
        Truthy only when both counts match exactly (any integer or float dtype).
    """

    def case(N, V, nbytes, label):
        return Case({"N": N, "V": V, "bytes_per_element": nbytes}, label, rtol=0.0, atol=0.0)

    cases = [
        case(
            8192,
            128256,
            2,
            {"en": "Llama 3, 8192 tokens, bfloat16", "zh": "Llama 3，8192 個 token，bfloat16"},
        ),
        case(
            4096,
            32000,
            4,
            {"en": "4096 tokens, V = 32000, float32", "zh": "4096 個 token，V = 32000，float32"},
        ),
        case(64, 1000, 8, {"en": "float64", "zh": "float64"}),
        case(1, 50257, 2, {"en": "a single token, float16", "zh": "只有一個 token，float16"}),
        case(0, 128256, 2, {"en": "no tokens", "zh": "沒有 token"}),
    ]
    return run_checker(
        exercise_title("9.2", "my_saved_bytes"),
        fn,
        _saved_bytes,
        cases,
        lang=lang,
        quiet=quiet,
        outputs=("eager_bytes", "celib_bytes"),
        exact=True,
    )


# ---------------------------------------------------------------------------
# exercise 3: the two-pass kernel for one row, in NumPy
# ---------------------------------------------------------------------------


def _two_pass_row(x, y, block_size):
    loss, grad = reference.cross_entropy_and_grad(x[None, :], np.array([y]))
    return float(loss), grad[0]


def check_two_pass_row(fn, *, lang=None, quiet=False):
    """Check ``fn(x, y, block_size) -> (loss, grad)`` for one row x of C logits and class y.

    loss = lse(x) - x_y and grad = softmax(x) - onehot(y) (shape (C,)), as the
    kernel computes them: pass 1 over blocks of ``block_size`` logits (online
    log-sum-exp), pass 2 over the same blocks writing the gradient. The
    reference is :func:`celib.cross_entropy_and_grad` on the row.

    Returns
    -------
    CheckResult
        Truthy only when loss and grad match (rtol 1e-6, atol 1e-9; float32 rejected).
    """
    rng = np.random.default_rng(90)
    rising = np.linspace(-3.0, 3.0, 11)  # every block raises the maximum
    minf_first = rng.standard_normal(9)
    minf_first[:4] = -np.inf
    confident = rng.standard_normal(12)
    confident[5] = 40.0
    cases = [
        Case(
            {"x": rng.standard_normal(10), "y": 3, "block_size": 4},
            {"en": "C = 10 in blocks of 4", "zh": "C = 10，每個區塊 4 個"},
        ),
        Case(
            {"x": rising, "y": 0, "block_size": 3},
            {"en": "the maximum grows in every block", "zh": "每個區塊的最大值都變大"},
        ),
        Case(
            {"x": rng.standard_normal(7), "y": 6, "block_size": 16},
            {"en": "one block larger than C", "zh": "一個區塊就比 C 大"},
        ),
        Case(
            {"x": 1e4 + rng.standard_normal(8), "y": 2, "block_size": 3},
            {"en": "logits near 1e4", "zh": "logits 約為 1e4"},
        ),
        Case(
            {"x": minf_first, "y": 7, "block_size": 4},
            {"en": "a first block of -inf only", "zh": "第一個區塊全是 -inf"},
        ),
        Case(
            {"x": confident, "y": 5, "block_size": 5},
            {"en": "a confident row (p_y near 1)", "zh": "很有把握的一列（p_y 接近 1）"},
        ),
    ]
    return run_checker(
        exercise_title("9.3", "my_two_pass_row"),
        fn,
        _two_pass_row,
        cases,
        lang=lang,
        quiet=quiet,
        outputs=("loss", "grad"),
    )


# ---------------------------------------------------------------------------
# Typical wrong answers each checker must reject (tested in
# tests/test_exercises_ch09.py; the first is pasted into the stub by
# tests/test_run_all.py). Each source defines the learner's function.
# ---------------------------------------------------------------------------

MORE_WRONG_ANSWERS = {
    "my_online_step": {
        "no rescaling of d": (
            "def my_online_step(m, d, block):\n"
            "    m_new = max(m, block.max())\n"
            "    shift = m_new if np.isfinite(m_new) else 0.0\n"
            "    return m_new, d + np.exp(block - shift).sum()\n"
        ),
        "rescaling with the wrong sign": (
            "def my_online_step(m, d, block):\n"
            "    m_new = max(m, block.max())\n"
            "    so = m if np.isfinite(m) else 0.0; sn = m_new if np.isfinite(m_new) else 0.0\n"
            "    with np.errstate(over='ignore'):\n"
            "        kept = 0.0 if d == 0 else d * np.exp(sn - so)\n"
            "    return m_new, kept + np.exp(block - sn).sum()\n"
        ),
        "shift by -inf (NaN)": (
            "def my_online_step(m, d, block):\n"
            "    m_new = max(m, block.max())\n"
            "    with np.errstate(invalid='ignore'):\n"
            "        return m_new, d * np.exp(m - m_new) + np.exp(block - m_new).sum()\n"
        ),
        "float32": (
            "def my_online_step(m, d, block):\n"
            "    m_new = max(m, block.max())\n"
            "    so = m if np.isfinite(m) else 0.0; sn = m_new if np.isfinite(m_new) else 0.0\n"
            "    kept = 0.0 if d == 0 else d * np.exp(so - sn)\n"
            "    return m_new, np.float32(kept + np.exp(block - sn).sum())\n"
        ),
    },
    "my_saved_bytes": {
        "lse in the logits' dtype": (
            "def my_saved_bytes(N, V, bytes_per_element):\n"
            "    return N * V * bytes_per_element, N * bytes_per_element\n"
        ),
        "the two numbers swapped": (
            "def my_saved_bytes(N, V, bytes_per_element):\n"
            "    lse = 8 if bytes_per_element == 8 else 4\n"
            "    return N * lse, N * V * bytes_per_element\n"
        ),
        "celib keeps the gradient too (N x V)": (
            "def my_saved_bytes(N, V, bytes_per_element):\n"
            "    return N * V * bytes_per_element, N * V * bytes_per_element\n"
        ),
    },
    "my_two_pass_row": {
        "gradient sign error (onehot - p)": (
            "def my_two_pass_row(x, y, block_size):\n"
            "    loss, g = celib.cross_entropy_and_grad(x[None, :], np.array([y]))\n"
            "    return float(loss), -g[0]\n"
        ),
        "loss sign error": (
            "def my_two_pass_row(x, y, block_size):\n"
            "    loss, g = celib.cross_entropy_and_grad(x[None, :], np.array([y]))\n"
            "    return -float(loss), g[0]\n"
        ),
        "no max shift (overflow)": (
            "def my_two_pass_row(x, y, block_size):\n"
            "    with np.errstate(over='ignore', invalid='ignore'):\n"
            "        e = np.exp(x); s = e.sum()\n"
            "        g = e / s\n"
            "    g[y] -= 1.0\n"
            "    return np.log(s) - x[y], g\n"
        ),
        "float32": (
            "def my_two_pass_row(x, y, block_size):\n"
            "    loss, g = celib.cross_entropy_and_grad(x[None, :], np.array([y]))\n"
            "    return float(loss), g[0].astype(np.float32)\n"
        ),
    },
}

WRONG_ANSWERS = first_wrong_answers(MORE_WRONG_ANSWERS)
