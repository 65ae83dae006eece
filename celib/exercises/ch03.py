"""Checkers for chapter 3, "Batches and reductions".

Each checker runs the learner's function on cases that include the edges a
batch brings (a single row, weights, ignored targets, a batch where every
target is ignored, K-dimensional inputs) and prints, in the notebook's
language, that every case passed, the first one that failed, or "not
attempted yet"; each returns a :class:`celib.exercises.CheckResult`. The
learner's function is called positionally with every parameter of its
signature (defaults filled in). ``WRONG_ANSWERS`` and ``MORE_WRONG_ANSWERS``
hold typical mistakes the checkers reject, among them ``ignore_index``
forgotten with and without class weights.
"""

from __future__ import annotations

import numpy as np

from .. import reference
from ._core import Case, exercise_title, first_wrong_answers, run_checker

__all__ = [
    "check_mean_denominator",
    "check_batch_grad",
    "check_accumulated_grad",
    "WRONG_ANSWERS",
    "MORE_WRONG_ANSWERS",
]


def _rng(seed):
    return np.random.default_rng(seed)


# ---------------------------------------------------------------------------
# exercise 1: the denominator of reduction='mean'
# ---------------------------------------------------------------------------


def reference_mean_denominator(target, weight=None, ignore_index=-100):
    """Sum of w[y_n] over the targets that are not ``ignore_index`` (their count without weights).

    PyTorch's rule for class-index targets (documentation of ``CrossEntropyLoss``,
    reduction='mean'; ATen's ``nll_loss`` ``total_weight``).
    """
    y = np.asarray(target).reshape(-1)
    keep = y != ignore_index
    if weight is None:
        return float(np.count_nonzero(keep))
    w = np.asarray(weight, dtype=np.float64)
    return float(w[y[keep]].sum())


def _denominator_cases():
    w = np.array([1.0, 2.0, 0.5, 3.0])
    return [
        Case(
            dict(target=np.array([0, 3, 1]), weight=None),
            {"en": "no weights: the count N", "zh": "沒有權重：就是個數 N"},
        ),
        Case(
            dict(target=np.array([0, -100, 3, 1, -100]), weight=None),
            {
                "en": "no weights, ignored targets: count the kept ones",
                "zh": "沒有權重、有被忽略的目標：只數留下的",
            },
        ),
        Case(
            dict(target=np.array([0, 3, 1, 3]), weight=w), {"en": "class weights", "zh": "類別權重"}
        ),
        Case(
            dict(target=np.array([0, -100, 3, -100]), weight=w),
            {"en": "weights and ignored targets", "zh": "權重加上被忽略的目標"},
        ),
        Case(
            dict(target=np.array([2, 5, 2]), weight=np.ones(6), ignore_index=5),
            {
                "en": "ignore_index=5, a valid class number",
                "zh": "ignore_index=5，本身也是合法類別編號",
            },
        ),
        Case(
            dict(target=np.array([[0, 1, -100], [3, -100, 3]]), weight=w),
            {"en": "K-dimensional target (N, d1)", "zh": "K 維目標 (N, d1)"},
        ),
        Case(
            dict(target=np.array([-100, -100]), weight=w),
            {"en": "every target ignored: 0", "zh": "所有目標都被忽略：0"},
        ),
    ]


_DENOMINATOR_PARAMS = ("target", ("weight", None), ("ignore_index", -100))


def check_mean_denominator(fn, *, lang=None, quiet=False):
    """Check ``fn(target, weight, ignore_index)`` returns reduction='mean''s denominator.

    Called positionally with all three arguments. Returns a CheckResult
    (rtol 1e-6, atol 1e-9; a float32 result is rejected).
    """
    return run_checker(
        exercise_title("3.1", "my_mean_denominator"),
        fn,
        reference_mean_denominator,
        _denominator_cases(),
        lang=lang,
        quiet=quiet,
        params=_DENOMINATOR_PARAMS,
    )


# ---------------------------------------------------------------------------
# exercise 2: the gradient of a batch, every reduction, weights, ignore_index
# ---------------------------------------------------------------------------


def reference_batch_grad(logits, target, weight=None, ignore_index=-100, reduction="mean"):
    """celib's closed-form gradient (``celib.cross_entropy_grad``)."""
    return reference.cross_entropy_grad(
        logits, target, weight=weight, ignore_index=ignore_index, reduction=reduction
    )


