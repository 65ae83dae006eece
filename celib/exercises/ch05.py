"""Checkers for chapter 5, numerical stability and precision.

Each checker runs the learner's function on cases that break a naive
implementation (large, very negative and -inf logits, confident rows) and
compares it with celib's NumPy reference; see :func:`celib.exercises.run_checker`.
Each returns a :class:`celib.exercises.CheckResult`; ``WRONG_ANSWERS`` and
``MORE_WRONG_ANSWERS`` hold typical mistakes the checkers reject.
"""

from __future__ import annotations

import numpy as np

from .. import reference
from ._core import Case, exercise_title, first_wrong_answers, run_checker

__all__ = [
    "check_logsumexp",
    "check_log_softmax",
    "check_true_class_grad",
    "WRONG_ANSWERS",
    "MORE_WRONG_ANSWERS",
]

_NEG_INF = -np.inf


def _lse_cases():
    rng = np.random.default_rng(5)
    return [
        Case({"x": np.array([0.0, 1.0, 2.0])}, {"en": "small logits", "zh": "小的 logits"}),
        Case(
            {"x": np.array([1000.0, 1000.5, 999.0])},
            {"en": "large logits: exp overflows", "zh": "很大的 logits：exp 溢位"},
        ),
        Case(
            {"x": np.array([-1000.0, -1001.0, -1002.0])},
            {"en": "very negative logits: exp underflows", "zh": "很負的 logits：exp 下溢"},
        ),
        Case(
            {"x": np.array([1e308, 1e308])},
            {"en": "near the float64 maximum", "zh": "接近 float64 的最大值"},
        ),
        Case(
            {"x": np.array([0.0, _NEG_INF, 3.0])},
            {"en": "a masked class (-inf)", "zh": "一個被遮蔽的類別（-inf）"},
        ),
        Case(
            {"x": np.array([_NEG_INF, _NEG_INF])},
            {"en": "every class masked: -inf", "zh": "所有類別都被遮蔽：結果為 -inf"},
        ),
        Case(
            {"x": 50.0 * rng.standard_normal((4, 6))},
            {"en": "a batch of rows, along the last axis", "zh": "一個批次的多列，沿最後一軸"},
        ),
        Case(
            {"x": np.array([[1000.0, 999.0, 998.0], [-1000.0, -1001.0, -1002.0]])},
            {
                "en": "rows 2000 apart: shift each row by its own maximum",
                "zh": "相差 2000 的兩列：每一列要減去自己的最大值",
            },
        ),
    ]


def check_logsumexp(fn, *, lang=None, quiet=False):
    """Check ``fn(x)`` = log(sum(exp(x))) along the last axis, for any finite or -inf x.

    Parameters
    ----------
    fn : callable
        The learner's function of one float64 array ``x`` (1-D or 2-D).
    lang : {'en', 'zh'}, optional
        The language of the report; defaults to the notebook's.
    quiet : bool
        Return the verdict without printing.

    Returns
    -------
    CheckResult
        Truthy only when every case matches :func:`celib.reference.logsumexp`
        (rtol 1e-6, atol 1e-9; a float32 result is rejected).
    """
    return run_checker(
        exercise_title("5.1", "my_logsumexp"),
        fn,
        lambda x: reference.logsumexp(x, axis=-1),
        _lse_cases(),
        lang=lang,
        quiet=quiet,
    )


def check_log_softmax(fn, *, lang=None, quiet=False):
    """Check ``fn(x)`` = log(softmax(x)) along the last axis, formed without log(0).

    The cases include a class 800 nats below the best one, whose probability
    underflows to 0 in float64 while its log-probability is a plain -800.

    Returns
    -------
    CheckResult
        Truthy only when every case matches :func:`celib.reference.log_softmax`
        (rtol 1e-6, atol 1e-9; a float32 result is rejected).
    """
    rng = np.random.default_rng(6)
    cases = [
        Case({"x": np.array([1.0, 2.0, 3.0])}, {"en": "small logits", "zh": "小的 logits"}),
        Case(
            {"x": np.array([0.0, -800.0, 1.0])},
            {"en": "a class whose probability underflows to 0", "zh": "機率下溢成 0 的類別"},
        ),
        Case(
            {"x": np.array([1000.0, 0.0, -5.0])},
            {"en": "large logits: exp overflows", "zh": "很大的 logits：exp 溢位"},
        ),
        Case(
            {"x": np.array([2.0, _NEG_INF, 0.0])},
            {"en": "a masked class (-inf) stays -inf", "zh": "被遮蔽的類別（-inf）維持 -inf"},
        ),
        Case(
            {"x": 30.0 * rng.standard_normal((3, 5))},
            {"en": "a batch of rows", "zh": "一個批次的多列"},
        ),
        Case(
            {"x": np.array([[1000.0, 999.0, 998.0], [-1000.0, -1001.0, -1002.0]])},
            {
                "en": "rows 2000 apart: shift each row by its own maximum",
                "zh": "相差 2000 的兩列：每一列要減去自己的最大值",
            },
        ),
    ]
    return run_checker(
        exercise_title("5.2", "my_log_softmax"),
        fn,
        lambda x: reference.log_softmax(x, axis=-1),
        cases,
        lang=lang,
        quiet=quiet,
    )


def _true_class_reference(x, y):
    """p_y - 1 = -(sum of the other classes' exp(x_c - m)) / S, in float64.

    The other classes are summed on their own, so nothing cancels, at any
    margin; celib.reference.cross_entropy_grad forms the true class's entry
    the same way, for every row of a batch (the book's chapter 5, section 5.6).
    (e_y - S) / S would cancel instead: to 0 once S rounds to 1.
    """
    x = np.asarray(x, dtype=np.float64)
    e = np.exp(x - np.max(x))
    others = np.sum(np.delete(e, y))
    return -others / np.sum(e)


