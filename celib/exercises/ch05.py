"""Checkers for chapter 5, numerical stability and precision.

Each checker runs the learner's function on cases that break a naive
implementation (large, very negative and -inf logits, confident rows) and
compares it with celib's NumPy reference; see :func:`celib.exercises.run_checker`.
"""

from __future__ import annotations

import numpy as np

from .. import reference
from ._core import Case, run_checker

__all__ = ["check_logsumexp", "check_log_softmax", "check_true_class_grad"]

_NEG_INF = -np.inf


def _lse_cases():
    rng = np.random.default_rng(5)
    return [
        Case({"x": np.array([0.0, 1.0, 2.0])},
             {"en": "small logits", "zh": "小的 logits"}),
        Case({"x": np.array([1000.0, 1000.5, 999.0])},
             {"en": "large logits: exp overflows", "zh": "很大的 logits：exp 溢位"}),
        Case({"x": np.array([-1000.0, -1001.0, -1002.0])},
             {"en": "very negative logits: exp underflows", "zh": "很負的 logits：exp 下溢"}),
        Case({"x": np.array([1e308, 1e308])},
             {"en": "near the float64 maximum", "zh": "接近 float64 的最大值"}),
        Case({"x": np.array([0.0, _NEG_INF, 3.0])},
             {"en": "a masked class (-inf)", "zh": "一個被遮蔽的類別（-inf）"}),
        Case({"x": np.array([_NEG_INF, _NEG_INF])},
             {"en": "every class masked: -inf", "zh": "所有類別都被遮蔽：結果為 -inf"}),
        Case({"x": 50.0 * rng.standard_normal((4, 6))},
             {"en": "a batch of rows, along the last axis", "zh": "一個批次的多列，沿最後一軸"}),
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
    bool
        True when every case matches :func:`celib.reference.logsumexp`.
    """
    return run_checker({"en": "logsumexp", "zh": "logsumexp（指數和的對數）"},
                       fn, lambda x: reference.logsumexp(x, axis=-1), _lse_cases(),
                       lang=lang, quiet=quiet)


def check_log_softmax(fn, *, lang=None, quiet=False):
    """Check ``fn(x)`` = log(softmax(x)) along the last axis, formed without log(0).

    The cases include a class 800 nats below the best one, whose probability
    underflows to 0 in float64 while its log-probability is a plain -800.

    Returns
    -------
    bool
        True when every case matches :func:`celib.reference.log_softmax`.
    """
    rng = np.random.default_rng(6)
    cases = [
        Case({"x": np.array([1.0, 2.0, 3.0])},
             {"en": "small logits", "zh": "小的 logits"}),
        Case({"x": np.array([0.0, -800.0, 1.0])},
             {"en": "a class whose probability underflows to 0", "zh": "機率下溢成 0 的類別"}),
        Case({"x": np.array([1000.0, 0.0, -5.0])},
             {"en": "large logits: exp overflows", "zh": "很大的 logits：exp 溢位"}),
        Case({"x": np.array([2.0, _NEG_INF, 0.0])},
             {"en": "a masked class (-inf) stays -inf", "zh": "被遮蔽的類別（-inf）維持 -inf"}),
        Case({"x": 30.0 * rng.standard_normal((3, 5))},
             {"en": "a batch of rows", "zh": "一個批次的多列"}),
    ]
    return run_checker({"en": "log_softmax", "zh": "log_softmax（對數機率）"},
                       fn, lambda x: reference.log_softmax(x, axis=-1), cases,
                       lang=lang, quiet=quiet)


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
    bool
        True when every case matches -(sum_{c != y} e_c) / sum_c e_c, with
        e_c = exp(x_c - max x), to a relative 1e-6.
    """
    def row(margin, C=5):
        x = np.zeros(C)
        x[2] = margin
        return x

    cases = [
        Case({"x": np.array([0.5, -1.0, 2.0, 0.0]), "y": 1},
             {"en": "an unlikely true class", "zh": "機率很小的正確類別"}, rtol=1e-6, atol=0.0),
        Case({"x": row(1.0), "y": 2},
             {"en": "a mildly confident row", "zh": "稍有把握的一列"}, rtol=1e-6, atol=0.0),
        Case({"x": row(20.0), "y": 2},
             {"en": "a confident row: p_y = 1 - 8e-9", "zh": "很有把握的一列：p_y = 1 - 8e-9"},
             rtol=1e-6, atol=0.0),
        Case({"x": row(40.0), "y": 2},
             {"en": "p_y rounds to 1 in float64", "zh": "p_y 在 float64 中捨入成 1"},
             rtol=1e-6, atol=0.0),
        Case({"x": row(700.0) + np.array([0.0, 3.0, 0.0, -1.0, 0.0]), "y": 2},
             {"en": "huge logits and a 700-nat margin", "zh": "極大的 logits，差距 700"},
             rtol=1e-6, atol=0.0),
    ]
    return run_checker({"en": "true-class gradient p_y - 1", "zh": "正確類別的梯度 p_y - 1"},
                       fn, _true_class_reference, cases, lang=lang, quiet=quiet)