def _grad_cases():
    rng = _rng(3)
    x = rng.normal(size=(5, 4))
    y = np.array([0, 3, 1, 3, 2])
    w = np.array([1.0, 2.0, 0.5, 3.0])
    y_ign = np.array([0, -100, 1, 3, -100])
    x4 = rng.normal(size=(2, 4, 3))
    y4 = np.array([[0, 1, -100], [3, 3, 2]])
    return [
        Case(
            dict(logits=x[:1], target=y[:1], reduction="mean"),
            {"en": "one row, mean", "zh": "單一列，mean"},
        ),
        Case(dict(logits=x, target=y, reduction="sum"), {"en": "sum", "zh": "sum"}),
        Case(
            dict(logits=x, target=y, reduction="mean"), {"en": "mean: 1/N", "zh": "mean：乘上 1/N"}
        ),
        Case(
            dict(logits=x, target=y, reduction="none"),
            {"en": "none (upstream gradient 1)", "zh": "none（上游梯度為 1）"},
        ),
        Case(
            dict(logits=x, target=y, weight=w, reduction="sum"),
            {"en": "weights, sum", "zh": "權重，sum"},
        ),
        Case(
            dict(logits=x, target=y, weight=w, reduction="mean"),
            {
                "en": "weights, mean: divide by sum of w[y_n]",
                "zh": "權重，mean：除以 w[y_n] 的總和",
            },
        ),
        Case(
            dict(logits=x, target=y_ign, weight=w, reduction="mean"),
            {"en": "weights and ignored targets, mean", "zh": "權重加上被忽略的目標，mean"},
        ),
        Case(
            dict(logits=x, target=y_ign, reduction="mean"),
            {"en": "ignored targets without weights, mean", "zh": "沒有權重、有被忽略的目標，mean"},
        ),
        Case(
            dict(logits=x, target=y_ign, reduction="sum"),
            {"en": "ignored targets, sum: their rows are 0", "zh": "被忽略的目標，sum：那幾列為 0"},
        ),
        Case(
            dict(logits=x4, target=y4, weight=w, reduction="mean"),
            {"en": "K-dimensional input (N, C, d1)", "zh": "K 維輸入 (N, C, d1)"},
        ),
        Case(
            dict(logits=x, target=np.full(5, -100), reduction="mean"),
            {"en": "every target ignored: zero gradient", "zh": "所有目標都被忽略：梯度為零"},
        ),
    ]


def check_batch_grad(fn, *, lang=None, quiet=False):
    """Check ``fn(logits, target, weight, ignore_index, reduction)`` returns dL/dlogits
    of ``torch.nn.functional.cross_entropy`` (upstream gradient 1).

    Called positionally with all five arguments (defaults None, -100, 'mean').
    Returns a CheckResult (rtol 1e-6, atol 1e-9; a float32 result is rejected).
    """
    return run_checker(
        exercise_title("3.2", "my_batch_grad"),
        fn,
        reference_batch_grad,
        _grad_cases(),
        lang=lang,
        quiet=quiet,
        params=(
            "logits",
            "target",
            ("weight", None),
            ("ignore_index", -100),
            ("reduction", "mean"),
        ),
    )


# ---------------------------------------------------------------------------
# exercise 3: gradient accumulation over micro-batches
# ---------------------------------------------------------------------------


def reference_accumulated_grad(micro_logits, micro_targets, weight=None, ignore_index=-100):
    """The full batch's mean-reduction gradient, rows in the order of the micro-batches."""
    x = np.concatenate(micro_logits, axis=0)
    y = np.concatenate(micro_targets, axis=0)
    return reference.cross_entropy_grad(x, y, weight=weight, ignore_index=ignore_index)


