"""Checkers for chapter 6, checking gradients.

See :func:`celib.exercises.run_checker` for what a checker prints and returns
(a :class:`celib.exercises.CheckResult`). ``WRONG_ANSWERS`` and
``MORE_WRONG_ANSWERS`` hold typical mistakes the checkers reject.
"""

from __future__ import annotations

import numpy as np

from .. import gradient_check, reference
from ._core import Case, exercise_title, first_wrong_answers, run_checker

__all__ = [
    "check_central_difference",
    "check_relative_error",
    "WRONG_ANSWERS",
    "MORE_WRONG_ANSWERS",
]


class _Fn:
    """A test function with a readable repr (so a failing case prints no address)."""

    def __init__(self, text, fn):
        self.text, self.fn = text, fn

    def __call__(self, x):
        return self.fn(x)

    def __repr__(self):
        return self.text


def _cube_sum(x):
    return np.sum(x**3)


def _ce_loss(x):
    return reference.cross_entropy(x, np.array([0, 2, 1]))


def _exp_sin(x):
    return np.exp(np.sin(x[0])) * x[1]


def check_central_difference(fn, *, lang=None, quiet=False):
    """Check ``fn(f, x, eps)``: the central-difference gradient of a scalar f at x.

    Compared with :func:`celib.gradient_check.numerical_grad` at the same step, so a
    forward difference, a missing factor 1/2 or a step applied to all entries
    at once fails, while rounding-level differences pass (rtol 1e-6).

    Parameters
    ----------
    fn : callable
        ``fn(f, x, eps)`` returning an array shaped like ``x``.

    Returns
    -------
    CheckResult
        Truthy only when every case matches (a float32 result is rejected).
    """
    rng = np.random.default_rng(7)
    cube = _Fn("lambda x: np.sum(x ** 3)", _cube_sum)
    ce = _Fn("lambda x: celib.cross_entropy(x, [0, 2, 1])", _ce_loss)
    es = _Fn("lambda x: np.exp(np.sin(x[0])) * x[1]", _exp_sin)
    cases = [
        Case(
            {"f": cube, "x": np.array([1.0, -2.0, 0.5]), "eps": 1e-3},
            {"en": "sum of cubes, eps = 1e-3", "zh": "立方和，eps = 1e-3"},
            rtol=1e-6,
            atol=1e-9,
        ),
        Case(
            {"f": es, "x": np.array([0.3, 2.0]), "eps": 1e-4},
            {"en": "a product of two variables", "zh": "兩個變數的乘積"},
            rtol=1e-6,
            atol=1e-9,
        ),
        Case(
            {"f": ce, "x": rng.standard_normal((3, 4)), "eps": 1e-6},
            {"en": "cross-entropy of a (3, 4) batch", "zh": "(3, 4) 批次的交叉熵"},
            rtol=1e-6,
            atol=1e-9,
        ),
        Case(
            {"f": cube, "x": np.array([[0.0, 1.0], [2.0, -1.0]]), "eps": 0.1},
            {"en": "a 2-D point, large step", "zh": "二維的點，較大的步長"},
            rtol=1e-6,
            atol=1e-9,
        ),
    ]
    return run_checker(
        exercise_title("6.1", "my_central_difference"),
        fn,
        gradient_check.numerical_grad,
        cases,
        lang=lang,
        quiet=quiet,
    )


def check_relative_error(fn, *, lang=None, quiet=False):
    """Check ``fn(actual, expected)`` = max|a - e| / max(max|a|, max|e|), 0 for all zeros.

    Returns
    -------
    bool
        True when every case matches :func:`celib.gradient_check.relative_error`.
    """
    cases = [
        Case(
            {"actual": np.array([1.0, 2.0, 3.0]), "expected": np.array([1.0, 2.0, 3.0])},
            {"en": "identical arrays", "zh": "完全相同的陣列"},
            atol=0.0,
        ),
        Case(
            {"actual": np.array([1.0, -2.0]), "expected": np.array([1.0, -2.002])},
            {"en": "a negative difference", "zh": "差值為負"},
            atol=0.0,
        ),
        Case(
            {"actual": np.array([0.0, 1e-3, 0.5]), "expected": np.array([1e-12, 1e-3, 0.5])},
            {"en": "a near-zero entry", "zh": "接近 0 的元素"},
            atol=0.0,
        ),
        Case(
            {"actual": np.array([3.0, 0.0]), "expected": np.array([1.0, 0.0])},
            {"en": "actual larger than expected", "zh": "actual 比 expected 大"},
            atol=0.0,
        ),
        Case(
            {"actual": np.zeros((2, 2)), "expected": np.zeros((2, 2))},
            {"en": "both all zeros: 0, not NaN", "zh": "兩者皆為 0：結果是 0 而不是 NaN"},
            atol=0.0,
        ),
        Case(
            {
                "actual": np.array([[1e-8, 2e-8], [3e-8, 4e-8]]),
                "expected": np.array([[1e-8, 2e-8], [3e-8, 4.4e-8]]),
            },
            {"en": "tiny values: the error is scale-free", "zh": "極小的值：誤差與尺度無關"},
            atol=0.0,
        ),
    ]
    return run_checker(
        exercise_title("6.2", "my_relative_error"),
        fn,
        gradient_check.relative_error,
        cases,
        lang=lang,
        quiet=quiet,
    )


