"""Checkers for chapter 10, "Related losses".

Each checker calls the learner's function on cases that include edge cases
(confident and extreme logits, soft targets, a single row, gamma = 0) and
compares it with :mod:`celib.losses`. All losses use reduction='mean'.

    from celib.exercises import ch10
    ch10.check_bce_grad(my_bce_grad)

Each checker calls the learner's function positionally and returns a
:class:`celib.exercises.CheckResult`; ``WRONG_ANSWERS`` and
``MORE_WRONG_ANSWERS`` hold typical mistakes the checkers reject.
"""

from __future__ import annotations

import numpy as np

from .. import losses, reference
from ._core import Case, exercise_title, first_wrong_answers, run_checker

__all__ = [
    "check_bce_grad",
    "check_focal_grad",
    "check_z_loss_grad",
    "check_softcap_ce_grad",
    "WRONG_ANSWERS",
    "MORE_WRONG_ANSWERS",
]


def _rng():
    return np.random.default_rng(10)


# ---------------------------------------------------------------------------
# exercise 1: the gradient of binary cross-entropy with logits
# ---------------------------------------------------------------------------


def _bce_reference(logits, target, weight):
    return losses.binary_cross_entropy_with_logits_grad(logits, target, weight=weight)


def _bce_cases():
    r = _rng()
    x = r.normal(size=(3, 4)) * 2
    y = (r.random((3, 4)) > 0.5).astype(np.float64)
    return [
        Case(
            dict(logits=np.array([0.0, 2.0, -1.0]), target=np.array([1.0, 0.0, 1.0]), weight=None),
            {"en": "three logits, no weight", "zh": "三個 logits，不加權重"},
        ),
        Case(
            dict(logits=x, target=y, weight=None), {"en": "a (3, 4) batch", "zh": "(3, 4) 的批次"}
        ),
        Case(
            dict(logits=x, target=y, weight=r.random((3, 4)) + 0.5),
            {"en": "a weight per element", "zh": "每個元素各有權重"},
        ),
        Case(
            dict(logits=x, target=np.full((3, 4), 0.3), weight=np.array([1.0, 2.0, 0.0, 0.5])),
            {"en": "soft targets, a weight per column", "zh": "軟標籤，每一行一個權重"},
        ),
        Case(
            dict(
                logits=np.array([-40.0, 40.0, 0.0]), target=np.array([0.0, 1.0, 1.0]), weight=None
            ),
            {"en": "confident logits ±40", "zh": "極有把握的 logits ±40"},
        ),
        Case(
            dict(
                logits=np.array([-800.0, 800.0, 3.0]), target=np.array([1.0, 0.0, 1.0]), weight=None
            ),
            {"en": "logits ±800: exp(-x) would overflow", "zh": "logits ±800：exp(-x) 會溢位"},
        ),
    ]


def check_bce_grad(fn, *, lang=None, quiet=False):
    """Check ``fn(logits, target, weight)`` = dL/dlogits of the mean BCE with logits.

    Returns a CheckResult, truthy only when every case matches
    :func:`celib.losses.binary_cross_entropy_with_logits_grad` (rtol 1e-6,
    atol 1e-9; float32 rejected).
    """
    name = exercise_title("10.1", "my_bce_grad")
    return run_checker(name, fn, _bce_reference, _bce_cases(), lang=lang, quiet=quiet)


# ---------------------------------------------------------------------------
# exercise 2: the focal-loss gradient
# ---------------------------------------------------------------------------


def _focal_reference(logits, target, gamma):
    return losses.focal_loss_grad(logits, target, gamma=gamma)


def _focal_cases():
    r = _rng()
    x = r.normal(size=(5, 4)) * 2
    y = r.integers(0, 4, 5)
    return [
        Case(
            dict(logits=np.array([[2.0, 0.0, -1.0]]), target=np.array([0]), gamma=2.0),
            {"en": "one row, gamma = 2", "zh": "一列，gamma = 2"},
        ),
        Case(
            dict(logits=x, target=y, gamma=0.0),
            {"en": "gamma = 0 (cross-entropy)", "zh": "gamma = 0（即交叉熵）"},
        ),
        Case(
            dict(logits=x, target=y, gamma=2.0),
            {"en": "a batch of 5, gamma = 2", "zh": "5 列的批次，gamma = 2"},
        ),
        Case(dict(logits=x, target=y, gamma=0.5), {"en": "gamma = 0.5", "zh": "gamma = 0.5"}),
        Case(
            dict(
                logits=np.array([[8.0, 0.0, 0.0], [0.0, 0.0, 8.0]]),
                target=np.array([0, 0]),
                gamma=2.0,
            ),
            {"en": "one easy row, one hard row", "zh": "一列容易、一列困難"},
        ),
    ]


