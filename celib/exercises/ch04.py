"""Checkers for chapter 4, "Soft targets and label smoothing".

The references follow PyTorch's ``cross_entropy`` (label smoothing as in
Szegedy et al. 2016, sec. 7) and Hinton, Vinyals and Dean, "Distilling the
Knowledge in a Neural Network" (2015) for the temperature and its T^2 factor.
Each checker calls the learner's function positionally and returns a
:class:`celib.exercises.CheckResult`; ``WRONG_ANSWERS`` and
``MORE_WRONG_ANSWERS`` hold typical mistakes the checkers reject.
"""

from __future__ import annotations

import numpy as np

from .. import reference
from ._core import Case, exercise_title, first_wrong_answers, run_checker

__all__ = [
    "check_smoothed_target",
    "check_effective_target",
    "check_distillation_grad",
    "WRONG_ANSWERS",
    "MORE_WRONG_ANSWERS",
]


# ---------------------------------------------------------------------------
# exercise 1: the smoothed target distribution
# ---------------------------------------------------------------------------


def reference_smoothed_target(target, num_classes, eps):
    """(1 - eps) onehot(y_n) + eps / C for each row: shape (N, C), float64.

    The eps / C goes to every class, the true one included, so the true class
    gets 1 - eps + eps / C.
    """
    y = np.asarray(target)
    onehot = np.eye(num_classes)[y]
    return (1.0 - eps) * onehot + eps / num_classes


def _smoothed_cases():
    return [
        Case(
            dict(target=np.array([0, 2, 1]), num_classes=3, eps=0.0),
            {"en": "eps = 0: the one-hot", "zh": "eps = 0：就是 one-hot"},
        ),
        Case(
            dict(target=np.array([0, 2, 1, 4]), num_classes=5, eps=0.1),
            {"en": "eps = 0.1, C = 5", "zh": "eps = 0.1，C = 5"},
        ),
        Case(
            dict(target=np.array([1]), num_classes=2, eps=0.2),
            {"en": "two classes", "zh": "兩個類別"},
        ),
        Case(
            dict(target=np.array([3, 0]), num_classes=4, eps=1.0),
            {"en": "eps = 1: uniform", "zh": "eps = 1：均勻分布"},
        ),
    ]


def check_smoothed_target(fn, *, lang=None, quiet=False):
    """Check ``fn(target, num_classes, eps)`` returns the smoothed targets, shape (N, C).

    Returns a CheckResult (rtol 1e-6, atol 1e-9; a float32 result is rejected).
    """
    return run_checker(
        exercise_title("4.1", "my_smoothed_target"),
        fn,
        reference_smoothed_target,
        _smoothed_cases(),
        lang=lang,
        quiet=quiet,
    )


# ---------------------------------------------------------------------------
# exercise 2: the effective target of class indices with weights, smoothing, ignore
# ---------------------------------------------------------------------------


def reference_effective_target(target, weight, eps, ignore_index=-100):
    """a_n = (1 - eps) w[y_n] onehot(y_n) + (eps / C) w, and 0 for an ignored y_n.

    ATen's ``cross_entropy_loss_label_smoothing`` for class-index targets;
    C is ``len(weight)``.
    """
    y = np.asarray(target).reshape(-1)
    w = np.asarray(weight, dtype=np.float64)
    C = len(w)
    keep = y != ignore_index
    y_safe = np.where(keep, y, 0)
    a = (1.0 - eps) * np.eye(C)[y_safe] * w[y_safe][:, None] + eps / C * w
    return np.where(keep[:, None], a, 0.0)