# ---------------------------------------------------------------------------
# Typical wrong answers each checker must reject (tested in
# tests/test_exercises_ch06.py; the first is pasted into the stub by
# tests/test_run_all.py). Each source defines the learner's function.
# ---------------------------------------------------------------------------

MORE_WRONG_ANSWERS = {
    "my_central_difference": {
        "forward difference": (
            "def my_central_difference(f, x, eps):\n"
            "    x = np.array(x, dtype=np.float64); g = np.zeros_like(x)\n"
            "    for i in np.ndindex(x.shape):\n"
            "        p = x.copy(); p[i] += eps\n"
            "        g[i] = (f(p) - f(x)) / eps\n"
            "    return g\n"
        ),
        "missing 1/2": (
            "def my_central_difference(f, x, eps):\n"
            "    x = np.array(x, dtype=np.float64); g = np.zeros_like(x)\n"
            "    for i in np.ndindex(x.shape):\n"
            "        p, m = x.copy(), x.copy(); p[i] += eps; m[i] -= eps\n"
            "        g[i] = (f(p) - f(m)) / eps\n"
            "    return g\n"
        ),
        "every entry stepped at once": (
            "def my_central_difference(f, x, eps):\n"
            "    x = np.array(x, dtype=np.float64)\n"
            "    return np.full_like(x, (f(x + eps) - f(x - eps)) / (2 * eps))\n"
        ),
        "sign error": (
            "def my_central_difference(f, x, eps):\n"
            "    x = np.array(x, dtype=np.float64); g = np.zeros_like(x)\n"
            "    for i in np.ndindex(x.shape):\n"
            "        p, m = x.copy(), x.copy(); p[i] += eps; m[i] -= eps\n"
            "        g[i] = (f(m) - f(p)) / (2 * eps)\n"
            "    return g\n"
        ),
        "float32": (
            "def my_central_difference(f, x, eps):\n"
            "    return celib.numerical_grad(f, x, eps).astype(np.float32)\n"
        ),
    },
    "my_relative_error": {
        "entry by entry, relative to expected": (
            "def my_relative_error(actual, expected):\n"
            "    a, e = np.asarray(actual, float), np.asarray(expected, float)\n"
            "    with np.errstate(divide='ignore', invalid='ignore'):\n"
            "        r = np.abs(a - e) / np.abs(e)\n"
            "    return float(np.nanmax(r)) if np.isfinite(r).any() else 0.0\n"
        ),
        "no guard for all zeros (NaN)": (
            "def my_relative_error(actual, expected):\n"
            "    a, e = np.asarray(actual, float), np.asarray(expected, float)\n"
            "    with np.errstate(invalid='ignore'):\n"
            "        return np.max(np.abs(a - e)) / max(np.max(np.abs(a)), np.max(np.abs(e)))\n"
        ),
        "scale from expected only": (
            "def my_relative_error(actual, expected):\n"
            "    a, e = np.asarray(actual, float), np.asarray(expected, float)\n"
            "    s = np.max(np.abs(e))\n"
            "    return 0.0 if s == 0 else np.max(np.abs(a - e)) / s\n"
        ),
        "float32": (
            "def my_relative_error(actual, expected):\n"
            "    return np.float32(celib.relative_error(actual, expected))\n"
        ),
    },
}

WRONG_ANSWERS = first_wrong_answers(MORE_WRONG_ANSWERS)
