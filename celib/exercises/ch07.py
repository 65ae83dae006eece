"""Checkers for chapter 7, "Training on handwritten digits".

Softmax regression Z = X W + b (X of shape (N, D), W of shape (D, C), b of
shape (C,)) with the mean cross-entropy L = (1/N) sum_n loss_n. The chapter
derives, with G = dL/dZ = (softmax(Z) - onehot(y)) / N,

    dL/dW = X^T G        (D, C)
    dL/db = sum_n G_n    (C,)

Each checker takes the learner's function, runs it and the reference on the
same cases (edge cases included) and prints either that all cases pass or the
first failing case (naming the part, dW or db, that differs), in the
notebook's language. It returns a :class:`celib.exercises.CheckResult`.
``WRONG_ANSWERS`` and ``MORE_WRONG_ANSWERS`` hold typical mistakes the
checkers reject.

    from celib.exercises import ch07
    ch07.check_linear_grads(my_linear_grads)
"""

from __future__ import annotations

import numpy as np

from .. import reference
from ._core import Case, exercise_title, first_wrong_answers, run_checker

__all__ = [
    "check_linear_grads",
    "check_gd_step",
    "check_confusion_matrix",
    "WRONG_ANSWERS",
    "MORE_WRONG_ANSWERS",
]


def _problem(seed, N, D, C, scale=1.0, classes=None):
    rng = np.random.default_rng(seed)
    X = scale * rng.standard_normal((N, D))
    y = rng.integers(0, C, size=N) if classes is None else np.asarray(classes)
    W = 0.1 * rng.standard_normal((D, C))
    b = 0.1 * rng.standard_normal(C)
    return {"X": X, "y": y, "W": W, "b": b}


# ---------------------------------------------------------------------------
# exercise 1: dL/dW and dL/db of softmax regression
# ---------------------------------------------------------------------------


def _linear_grads(X, y, W, b):
    G = reference.cross_entropy_grad(X @ W + b, y)  # (P - Y) / N
    return X.T @ G, G.sum(axis=0)


def _grad_cases():
    return [
        Case(
            _problem(0, 6, 4, 3),
            {"en": "6 samples, 4 features, 3 classes", "zh": "6 個樣本、4 個特徵、3 個類別"},
        ),
        Case(
            _problem(1, 1, 5, 4), {"en": "a single sample (N = 1)", "zh": "只有一個樣本（N = 1）"}
        ),
        Case(_problem(2, 5, 3, 2), {"en": "two classes", "zh": "兩個類別"}),
        Case(
            _problem(3, 8, 4, 5, classes=[2] * 8),
            {"en": "every sample in the same class", "zh": "所有樣本同屬一個類別"},
        ),
        Case(
            _problem(4, 7, 3, 4, scale=1e4),
            {"en": "large logits (about 1000)", "zh": "很大的 logits（約 1000）"},
        ),
        Case(_problem(5, 9, 1, 3), {"en": "one feature (D = 1)", "zh": "只有一個特徵（D = 1）"}),
    ]


def check_linear_grads(fn, *, lang=None, quiet=False):
    """Check ``fn(X, y, W, b) -> (dW, db)`` for the mean cross-entropy of X @ W + b.

    Parameters
    ----------
    fn : callable
        Takes X (N, D), y (N,) int, W (D, C), b (C,), float64; returns dW (D, C)
        and db (C,).
    lang : {'en', 'zh'}, optional
    quiet : bool

    Returns
    -------
    CheckResult
        Truthy only when both parts match (rtol 1e-6, atol 1e-9; float32 rejected).
    """
    return run_checker(
        exercise_title("7.1", "my_linear_grads"),
        fn,
        _linear_grads,
        _grad_cases(),
        lang=lang,
        quiet=quiet,
        outputs=("dW", "db"),
    )


# ---------------------------------------------------------------------------
# exercise 2: one step of gradient descent
# ---------------------------------------------------------------------------


def _gd_step(X, y, W, b, lr):
    dW, db = _linear_grads(X, y, W, b)
    return W - lr * dW, b - lr * db


