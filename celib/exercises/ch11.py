"""Checkers for chapter 11, "Second order".

Each checker calls the learner's function on cases that include edge cases (a
confident row, a masked class, an effective target of mass other than 1, tiny and
large eigenvalues) and compares it with celib.

    from celib.exercises import ch11
    ch11.check_row_hessian(my_row_hessian)

Each checker calls the learner's function positionally and returns a
:class:`celib.exercises.CheckResult`, truthy only on a pass; ``WRONG_ANSWERS``
and ``MORE_WRONG_ANSWERS`` hold typical mistakes the checkers reject.
"""

from __future__ import annotations

import numpy as np

from .. import reference, second_order
from ._core import Case, exercise_title, first_wrong_answers, run_checker

__all__ = [
    "MORE_WRONG_ANSWERS",
    "WRONG_ANSWERS",
    "check_hvp",
    "check_power_iteration",
    "check_row_hessian",
]


def _rng():
    return np.random.default_rng(11)


# ---------------------------------------------------------------------------
# exercise 1: the Hessian of one row's loss
# ---------------------------------------------------------------------------


def _row_hessian_reference(z, a):
    """A (diag(p) - p p^T) with A = sum(a): the Hessian of sum_c a_c (lse(z) - z_c)."""
    p = reference.softmax(z)
    return a.sum() * (np.diag(p) - np.outer(p, p))


def _row_hessian_cases():
    r = _rng()
    return [
        Case(
            {"z": np.array([1.0, 2.0, 0.5]), "a": np.array([0.0, 1.0, 0.0])},
            {"en": "three logits, a one-hot target", "zh": "三個 logits，one-hot 目標"},
        ),
        Case(
            {"z": r.normal(size=5), "a": np.array([0.02, 0.02, 0.92, 0.02, 0.02])},
            {"en": "label smoothing 0.1", "zh": "標籤平滑 0.1"},
        ),
        Case(
            {"z": r.normal(size=4), "a": np.array([0.0, 0.0, 2.5, 0.0])},
            {"en": "class weight 2.5 (mass 2.5)", "zh": "類別權重 2.5（質量 2.5）"},
        ),
        Case(
            {"z": np.array([0.3, -np.inf, 1.2, 0.0]), "a": np.array([0.5, 0.0, 0.25, 0.25])},
            {"en": "a masked class (logit -inf)", "zh": "一個被遮蔽的類別（logit 為 -inf）"},
        ),
        Case(
            {"z": np.array([30.0, 0.0, -5.0]), "a": np.array([1.0, 0.0, 0.0])},
            {"en": "a confident row", "zh": "極有把握的一列"},
            atol=1e-15,
        ),
        Case(
            {"z": np.array([1000.0, 999.0]), "a": np.array([0.0, 1.0])},
            {"en": "large logits (1000)", "zh": "很大的 logits（1000）"},
        ),
    ]


def check_row_hessian(fn, *, lang=None, quiet=False):
    """Check ``fn(z, a)`` = the (C, C) Hessian of sum_c a_c (lse(z) - z_c) with respect to z.

    The reference is A (diag(p) - p p^T) with p = softmax(z) and A = sum(a) (chapter 11,
    section 11.1: the Hessian of one row scaled by the effective target's mass).

    Parameters
    ----------
    fn : callable
        The learner's ``my_row_hessian(z, a)``: ``z`` float64 (C,) logits (a masked
        class has -inf), ``a`` float64 (C,) effective target, non-negative, any total.
    lang : {'en', 'zh'}, optional
        Language of the report; defaults to the notebook's.
    quiet : bool
        Return the result without printing.

    Returns
    -------
    CheckResult
        Truthy only when every case matches (rtol 1e-6, atol 1e-9; atol 1e-15 for
        the confident row, 1e-30 where it needs the shift), float64.
    """
    return run_checker(
        exercise_title("11.1", "my_row_hessian"),
        fn,
        _row_hessian_reference,
        _row_hessian_cases(),
        lang=lang,
        quiet=quiet,
    )


# ---------------------------------------------------------------------------
# exercise 2: the Hessian-vector product of the mean cross-entropy of a batch
# ---------------------------------------------------------------------------


def _hvp_reference(Z, y, V):
    return second_order.cross_entropy_hvp(Z, y, V)