def check_true_class_grad(fn, *, lang=None, quiet=False):
    """Check ``fn(x, y)`` = p_y - 1, the true class's gradient, to full relative accuracy.

    ``x`` is one row of float64 logits, shape (C,), and ``y`` an int. The
    confident cases have p_y within rounding of 1, where ``softmax(x)[y] - 1``
    cancels to 0; they are compared with an absolute tolerance of 0.

    Returns
    -------
    CheckResult
        Truthy only when every case matches -(sum_{c != y} e_c) / sum_c e_c,
        with e_c = exp(x_c - max x), to a relative 1e-6 (atol 0; a float32
        result is rejected).
    """

    def row(margin, C=5):
        x = np.zeros(C)
        x[2] = margin
        return x

    cases = [
        Case(
            {"x": np.array([0.5, -1.0, 2.0, 0.0]), "y": 1},
            {"en": "an unlikely true class", "zh": "機率很小的正確類別"},
            rtol=1e-6,
            atol=0.0,
        ),
        Case(
            {"x": row(1.0), "y": 2},
            {"en": "a mildly confident row", "zh": "稍有把握的一列"},
            rtol=1e-6,
            atol=0.0,
        ),
        Case(
            {"x": row(20.0), "y": 2},
            {"en": "a confident row: p_y = 1 - 8e-9", "zh": "很有把握的一列：p_y = 1 - 8e-9"},
            rtol=1e-6,
            atol=0.0,
        ),
        Case(
            {"x": row(40.0), "y": 2},
            {"en": "p_y rounds to 1 in float64", "zh": "p_y 在 float64 中捨入成 1"},
            rtol=1e-6,
            atol=0.0,
        ),
        Case(
            {"x": row(700.0) + np.array([0.0, 3.0, 0.0, -1.0, 0.0]), "y": 2},
            {"en": "huge logits and a 700-nat margin", "zh": "極大的 logits，差距 700"},
            rtol=1e-6,
            atol=0.0,
        ),
    ]
    return run_checker(
        exercise_title("5.3", "my_true_class_grad"),
        fn,
        _true_class_reference,
        cases,
        lang=lang,
        quiet=quiet,
    )


# ---------------------------------------------------------------------------
# Typical wrong answers each checker must reject (tested in
# tests/test_exercises_ch05.py; the first is pasted into the stub by
# tests/test_run_all.py). Each source defines the learner's function.
# ---------------------------------------------------------------------------

MORE_WRONG_ANSWERS = {
    "my_logsumexp": {
        "no max shift (overflow)": (
            "def my_logsumexp(x):\n"
            "    with np.errstate(over='ignore', divide='ignore'):\n"
            "        return np.log(np.sum(np.exp(x), axis=-1))\n"
        ),
        "global max instead of per-row": (
            "def my_logsumexp(x):\n"
            "    m = np.max(x)\n"
            "    m = m if np.isfinite(m) else 0.0\n"
            "    with np.errstate(divide='ignore'):\n"
            "        return m + np.log(np.sum(np.exp(x - m), axis=-1))\n"
        ),
        "a row of -inf gives NaN (shift by -inf)": (
            "def my_logsumexp(x):\n"
            "    m = np.max(x, axis=-1, keepdims=True)\n"
            "    with np.errstate(invalid='ignore'):\n"
            "        return np.squeeze(m + np.log(np.sum(np.exp(x - m), axis=-1, keepdims=True)), -1)\n"
        ),
        "wrong axis": ("def my_logsumexp(x):\n    return celib.logsumexp(x, axis=0)\n"),
        "float32": (
            "def my_logsumexp(x):\n"
            "    return np.asarray(celib.logsumexp(x, axis=-1), dtype=np.float32)\n"
        ),
    },
    "my_log_softmax": {
        "log of the softmax (log 0)": (
            "def my_log_softmax(x):\n"
            "    with np.errstate(divide='ignore'):\n"
            "        return np.log(celib.softmax(x, axis=-1))\n"
        ),
        "global max instead of per-row": (
            "def my_log_softmax(x):\n"
            "    m = np.max(x)\n"
            "    with np.errstate(divide='ignore'):\n"
            "        return (x - m) - np.log(np.sum(np.exp(x - m), axis=-1, keepdims=True))\n"
        ),
        "sign error": ("def my_log_softmax(x):\n    return -celib.log_softmax(x, axis=-1)\n"),
        "float32": (
            "def my_log_softmax(x):\n    return celib.log_softmax(x, axis=-1).astype(np.float32)\n"
        ),
    },
    "my_true_class_grad": {
        "softmax(x)[y] - 1 (cancels to 0)": (
            "def my_true_class_grad(x, y):\n    return celib.softmax(x)[y] - 1.0\n"
        ),
        "(e_y - S) / S (cancels too)": (
            "def my_true_class_grad(x, y):\n"
            "    e = np.exp(x - np.max(x))\n"
            "    return (e[y] - e.sum()) / e.sum()\n"
        ),
        "sign error (1 - p_y)": (
            "def my_true_class_grad(x, y):\n"
            "    e = np.exp(x - np.max(x))\n"
            "    return np.sum(np.delete(e, y)) / np.sum(e)\n"
        ),
        "float32": (
            "def my_true_class_grad(x, y):\n"
            "    e = np.exp(x - np.max(x))\n"
            "    return np.float32(-np.sum(np.delete(e, y)) / np.sum(e))\n"
        ),
    },
}

WRONG_ANSWERS = first_wrong_answers(MORE_WRONG_ANSWERS)