def check_gd_step(fn, *, lang=None, quiet=False):
    """Check ``fn(X, y, W, b, lr) -> (W_new, b_new)``, one full-batch gradient step.

    W_new = W - lr * dL/dW and b_new = b - lr * dL/db; the inputs must not be
    modified (each case hands the learner its own copies, so modifying them is
    not detected here, but returning them modified in place is fine).

    Returns
    -------
    CheckResult
        Truthy only when both parts match (rtol 1e-6, atol 1e-9; float32 rejected).
    """
    cases = [
        Case({**_problem(10, 6, 4, 3), "lr": 0.5}, {"en": "learning rate 0.5", "zh": "學習率 0.5"}),
        Case(
            {**_problem(11, 4, 3, 5), "lr": 0.0},
            {"en": "learning rate 0: nothing moves", "zh": "學習率 0：參數不動"},
        ),
        Case(
            {**_problem(12, 1, 2, 2), "lr": 2.0},
            {"en": "one sample, two classes", "zh": "一個樣本、兩個類別"},
        ),
        Case(
            {**_problem(13, 10, 5, 4, scale=100.0), "lr": 0.1},
            {"en": "large logits", "zh": "很大的 logits"},
        ),
    ]
    return run_checker(
        exercise_title("7.2", "my_gd_step"),
        fn,
        _gd_step,
        cases,
        lang=lang,
        quiet=quiet,
        outputs=("W_new", "b_new"),
    )


# ---------------------------------------------------------------------------
# exercise 3: the confusion matrix
# ---------------------------------------------------------------------------


def _confusion_matrix(y_true, y_pred, num_classes):
    M = np.zeros((num_classes, num_classes), dtype=np.int64)
    np.add.at(M, (np.asarray(y_true, dtype=np.intp), np.asarray(y_pred, dtype=np.intp)), 1)
    return M


def check_confusion_matrix(fn, *, lang=None, quiet=False):
    """Check ``fn(y_true, y_pred, num_classes) -> M`` with M[i, j] = #{n : y_n = i, pred_n = j}.

    Rows are true classes and columns predicted classes, as in
    ``sklearn.metrics.confusion_matrix``.

    Returns
    -------
    CheckResult
        Truthy only when every count matches exactly (any integer or float dtype).
    """

    def case(y_true, y_pred, k, label):
        return Case(
            {
                "y_true": np.array(y_true, dtype=np.int64),
                "y_pred": np.array(y_pred, dtype=np.int64),
                "num_classes": k,
            },
            label,
            rtol=0.0,
            atol=0.0,
        )

    cases = [
        case([0, 1, 2, 2, 1], [0, 2, 2, 1, 1], 3, {"en": "three classes", "zh": "三個類別"}),
        case(
            [0, 0, 1, 1],
            [1, 1, 1, 1],
            2,
            {"en": "one class never predicted", "zh": "有一個類別從未被預測"},
        ),
        case(
            [3, 1, 3],
            [3, 1, 0],
            5,
            {
                "en": "classes that never occur (num_classes = 5)",
                "zh": "有從未出現的類別（num_classes = 5）",
            },
        ),
        case(
            [2, 0, 1, 2],
            [2, 0, 1, 2],
            3,
            {"en": "all correct: a diagonal matrix", "zh": "全部答對：對角矩陣"},
        ),
        case([0, 0, 0], [2, 2, 2], 3, {"en": "repeated mistakes add up", "zh": "重複的錯誤要累加"}),
        case([], [], 4, {"en": "no samples", "zh": "沒有樣本"}),
    ]
    return run_checker(
        exercise_title("7.3", "my_confusion_matrix"),
        fn,
        _confusion_matrix,
        cases,
        lang=lang,
        quiet=quiet,
        exact=True,
    )


# ---------------------------------------------------------------------------
# Typical wrong answers each checker must reject (tested in
# tests/test_exercises_ch07.py; the first is pasted into the stub by
# tests/test_run_all.py). Each source defines the learner's function.
# ---------------------------------------------------------------------------