def check_focal_grad(fn, *, lang=None, quiet=False):
    """Check ``fn(logits, target, gamma)`` = dL/dlogits of the mean softmax focal loss."""
    name = exercise_title("10.2", "my_focal_grad")
    return run_checker(name, fn, _focal_reference, _focal_cases(), lang=lang, quiet=quiet)


# ---------------------------------------------------------------------------
# exercise 3: the z-loss gradient
# ---------------------------------------------------------------------------


def _z_reference(logits, coef):
    return losses.z_loss_grad(logits, coef=coef)


def _z_cases():
    r = _rng()
    x = r.normal(size=(4, 6)) * 3
    return [
        Case(
            dict(logits=np.array([[1.0, 2.0, 3.0]]), coef=1e-4),
            {"en": "one row, PaLM's coefficient", "zh": "一列，PaLM 的係數"},
        ),
        Case(dict(logits=x, coef=0.1), {"en": "a batch of 4", "zh": "4 列的批次"}),
        Case(
            dict(logits=np.log(np.full((2, 4), 0.25)), coef=1.0),
            {"en": "rows with lse = 0 (zero gradient)", "zh": "lse = 0 的列（梯度為零）"},
        ),
        Case(
            dict(logits=np.array([[1000.0, 0.0], [-1000.0, -1001.0]]), coef=1e-4),
            {"en": "large logits ±1000", "zh": "很大的 logits ±1000"},
        ),
    ]


def check_z_loss_grad(fn, *, lang=None, quiet=False):
    """Check ``fn(logits, coef)`` = dL/dlogits of the mean z-loss ``coef * lse^2``."""
    name = exercise_title("10.3", "my_z_loss_grad")
    return run_checker(name, fn, _z_reference, _z_cases(), lang=lang, quiet=quiet)


# ---------------------------------------------------------------------------
# exercise 4: cross-entropy on soft-capped logits
# ---------------------------------------------------------------------------


def _softcap_reference(logits, target, cap):
    capped = losses.softcap(logits, cap)
    return reference.cross_entropy_grad(capped, target) * losses.softcap_grad(logits, cap)


def _softcap_cases():
    r = _rng()
    x = r.normal(size=(4, 5)) * 20
    y = r.integers(0, 5, 4)
    return [
        Case(
            dict(logits=np.array([[1.0, 0.0, -1.0]]), target=np.array([2]), cap=30.0),
            {"en": "small logits, cap 30", "zh": "小的 logits，cap 30"},
        ),
        Case(
            dict(logits=x, target=y, cap=30.0), {"en": "a batch, cap 30", "zh": "一個批次，cap 30"}
        ),
        Case(
            dict(logits=x, target=y, cap=5.0),
            {
                "en": "a batch, cap 5 (most logits saturate)",
                "zh": "一個批次，cap 5（多數 logits 飽和）",
            },
        ),
        Case(
            dict(logits=np.array([[100.0, -100.0, 0.0]]), target=np.array([1]), cap=10.0),
            {"en": "logits far beyond the cap", "zh": "遠超過 cap 的 logits"},
        ),
    ]


def check_softcap_ce_grad(fn, *, lang=None, quiet=False):
    """Check ``fn(logits, target, cap)`` = d/dlogits of mean cross_entropy(softcap(logits, cap))."""
    name = exercise_title("10.4", "my_softcap_ce_grad")
    return run_checker(name, fn, _softcap_reference, _softcap_cases(), lang=lang, quiet=quiet)


# ---------------------------------------------------------------------------
# Typical wrong answers each checker must reject (tested in
# tests/test_exercises_ch10.py; the first is pasted into the stub by
# tests/test_run_all.py). Each source defines the learner's function.
# ---------------------------------------------------------------------------

