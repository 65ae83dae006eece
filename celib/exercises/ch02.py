"""Checkers for chapter 2's exercises: the gradient, the Jacobian, softmax backward.

Each ``check_*`` function calls the learner's function positionally on a list
of cases (edge cases included), compares it with celib's reference and prints,
in the notebook's language, a pass line, the first failing case or "not
attempted yet"; it returns a :class:`celib.exercises.CheckResult`, truthy only
on a pass. ``WRONG_ANSWERS`` and ``MORE_WRONG_ANSWERS`` hold typical mistakes
the checkers reject.
"""

from __future__ import annotations

import numpy as np

from .. import reference
from ._core import Case, exercise_title, first_wrong_answers, run_checker

__all__ = [
    "check_gradient",
    "check_softmax_jacobian",
    "check_softmax_backward",
    "softmax_backward",
    "WRONG_ANSWERS",
    "MORE_WRONG_ANSWERS",
]

RUNNING_EXAMPLE = np.array([2.0, 1.0, 0.1])


# ---------------------------------------------------------------------------
# Exercise 2.1: the gradient of one row
# ---------------------------------------------------------------------------


def gradient_cases():
    """Cases for :func:`check_gradient`: kwargs ``x`` (C,) and class index ``y``."""
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
            {"x": np.array([1000.0, 999.0, 0.0]), "y": 1},
            {"en": "large logits: exp would overflow", "zh": "很大的 logits：直接取 exp 會溢位"},
        ),
        Case(
            {"x": np.array([0.0, 30.0, 0.0]), "y": 0},
            {"en": "confidently wrong: close to e_1 - e_0", "zh": "很有把握地答錯：接近 e_1 - e_0"},
        ),
        Case(
            {"x": np.zeros(10), "y": 3},
            {"en": "equal logits, 10 classes", "zh": "logits 全部相等，10 個類別"},
        ),
        Case(
            {"x": np.array([5.0]), "y": 0},
            {"en": "a single class: the gradient is 0", "zh": "只有一個類別：梯度為 0"},
        ),
        Case(
            {"x": np.array([1.0, -np.inf, 0.0]), "y": 2},
            {"en": "a logit of -inf in another class", "zh": "其他類別的 logit 為 -inf"},
        ),
    ]