MORE_WRONG_ANSWERS = {
    "my_linear_grads": {
        "missing 1/N": (
            "def my_linear_grads(X, y, W, b):\n"
            "    G = celib.cross_entropy_grad(X @ W + b, y, reduction='sum')\n"
            "    return X.T @ G, G.sum(axis=0)\n"
        ),
        "dW transposed (C, D)": (
            "def my_linear_grads(X, y, W, b):\n"
            "    G = celib.cross_entropy_grad(X @ W + b, y)\n"
            "    return G.T @ X, G.sum(axis=0)\n"
        ),
        "db summed over the wrong axis": (
            "def my_linear_grads(X, y, W, b):\n"
            "    G = celib.cross_entropy_grad(X @ W + b, y)\n"
            "    return X.T @ G, G.sum(axis=1)\n"
        ),
        "db wrong (the mean over rows)": (
            "def my_linear_grads(X, y, W, b):\n"
            "    G = celib.cross_entropy_grad(X @ W + b, y)\n"
            "    return X.T @ G, G.mean(axis=0)\n"
        ),
        "sign error": (
            "def my_linear_grads(X, y, W, b):\n"
            "    G = celib.cross_entropy_grad(X @ W + b, y)\n"
            "    return -(X.T @ G), -G.sum(axis=0)\n"
        ),
        "a dict instead of a tuple": (
            "def my_linear_grads(X, y, W, b):\n"
            "    G = celib.cross_entropy_grad(X @ W + b, y)\n"
            "    return {'dW': X.T @ G, 'db': G.sum(axis=0)}\n"
        ),
        "float32": (
            "def my_linear_grads(X, y, W, b):\n"
            "    G = celib.cross_entropy_grad(X @ W + b, y).astype(np.float32)\n"
            "    return X.T.astype(np.float32) @ G, G.sum(axis=0)\n"
        ),
    },
    "my_gd_step": {
        "sign error (ascent)": (
            "def my_gd_step(X, y, W, b, lr):\n"
            "    G = celib.cross_entropy_grad(X @ W + b, y)\n"
            "    return W + lr * (X.T @ G), b + lr * G.sum(axis=0)\n"
        ),
        "bias not updated": (
            "def my_gd_step(X, y, W, b, lr):\n"
            "    G = celib.cross_entropy_grad(X @ W + b, y)\n"
            "    return W - lr * (X.T @ G), b\n"
        ),
        "missing 1/N": (
            "def my_gd_step(X, y, W, b, lr):\n"
            "    G = celib.cross_entropy_grad(X @ W + b, y, reduction='sum')\n"
            "    return W - lr * (X.T @ G), b - lr * G.sum(axis=0)\n"
        ),
        "float32": (
            "def my_gd_step(X, y, W, b, lr):\n"
            "    G = celib.cross_entropy_grad(X @ W + b, y)\n"
            "    return (W - lr * (X.T @ G)).astype(np.float32), b - lr * G.sum(axis=0)\n"
        ),
    },
    "my_confusion_matrix": {
        "transposed (rows predicted)": (
            "def my_confusion_matrix(y_true, y_pred, num_classes):\n"
            "    M = np.zeros((num_classes, num_classes), dtype=np.int64)\n"
            "    np.add.at(M, (y_pred, y_true), 1)\n"
            "    return M\n"
        ),
        "repeated pairs counted once": (
            "def my_confusion_matrix(y_true, y_pred, num_classes):\n"
            "    M = np.zeros((num_classes, num_classes), dtype=np.int64)\n"
            "    M[y_true, y_pred] += 1\n"
            "    return M\n"
        ),
        "size from the data, not num_classes": (
            "def my_confusion_matrix(y_true, y_pred, num_classes):\n"
            "    k = int(max(np.max(y_true, initial=-1), np.max(y_pred, initial=-1))) + 1\n"
            "    M = np.zeros((k, k), dtype=np.int64)\n"
            "    np.add.at(M, (y_true, y_pred), 1)\n"
            "    return M\n"
        ),
    },
}

WRONG_ANSWERS = first_wrong_answers(MORE_WRONG_ANSWERS)