def _effective_cases():
    w = np.array([1.0, 2.0, 0.5, 3.0])
    return [
        Case(
            dict(target=np.array([0, 3]), weight=np.ones(4), eps=0.0),
            {"en": "no weights, no smoothing: one-hot", "zh": "無權重、無平滑：one-hot"},
        ),
        Case(
            dict(target=np.array([0, 3, 1]), weight=np.ones(4), eps=0.1),
            {"en": "smoothing only", "zh": "只有平滑"},
        ),
        Case(
            dict(target=np.array([0, 3, 1]), weight=w, eps=0.0),
            {"en": "weights only", "zh": "只有權重"},
        ),
        Case(
            dict(target=np.array([0, 3, 1, 2]), weight=w, eps=0.2),
            {
                "en": "weights and smoothing: the spread is weighted too",
                "zh": "權重加平滑：平均分出去的部分也要乘權重",
            },
        ),
        Case(
            dict(target=np.array([2, -100, 1]), weight=w, eps=0.2),
            {"en": "an ignored target: a zero row", "zh": "被忽略的目標：整列為 0"},
        ),
        Case(
            dict(target=np.array([3, 0, -100]), weight=np.ones(4), eps=0.1),
            {"en": "unit weights and an ignored target", "zh": "權重皆為 1，有一個被忽略的目標"},
        ),
        Case(
            dict(target=np.array([1, 5, 0]), weight=np.ones(6), eps=0.3, ignore_index=5),
            {
                "en": "ignore_index=5, a valid class number",
                "zh": "ignore_index=5，本身也是合法類別編號",
            },
        ),
    ]


def check_effective_target(fn, *, lang=None, quiet=False):
    """Check ``fn(target, weight, eps, ignore_index)`` returns a, shape (N, C).

    Called positionally with all four arguments (ignore_index defaults to -100).
    Returns a CheckResult (rtol 1e-6, atol 1e-9; a float32 result is rejected).
    """
    return run_checker(
        exercise_title("4.2", "my_effective_target"),
        fn,
        reference_effective_target,
        _effective_cases(),
        lang=lang,
        quiet=quiet,
        params=("target", "weight", "eps", ("ignore_index", -100)),
    )


# ---------------------------------------------------------------------------
# exercise 3: the distillation gradient
# ---------------------------------------------------------------------------


def reference_distillation_grad(student_logits, teacher_logits, T):
    """d/dz of T^2 * mean_n CE(z_n / T, softmax(v_n / T)) = T * (softmax(z/T) - softmax(v/T)) / N."""
    q = reference.softmax(teacher_logits / T, axis=1)
    return T * reference.cross_entropy_grad(student_logits / T, q)


def _distillation_cases():
    rng = np.random.default_rng(5)
    z = rng.normal(size=(3, 5)) * 3
    v = rng.normal(size=(3, 5)) * 3
    return [
        Case(
            dict(student_logits=z, teacher_logits=v, T=1.0),
            {"en": "T = 1: plain soft targets", "zh": "T = 1：一般的軟目標"},
        ),
        Case(dict(student_logits=z, teacher_logits=v, T=4.0), {"en": "T = 4", "zh": "T = 4"}),
        Case(
            dict(student_logits=z[:1], teacher_logits=v[:1], T=0.5),
            {"en": "T = 0.5, one row", "zh": "T = 0.5，單一列"},
        ),
        Case(
            dict(student_logits=z, teacher_logits=z.copy(), T=3.0),
            {"en": "student equals teacher: zero", "zh": "學生與老師相同：梯度為零"},
        ),
    ]


def check_distillation_grad(fn, *, lang=None, quiet=False):
    """Check ``fn(student_logits, teacher_logits, T)`` returns the gradient of
    T^2 * mean_n CE(student/T, softmax(teacher/T)) with respect to the student's logits.

    Returns a CheckResult (rtol 1e-6, atol 1e-9; a float32 result is rejected).
    """
    return run_checker(
        exercise_title("4.3", "my_distillation_grad"),
        fn,
        reference_distillation_grad,
        _distillation_cases(),
        lang=lang,
        quiet=quiet,
    )


# ---------------------------------------------------------------------------
# Typical wrong answers each checker must reject (tested in
# tests/test_exercises_ch04.py; the first is pasted into the stub by
# tests/test_run_all.py). Each source defines the learner's function.
# ---------------------------------------------------------------------------