def check_gradient(fn, *, lang=None, quiet=False):
    """Check ``fn(x, y)`` against :func:`celib.reference.cross_entropy_grad` for one row.

    The reference is dL/dx = softmax(x) - onehot(y); a sign error (onehot - p)
    or the softmax alone fails the first case.

    Parameters
    ----------
    fn : callable
        The learner's ``my_gradient(x, y)``.
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
        exercise_title("2.1", "my_gradient"),
        fn,
        lambda x, y: reference.cross_entropy_grad(x, y),
        gradient_cases(),
        lang=lang,
        quiet=quiet,
    )


# ---------------------------------------------------------------------------
# Exercise 2.2: the softmax Jacobian
# ---------------------------------------------------------------------------


def jacobian_cases():
    """Cases for :func:`check_softmax_jacobian`: kwargs ``x`` of shape (C,)."""
    rng = np.random.default_rng(202)
    return [
        Case(
            {"x": RUNNING_EXAMPLE.copy()},
            {"en": "the running example [2.0, 1.0, 0.1]", "zh": "本書範例 [2.0, 1.0, 0.1]"},
        ),
        Case(
            {"x": np.zeros(4)},
            {"en": "equal logits: I/C - 1/C^2", "zh": "logits 全部相等：I/C - 1/C^2"},
        ),
        Case(
            {"x": np.array([1000.0, 999.0, 998.0])},
            {"en": "large logits: exp would overflow", "zh": "很大的 logits：直接取 exp 會溢位"},
        ),
        Case(
            {"x": np.array([2.0])},
            {
                "en": "a single class: the Jacobian is [[0]]",
                "zh": "只有一個類別：雅可比矩陣為 [[0]]",
            },
        ),
        Case(
            {"x": np.array([0.0, -np.inf, 1.0])},
            {
                "en": "a logit of -inf: its row and column are 0",
                "zh": "logit 為 -inf：該列與該行皆為 0",
            },
        ),
        Case(
            {"x": rng.normal(scale=2.0, size=6)}, {"en": "6 random logits", "zh": "6 個隨機 logits"}
        ),
    ]


def check_softmax_jacobian(fn, *, lang=None, quiet=False):
    """Check ``fn(x)`` against :func:`celib.reference.softmax_jacobian`, diag(p) - p p^T.

    Parameters and return value as in :func:`check_gradient`.
    """
    return run_checker(
        exercise_title("2.2", "my_softmax_jacobian"),
        fn,
        lambda x: reference.softmax_jacobian(x),
        jacobian_cases(),
        lang=lang,
        quiet=quiet,
    )


# ---------------------------------------------------------------------------
# Exercise 2.3: the softmax backward pass
# ---------------------------------------------------------------------------


def softmax_backward(x, grad_p):
    """J^T g for the softmax at ``x``: the vector-Jacobian product, via the matrix.

    Parameters
    ----------
    x : ndarray, float, shape (C,)
        Logits.
    grad_p : ndarray, float, shape (C,)
        Upstream gradient dL/dp.

    Returns
    -------
    ndarray, float64, shape (C,)
        ``softmax_jacobian(x).T @ grad_p``; the learner's O(C) form
        p * (g - <p, g>) must agree with it.
    """
    J = reference.softmax_jacobian(np.asarray(x, dtype=np.float64))
    return J.T @ np.asarray(grad_p, dtype=np.float64)


def backward_cases():
    """Cases for :func:`check_softmax_backward`: kwargs ``x`` and ``grad_p``, shape (C,)."""
    rng = np.random.default_rng(203)
    p = reference.softmax(RUNNING_EXAMPLE)
    return [
        Case(
            {"x": RUNNING_EXAMPLE.copy(), "grad_p": np.array([-1.0 / p[0], 0.0, 0.0])},
            {
                "en": "g = dl/dp of the cross-entropy, target 0: J^T g = p - e_0",
                "zh": "g 為交叉熵的 dl/dp，正確類別 0：J^T g = p - e_0",
            },
        ),
        Case(
            {"x": RUNNING_EXAMPLE.copy(), "grad_p": np.array([0.5, -1.0, 2.0])},
            {"en": "the running example, an arbitrary g", "zh": "本書範例，任意的 g"},
        ),
        Case(
            {"x": rng.normal(size=5), "grad_p": np.full(5, 3.0)},
            {
                "en": "a constant g: the result is 0 (shift invariance)",
                "zh": "g 為常數向量：結果為 0（平移不變性）",
            },
        ),
        Case(
            {"x": np.array([1000.0, 999.0, 998.0, 997.0]), "grad_p": rng.normal(size=4)},
            {"en": "large logits: exp would overflow", "zh": "很大的 logits：直接取 exp 會溢位"},
        ),
        Case(
            {"x": np.array([0.3]), "grad_p": np.array([7.0])},
            {"en": "a single class: the result is 0", "zh": "只有一個類別：結果為 0"},
        ),
        Case(
            {"x": rng.normal(scale=2.0, size=8), "grad_p": rng.normal(size=8)},
            {"en": "8 random logits and a random g", "zh": "8 個隨機 logits 與隨機的 g"},
        ),
    ]


def check_softmax_backward(fn, *, lang=None, quiet=False):
    """Check ``fn(x, grad_p)`` against :func:`softmax_backward` (J^T g).

    Parameters and return value as in :func:`check_gradient`.
    """
    return run_checker(
        exercise_title("2.3", "my_softmax_backward"),
        fn,
        softmax_backward,
        backward_cases(),
        lang=lang,
        quiet=quiet,
    )


# ---------------------------------------------------------------------------
# Typical wrong answers each checker must reject (tested in
# tests/test_exercises_ch02.py; the first is pasted into the stub by
# tests/test_run_all.py). Each source defines the learner's function.
# ---------------------------------------------------------------------------

MORE_WRONG_ANSWERS = {
    "my_gradient": {
        "sign error (e_y - p)": (
            "def my_gradient(x, y):\n    g = -celib.softmax(x)\n    g[y] += 1.0\n    return g\n"
        ),
        "softmax only (forgets -e_y)": ("def my_gradient(x, y):\n    return celib.softmax(x)\n"),
        "no max shift (overflow)": (
            "def my_gradient(x, y):\n"
            "    with np.errstate(over='ignore', invalid='ignore'):\n"
            "        e = np.exp(x)\n"
            "        g = e / e.sum()\n"
            "    g[y] -= 1.0\n"
            "    return g\n"
        ),
        "float32": (
            "def my_gradient(x, y):\n    return celib.cross_entropy_grad(x, y).astype(np.float32)\n"
        ),
    },
    "my_softmax_jacobian": {
        "sign error (p p^T - diag(p))": (
            "def my_softmax_jacobian(x):\n"
            "    p = celib.softmax(x)\n"
            "    return np.outer(p, p) - np.diag(p)\n"
        ),
        "diagonal only": (
            "def my_softmax_jacobian(x):\n"
            "    p = celib.softmax(x)\n"
            "    return np.diag(p * (1 - p))\n"
        ),
        "float32": (
            "def my_softmax_jacobian(x):\n"
            "    p = celib.softmax(x).astype(np.float32)\n"
            "    return np.diag(p) - np.outer(p, p)\n"
        ),
    },
    "my_softmax_backward": {
        "forgets the <p, g> term": (
            "def my_softmax_backward(x, grad_p):\n    return celib.softmax(x) * grad_p\n"
        ),
        "sum of g instead of <p, g>": (
            "def my_softmax_backward(x, grad_p):\n"
            "    p = celib.softmax(x)\n"
            "    return p * (grad_p - np.sum(grad_p))\n"
        ),
        "sign error": (
            "def my_softmax_backward(x, grad_p):\n"
            "    p = celib.softmax(x)\n"
            "    return p * (np.dot(p, grad_p) - grad_p)\n"
        ),
        "float32": (
            "def my_softmax_backward(x, grad_p):\n"
            "    p = celib.softmax(x)\n"
            "    return (p * (grad_p - np.dot(p, grad_p))).astype(np.float32)\n"
        ),
    },
}

WRONG_ANSWERS = first_wrong_answers(MORE_WRONG_ANSWERS)