def _hvp_cases():
    r = _rng()
    Z = r.normal(size=(4, 3)) * 2
    return [
        Case(
            {
                "Z": np.array([[1.0, 2.0, 0.5]]),
                "y": np.array([1]),
                "V": np.array([[1.0, 0.0, 0.0]]),
            },
            {"en": "one row, V a unit vector", "zh": "一列，V 為單位向量"},
        ),
        Case(
            {"Z": Z, "y": np.array([0, 2, 1, 1]), "V": r.normal(size=(4, 3))},
            {"en": "a batch of 4, C = 3", "zh": "4 列的批次，C = 3"},
        ),
        Case(
            {"Z": r.normal(size=(3, 6)), "y": np.array([5, 0, 3]), "V": r.normal(size=(3, 6))},
            {"en": "N = 3, C = 6", "zh": "N = 3，C = 6"},
        ),
        Case(
            {"Z": Z, "y": np.array([0, 2, 1, 1]), "V": np.ones((4, 3))},
            {"en": "V all ones (H V = 0)", "zh": "V 全為 1（H V = 0）"},
        ),
        Case(
            {
                "Z": np.array([[40.0, 0.0, 0.0], [0.0, 0.0, 0.0]]),
                "y": np.array([0, 2]),
                "V": np.array([[0.0, 1.0, 2.0], [1.0, -1.0, 0.0]]),
            },
            {"en": "a confident row and a uniform row", "zh": "一列極有把握，一列均勻"},
            atol=1e-15,
        ),
        # p . v rounds to v_0 here, so P * (V - P . V) loses entry 0 (about -6e-18)
        # entirely; shifting V by its entry at the most probable class keeps every digit.
        Case(
            {
                "Z": np.array([[40.0, 0.0, 0.0]]),
                "y": np.array([0]),
                "V": np.array([[1.0, 2.0, 3.0]]),
            },
            {
                "en": "a confident row, V nonzero on its top class (needs the shift)",
                "zh": "一列極有把握，V 在最可能的類別上不為 0（需要平移）",
            },
            atol=1e-30,
        ),
    ]


def check_hvp(fn, *, lang=None, quiet=False):
    """Check ``fn(Z, y, V)`` = H V for the mean cross-entropy of (N, C) logits Z.

    The reference is :func:`celib.cross_entropy_hvp`: row n of H V is
    (p_n * v_n - p_n (p_n . v_n)) / N, p_n = softmax(z_n).

    Parameters
    ----------
    fn : callable
        The learner's ``my_hvp(Z, y, V)``: ``Z`` float64 (N, C) logits, ``y`` int (N,)
        class indices, ``V`` float64 (N, C) direction.
    lang : {'en', 'zh'}, optional
        Language of the report; defaults to the notebook's.
    quiet : bool
        Return the result without printing.

    Returns
    -------
    CheckResult
        Truthy only when every case matches (rtol 1e-6, atol 1e-9; atol 1e-15 for
        the confident row, 1e-30 where it needs the shift), float64 (N, C).
    """
    return run_checker(
        exercise_title("11.2", "my_hvp"), fn, _hvp_reference, _hvp_cases(), lang=lang, quiet=quiet
    )


# ---------------------------------------------------------------------------
# exercise 3: power iteration for the largest eigenvalue
# ---------------------------------------------------------------------------


class MatVec:
    """v -> M v for a symmetric matrix M, with a readable repr (the checker prints inputs)."""

    def __init__(self, matrix, label):
        self.matrix = np.asarray(matrix, np.float64)
        self.label = label

    def __call__(self, v):
        return self.matrix @ v

    def __repr__(self):
        return self.label


def _power_iteration_reference(matvec, v0, steps):
    v = v0 / np.linalg.norm(v0)
    for _ in range(steps):
        w = matvec(v)
        v = w / np.linalg.norm(w)
    return float(v @ matvec(v))


def _ce_hessian(n_rows, C, seed):
    """The (N C, N C) Hessian of the mean cross-entropy of random logits (block diagonal)."""
    r = np.random.default_rng(seed)
    Z = r.normal(size=(n_rows, C))
    H = np.zeros((n_rows * C, n_rows * C))
    for n in range(n_rows):
        H[n * C : (n + 1) * C, n * C : (n + 1) * C] = reference.softmax_jacobian(Z[n]) / n_rows
    return H