def _accumulation_cases():
    rng = _rng(4)
    w = np.array([1.0, 2.0, 0.5, 3.0])
    xs = [rng.normal(size=(4, 4)), rng.normal(size=(4, 4))]
    same = [np.array([0, 1, 2, 3]), np.array([3, 2, 1, 0])]
    uneven = [np.array([0, 1, 2, 3]), np.array([3, -100, -100, -100])]
    three = [rng.normal(size=(3, 4)), rng.normal(size=(5, 4)), rng.normal(size=(2, 4))]
    three_y = [np.array([1, -100, 2]), np.array([0, 0, 3, -100, 1]), np.array([-100, -100])]
    return [
        Case(
            dict(micro_logits=xs, micro_targets=same),
            {"en": "two micro-batches, nothing ignored", "zh": "兩個微批次，沒有忽略任何目標"},
        ),
        Case(
            dict(micro_logits=xs, micro_targets=uneven),
            {"en": "4 and 1 counted targets", "zh": "分別有 4 個與 1 個計入的目標"},
        ),
        Case(
            dict(micro_logits=three, micro_targets=three_y),
            {
                "en": "three micro-batches, the last one all ignored",
                "zh": "三個微批次，最後一個全部被忽略",
            },
        ),
        Case(
            dict(micro_logits=xs, micro_targets=uneven, weight=w),
            {
                "en": "class weights: divide by the total sum of w[y_n]",
                "zh": "類別權重：除以全部 w[y_n] 的總和",
            },
        ),
    ]


def check_accumulated_grad(fn, *, lang=None, quiet=False):
    """Check ``fn(micro_logits, micro_targets, weight, ignore_index)``: the
    gradient of the full batch's mean loss, built one micro-batch at a time and
    returned as one array with the micro-batches' rows stacked in order.

    Called positionally with all four arguments (defaults None, -100).
    Returns a CheckResult (rtol 1e-6, atol 1e-9; a float32 result is rejected).
    """
    return run_checker(
        exercise_title("3.3", "my_accumulated_grad"),
        fn,
        reference_accumulated_grad,
        _accumulation_cases(),
        lang=lang,
        quiet=quiet,
        params=("micro_logits", "micro_targets", ("weight", None), ("ignore_index", -100)),
    )


# ---------------------------------------------------------------------------
# Typical wrong answers each checker must reject (tested in
# tests/test_exercises_ch03.py; the first is pasted into the stub by
# tests/test_run_all.py). Each source defines the learner's function.
# ---------------------------------------------------------------------------