MORE_WRONG_ANSWERS = {
    "my_smoothed_target": {
        "eps / (C - 1) to the other classes": (
            "def my_smoothed_target(target, num_classes, eps):\n"
            "    onehot = np.eye(num_classes)[np.asarray(target)]\n"
            "    return (1 - eps) * onehot + eps / (num_classes - 1) * (1 - onehot)\n"
        ),
        "no eps / C on the true class": (
            "def my_smoothed_target(target, num_classes, eps):\n"
            "    onehot = np.eye(num_classes)[np.asarray(target)]\n"
            "    return np.where(onehot == 1, 1 - eps, eps / num_classes)\n"
        ),
        "transposed (C, N)": (
            "def my_smoothed_target(target, num_classes, eps):\n"
            "    onehot = np.eye(num_classes)[np.asarray(target)]\n"
            "    return ((1 - eps) * onehot + eps / num_classes).T\n"
        ),
        "float32": (
            "def my_smoothed_target(target, num_classes, eps):\n"
            "    onehot = np.eye(num_classes, dtype=np.float32)[np.asarray(target)]\n"
            "    return (1 - np.float32(eps)) * onehot + np.float32(eps / num_classes)\n"
        ),
    },
    "my_effective_target": {
        "smoothing weighted by w[y_n] instead of w": (
            "def my_effective_target(target, weight, eps, ignore_index=-100):\n"
            "    y = np.asarray(target); w = np.asarray(weight, dtype=float); C = len(w)\n"
            "    kept = y != ignore_index; ys = np.where(kept, y, 0)\n"
            "    a = w[ys][:, None] * ((1 - eps) * np.eye(C)[ys] + eps / C)\n"
            "    return a * kept[:, None]\n"
        ),
        "ignore_index forgotten": (
            "def my_effective_target(target, weight, eps, ignore_index=-100):\n"
            "    y = np.asarray(target); w = np.asarray(weight, dtype=float); C = len(w)\n"
            "    return (1 - eps) * np.eye(C)[y] * w[y][:, None] + eps / C * w\n"
        ),
        "ignore_index forgotten with unit weights (-100 taken as -1)": (
            "def my_effective_target(target, weight, eps, ignore_index=-100):\n"
            "    y = np.asarray(target); w = np.asarray(weight, dtype=float); C = len(w)\n"
            "    a = (1 - eps) * np.eye(C)[y] * w[y][:, None] + eps / C * w\n"
            "    return a * (y != -100)[:, None]\n"
        ),
        "float32": (
            "def my_effective_target(target, weight, eps, ignore_index=-100):\n"
            "    y = np.asarray(target); w = np.asarray(weight, dtype=np.float32); C = len(w)\n"
            "    kept = y != ignore_index; ys = np.where(kept, y, 0)\n"
            "    a = (1 - eps) * np.eye(C, dtype=np.float32)[ys] * w[ys][:, None] + np.float32(eps / C) * w\n"
            "    return (a * kept[:, None]).astype(np.float32)\n"
        ),
    },
    "my_distillation_grad": {
        "without the T^2 (times 1/T)": (
            "def my_distillation_grad(student_logits, teacher_logits, T):\n"
            "    p = celib.softmax(student_logits / T); q = celib.softmax(teacher_logits / T)\n"
            "    return (p - q) / T / len(student_logits)\n"
        ),
        "without the chain rule's 1/T (times T^2)": (
            "def my_distillation_grad(student_logits, teacher_logits, T):\n"
            "    p = celib.softmax(student_logits / T); q = celib.softmax(teacher_logits / T)\n"
            "    return T**2 * (p - q) / len(student_logits)\n"
        ),
        "missing 1/N": (
            "def my_distillation_grad(student_logits, teacher_logits, T):\n"
            "    p = celib.softmax(student_logits / T); q = celib.softmax(teacher_logits / T)\n"
            "    return T * (p - q)\n"
        ),
        "sign error": (
            "def my_distillation_grad(student_logits, teacher_logits, T):\n"
            "    p = celib.softmax(student_logits / T); q = celib.softmax(teacher_logits / T)\n"
            "    return T * (q - p) / len(student_logits)\n"
        ),
        "float32": (
            "def my_distillation_grad(student_logits, teacher_logits, T):\n"
            "    p = celib.softmax(student_logits / T); q = celib.softmax(teacher_logits / T)\n"
            "    return (T * (p - q) / len(student_logits)).astype(np.float32)\n"
        ),
    },
}

WRONG_ANSWERS = first_wrong_answers(MORE_WRONG_ANSWERS)