def _power_iteration_cases():
    r = _rng()
    Q, _ = np.linalg.qr(r.normal(size=(5, 5)))
    big = Q @ np.diag([1500.0, 300.0, 10.0, 1.0, 0.5]) @ Q.T
    return [
        Case(
            {
                "matvec": MatVec(np.diag([3.0, 1.0, 0.5]), "v -> diag(3, 1, 0.5) @ v"),
                "v0": np.ones(3),
                "steps": 100,
            },
            {"en": "diag(3, 1, 0.5)", "zh": "diag(3, 1, 0.5)"},
            rtol=1e-8,
        ),
        Case(
            {
                "matvec": MatVec(big, "v -> M @ v, eigenvalues 1500, 300, 10, 1, 0.5"),
                "v0": np.ones(5),
                "steps": 200,
            },
            {"en": "largest eigenvalue 1500 (200 steps)", "zh": "最大特徵值 1500（200 步）"},
            rtol=1e-8,
        ),
        Case(
            {
                "matvec": MatVec(
                    _ce_hessian(40, 5, 0),
                    "v -> H @ v, H the Hessian of a mean cross-entropy, N = 40, C = 5",
                ),
                "v0": np.linspace(-1.0, 1.0, 200),
                "steps": 400,
            },
            {
                "en": "a cross-entropy Hessian (eigenvalues below 1/80)",
                "zh": "交叉熵的黑塞矩陣（特徵值小於 1/80）",
            },
            rtol=1e-8,
            atol=1e-12,
        ),
    ]


def check_power_iteration(fn, *, lang=None, quiet=False):
    """Check ``fn(matvec, v0, steps)`` = the Rayleigh quotient after ``steps`` power iterations.

    Starting from v0, each step replaces v by matvec(v) normalised; the function returns
    v . matvec(v) for the final unit vector v. Cases converge, so the norm of the last
    product is accepted as well.

    Parameters
    ----------
    fn : callable
        The learner's ``my_power_iteration(matvec, v0, steps)``: ``matvec`` a callable
        v -> M v for a symmetric M, ``v0`` float64 (n,) start, ``steps`` an int.
    lang : {'en', 'zh'}, optional
        Language of the report; defaults to the notebook's.
    quiet : bool
        Return the result without printing.

    Returns
    -------
    CheckResult
        Truthy only when every case matches (rtol 1e-8), a float64 scalar.
    """
    return run_checker(
        exercise_title("11.3", "my_power_iteration"),
        fn,
        _power_iteration_reference,
        _power_iteration_cases(),
        lang=lang,
        quiet=quiet,
    )


# ---------------------------------------------------------------------------
# Typical wrong answers each checker must reject (tested in
# tests/test_exercises_ch11.py; the first is pasted into the stub by
# tests/test_run_all.py). Each source defines the learner's function.
# ---------------------------------------------------------------------------