MORE_WRONG_ANSWERS = {
    "my_mean_denominator": {
        "ignore_index forgotten without weights": (
            "def my_mean_denominator(target, weight=None, ignore_index=-100):\n"
            "    y = np.asarray(target).reshape(-1)\n"
            "    if weight is None:\n"
            "        return float(y.size)\n"
            "    kept = y[y != ignore_index]\n"
            "    return float(np.asarray(weight, dtype=float)[kept].sum())\n"
        ),
        "ignore_index forgotten with weights": (
            "def my_mean_denominator(target, weight=None, ignore_index=-100):\n"
            "    y = np.asarray(target).reshape(-1)\n"
            "    if weight is None:\n"
            "        return float(np.count_nonzero(y != ignore_index))\n"
            "    return float(np.asarray(weight, dtype=float)[y].sum())\n"
        ),
        "count instead of the sum of weights": (
            "def my_mean_denominator(target, weight=None, ignore_index=-100):\n"
            "    y = np.asarray(target).reshape(-1)\n"
            "    return float(np.count_nonzero(y != ignore_index))\n"
        ),
        "float32": (
            "def my_mean_denominator(target, weight=None, ignore_index=-100):\n"
            "    y = np.asarray(target).reshape(-1)\n"
            "    kept = y[y != ignore_index]\n"
            "    w = np.ones(1 + max(kept.max(initial=0), 0)) if weight is None else weight\n"
            "    return np.float32(np.asarray(w, dtype=np.float32)[kept].sum())\n"
        ),
    },
    "my_batch_grad": {
        "missing 1/N (sum for mean)": (
            "def my_batch_grad(logits, target, weight=None, ignore_index=-100, reduction='mean'):\n"
            "    red = 'sum' if reduction == 'mean' else reduction\n"
            "    return celib.cross_entropy_grad(logits, target, weight=weight,\n"
            "                                    ignore_index=ignore_index, reduction=red)\n"
        ),
        "sign error": (
            "def my_batch_grad(logits, target, weight=None, ignore_index=-100, reduction='mean'):\n"
            "    return -celib.cross_entropy_grad(logits, target, weight=weight,\n"
            "                                     ignore_index=ignore_index, reduction=reduction)\n"
        ),
        "ignore_index forgotten without weights (mean over all N)": (
            "def my_batch_grad(logits, target, weight=None, ignore_index=-100, reduction='mean'):\n"
            "    if weight is None and reduction == 'mean':\n"
            "        y = np.asarray(target)\n"
            "        g = celib.cross_entropy_grad(logits, target, ignore_index=ignore_index,\n"
            "                                     reduction='sum')\n"
            "        return g / y.size\n"
            "    return celib.cross_entropy_grad(logits, target, weight=weight,\n"
            "                                    ignore_index=ignore_index, reduction=reduction)\n"
        ),
        "ignore_index forgotten with weights (divides by every w[y_n])": (
            "def my_batch_grad(logits, target, weight=None, ignore_index=-100, reduction='mean'):\n"
            "    g = celib.cross_entropy_grad(logits, target, weight=weight,\n"
            "                                 ignore_index=ignore_index, reduction='sum')\n"
            "    if reduction != 'mean':\n"
            "        return celib.cross_entropy_grad(logits, target, weight=weight,\n"
            "                                        ignore_index=ignore_index, reduction=reduction)\n"
            "    y = np.asarray(target)\n"
            "    w = np.ones(logits.shape[1]) if weight is None else np.asarray(weight)\n"
            "    d = np.where(y == ignore_index, w[0], w[np.where(y == ignore_index, 0, y)]).sum()\n"
            "    return g / d\n"
        ),
        "weights ignored": (
            "def my_batch_grad(logits, target, weight=None, ignore_index=-100, reduction='mean'):\n"
            "    return celib.cross_entropy_grad(logits, target, ignore_index=ignore_index,\n"
            "                                    reduction=reduction)\n"
        ),
        "softmax over the last axis (wrong axis for (N, C, d1))": (
            "def my_batch_grad(logits, target, weight=None, ignore_index=-100, reduction='mean'):\n"
            "    if logits.ndim == 2:\n"
            "        return celib.cross_entropy_grad(logits, target, weight=weight,\n"
            "                                        ignore_index=ignore_index, reduction=reduction)\n"
            "    C = logits.shape[-1]\n"
            "    g = celib.cross_entropy_grad(logits.reshape(-1, C), np.zeros(logits.size // C, int))\n"
            "    return g.reshape(logits.shape)\n"
        ),
        "float32": (
            "def my_batch_grad(logits, target, weight=None, ignore_index=-100, reduction='mean'):\n"
            "    return celib.cross_entropy_grad(logits, target, weight=weight,\n"
            "                                    ignore_index=ignore_index,\n"
            "                                    reduction=reduction).astype(np.float32)\n"
        ),
    },
    "my_accumulated_grad": {
        "mean of the micro-batch means": (
            "def my_accumulated_grad(micro_logits, micro_targets, weight=None, ignore_index=-100):\n"
            "    T = len(micro_logits)\n"
            "    return np.concatenate([celib.cross_entropy_grad(x, t, weight=weight,\n"
            "                                                    ignore_index=ignore_index) / T\n"
            "                           for x, t in zip(micro_logits, micro_targets)])\n"
        ),
        "ignore_index forgotten in the count (divides by all rows)": (
            "def my_accumulated_grad(micro_logits, micro_targets, weight=None, ignore_index=-100):\n"
            "    total = sum(len(t) for t in micro_targets)\n"
            "    return np.concatenate([celib.cross_entropy_grad(x, t, weight=weight,\n"
            "                                                    ignore_index=ignore_index,\n"
            "                                                    reduction='sum') / total\n"
            "                           for x, t in zip(micro_logits, micro_targets)])\n"
        ),
        "weights forgotten in the denominator": (
            "def my_accumulated_grad(micro_logits, micro_targets, weight=None, ignore_index=-100):\n"
            "    total = sum(np.count_nonzero(np.asarray(t) != ignore_index) for t in micro_targets)\n"
            "    return np.concatenate([celib.cross_entropy_grad(x, t, weight=weight,\n"
            "                                                    ignore_index=ignore_index,\n"
            "                                                    reduction='sum') / total\n"
            "                           for x, t in zip(micro_logits, micro_targets)])\n"
        ),
        "float32": (
            "def my_accumulated_grad(micro_logits, micro_targets, weight=None, ignore_index=-100):\n"
            "    x = np.concatenate(micro_logits)\n"
            "    y = np.concatenate(micro_targets)\n"
            "    return celib.cross_entropy_grad(x, y, weight=weight,\n"
            "                                    ignore_index=ignore_index).astype(np.float32)\n"
        ),
    },
}

WRONG_ANSWERS = first_wrong_answers(MORE_WRONG_ANSWERS)