MORE_WRONG_ANSWERS = {
    "my_bce_grad": {
        "missing 1/size (sum)": (
            "def my_bce_grad(logits, target, weight):\n"
            "    s = 1 / (1 + np.exp(-np.clip(logits, -500, 500)))\n"
            "    w = 1.0 if weight is None else weight\n"
            "    return w * (s - target)\n"
        ),
        "divides by the number of rows, not of elements": (
            "def my_bce_grad(logits, target, weight):\n"
            "    s = 1 / (1 + np.exp(-np.clip(logits, -500, 500)))\n"
            "    w = 1.0 if weight is None else weight\n"
            "    return w * (s - target) / len(logits)\n"
        ),
        "sign error": (
            "def my_bce_grad(logits, target, weight):\n"
            "    s = 1 / (1 + np.exp(-np.clip(logits, -500, 500)))\n"
            "    w = 1.0 if weight is None else weight\n"
            "    return w * (target - s) / logits.size\n"
        ),
        "weight ignored": (
            "def my_bce_grad(logits, target, weight):\n"
            "    s = 1 / (1 + np.exp(-np.clip(logits, -500, 500)))\n"
            "    return (s - target) / logits.size\n"
        ),
        "float32": (
            "def my_bce_grad(logits, target, weight):\n"
            "    return celib.losses.binary_cross_entropy_with_logits_grad(\n"
            "        logits, target, weight=weight).astype(np.float32)\n"
        ),
    },
    "my_focal_grad": {
        "gamma ignored (the cross-entropy gradient)": (
            "def my_focal_grad(logits, target, gamma):\n"
            "    return celib.cross_entropy_grad(logits, target)\n"
        ),
        "missing 1/N": (
            "def my_focal_grad(logits, target, gamma):\n"
            "    return celib.losses.focal_loss_grad(logits, target, gamma=gamma) * len(logits)\n"
        ),
        "sign error": (
            "def my_focal_grad(logits, target, gamma):\n"
            "    return -celib.losses.focal_loss_grad(logits, target, gamma=gamma)\n"
        ),
        "float32": (
            "def my_focal_grad(logits, target, gamma):\n"
            "    return celib.losses.focal_loss_grad(logits, target, gamma=gamma).astype(np.float32)\n"
        ),
    },
    "my_z_loss_grad": {
        "missing the factor 2": (
            "def my_z_loss_grad(logits, coef):\n"
            "    lse = celib.logsumexp(logits)\n"
            "    return coef * lse[:, None] * celib.softmax(logits) / len(logits)\n"
        ),
        "missing 1/N": (
            "def my_z_loss_grad(logits, coef):\n"
            "    lse = celib.logsumexp(logits)\n"
            "    return 2 * coef * lse[:, None] * celib.softmax(logits)\n"
        ),
        "no max shift in lse (overflow)": (
            "def my_z_loss_grad(logits, coef):\n"
            "    with np.errstate(over='ignore', invalid='ignore', divide='ignore'):\n"
            "        lse = np.log(np.exp(logits).sum(axis=1))\n"
            "        return 2 * coef * lse[:, None] * celib.softmax(logits) / len(logits)\n"
        ),
        "float32": (
            "def my_z_loss_grad(logits, coef):\n"
            "    return celib.losses.z_loss_grad(logits, coef=coef).astype(np.float32)\n"
        ),
    },
    "my_softcap_ce_grad": {
        "chain-rule factor forgotten": (
            "def my_softcap_ce_grad(logits, target, cap):\n"
            "    return celib.cross_entropy_grad(cap * np.tanh(logits / cap), target)\n"
        ),
        "gradient of the raw logits": (
            "def my_softcap_ce_grad(logits, target, cap):\n"
            "    return celib.cross_entropy_grad(logits, target)\n"
        ),
        "factor 1 - tanh (not squared)": (
            "def my_softcap_ce_grad(logits, target, cap):\n"
            "    t = np.tanh(logits / cap)\n"
            "    return celib.cross_entropy_grad(cap * t, target) * (1 - t)\n"
        ),
        "float32": (
            "def my_softcap_ce_grad(logits, target, cap):\n"
            "    t = np.tanh(logits / cap)\n"
            "    return (celib.cross_entropy_grad(cap * t, target) * (1 - t**2)).astype(np.float32)\n"
        ),
    },
}

WRONG_ANSWERS = first_wrong_answers(MORE_WRONG_ANSWERS)