MORE_WRONG_ANSWERS = {
    "my_row_hessian": {
        "sign error (p p^T - diag(p))": (
            "def my_row_hessian(z, a):\n"
            "    p = np.exp(z - z.max()) / np.exp(z - z.max()).sum()\n"
            "    return a.sum() * (np.outer(p, p) - np.diag(p))\n"
        ),
        "outer product forgotten (diag(p) only)": (
            "def my_row_hessian(z, a):\n    return a.sum() * np.diag(celib.softmax(z))\n"
        ),
        "the target's mass sum(a) forgotten": (
            "def my_row_hessian(z, a):\n"
            "    p = celib.softmax(z)\n"
            "    return np.diag(p) - np.outer(p, p)\n"
        ),
        "diag(p) - p a^T (the target in place of the second p)": (
            "def my_row_hessian(z, a):\n"
            "    p = celib.softmax(z)\n"
            "    return a.sum() * np.diag(p) - np.outer(p, a)\n"
        ),
        "diag(p) - a p^T (transposed)": (
            "def my_row_hessian(z, a):\n"
            "    p = celib.softmax(z)\n"
            "    return (a.sum() * np.diag(p) - np.outer(p, a)).T\n"
        ),
        "softmax without the max shift (overflows at logits of 1000)": (
            "def my_row_hessian(z, a):\n"
            "    with np.errstate(over='ignore', invalid='ignore'):\n"
            "        p = np.exp(z) / np.exp(z).sum()\n"
            "    return a.sum() * (np.diag(p) - np.outer(p, p))\n"
        ),
        "float32": (
            "def my_row_hessian(z, a):\n"
            "    p = celib.softmax(z)\n"
            "    return (a.sum() * (np.diag(p) - np.outer(p, p))).astype(np.float32)\n"
        ),
    },
    "my_hvp": {
        "the mean's 1/N forgotten": (
            "def my_hvp(Z, y, V):\n"
            "    P = np.exp(Z - Z.max(axis=1, keepdims=True))\n"
            "    P /= P.sum(axis=1, keepdims=True)\n"
            "    return P * V - P * (P * V).sum(axis=1, keepdims=True)\n"
        ),
        "sign error (P (P . V) - P * V)": (
            "def my_hvp(Z, y, V):\n"
            "    P = celib.softmax(Z, axis=1)\n"
            "    return (P * (P * V).sum(axis=1, keepdims=True) - P * V) / len(Z)\n"
        ),
        "outer-product term forgotten (P * V / N)": (
            "def my_hvp(Z, y, V):\n    return celib.softmax(Z, axis=1) * V / len(Z)\n"
        ),
        "p . v summed over the batch (axis 0) instead of the classes": (
            "def my_hvp(Z, y, V):\n"
            "    P = celib.softmax(Z, axis=1)\n"
            "    return (P * V - P * (P * V).sum(axis=0, keepdims=True)) / len(Z)\n"
        ),
        "transposed result (C, N)": (
            "def my_hvp(Z, y, V):\n"
            "    P = celib.softmax(Z, axis=1)\n"
            "    return ((P * V - P * (P * V).sum(axis=1, keepdims=True)) / len(Z)).T\n"
        ),
        "the gradient instead of H V": (
            "def my_hvp(Z, y, V):\n    return celib.cross_entropy_grad(Z, y)\n"
        ),
        "no shift: a confident row loses its true-class entry": (
            "def my_hvp(Z, y, V):\n"
            "    P = celib.softmax(Z, axis=1)\n"
            "    return (P * V - P * (P * V).sum(axis=1, keepdims=True)) / len(Z)\n"
        ),
        "float32": (
            "def my_hvp(Z, y, V):\n"
            "    P = celib.softmax(Z, axis=1)\n"
            "    HV = (P * V - P * (P * V).sum(axis=1, keepdims=True)) / len(Z)\n"
            "    return HV.astype(np.float32)\n"
        ),
    },
    "my_power_iteration": {
        "never normalised: v overflows (or underflows) after enough steps": (
            "def my_power_iteration(matvec, v0, steps):\n"
            "    v = v0\n"
            "    for _ in range(steps):\n"
            "        v = matvec(v)\n"
            "    return float(v @ matvec(v) / (v @ v))\n"
        ),
        "v keeps the norm of v0 (the quotient not divided by v . v)": (
            "def my_power_iteration(matvec, v0, steps):\n"
            "    v = v0\n"
            "    for _ in range(steps):\n"
            "        w = matvec(v)\n"
            "        v = w / np.linalg.norm(w) * np.linalg.norm(v0)\n"
            "    return float(v @ matvec(v))\n"
        ),
        "the Rayleigh quotient of v0 (no iteration)": (
            "def my_power_iteration(matvec, v0, steps):\n"
            "    v = v0 / np.linalg.norm(v0)\n"
            "    return float(v @ matvec(v))\n"
        ),
        "returns the eigenvector instead of the eigenvalue": (
            "def my_power_iteration(matvec, v0, steps):\n"
            "    v = v0 / np.linalg.norm(v0)\n"
            "    for _ in range(steps):\n"
            "        w = matvec(v)\n"
            "        v = w / np.linalg.norm(w)\n"
            "    return v\n"
        ),
        "float32": (
            "def my_power_iteration(matvec, v0, steps):\n"
            "    v = v0 / np.linalg.norm(v0)\n"
            "    for _ in range(steps):\n"
            "        w = matvec(v)\n"
            "        v = w / np.linalg.norm(w)\n"
            "    return np.float32(v @ matvec(v))\n"
        ),
    },
}

WRONG_ANSWERS = first_wrong_answers(MORE_WRONG_ANSWERS)
