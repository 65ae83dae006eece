"""Chapter 10's checkers accept correct solutions and reject typical mistakes."""

import numpy as np
import pytest

import celib
from celib.exercises import ch10


def sigmoid(x):
    return np.where(
        x >= 0, 1 / (1 + np.exp(-np.abs(x))), np.exp(-np.abs(x)) / (1 + np.exp(-np.abs(x)))
    )


# --- exercise 1: BCE with logits --------------------------------------------


def bce_right(logits, target, weight):
    w = 1.0 if weight is None else weight
    return w * (sigmoid(logits) - target) / logits.size


def bce_sign_error(logits, target, weight):
    return -bce_right(logits, target, weight)


def bce_missing_mean(logits, target, weight):
    return bce_right(logits, target, weight) * logits.size


def bce_ignores_weight(logits, target, weight):
    return bce_right(logits, target, None)


def bce_weight_in_denominator(logits, target, weight):
    w = np.ones_like(logits) if weight is None else np.broadcast_to(weight, logits.shape)
    return w * (sigmoid(logits) - target) / w.sum()


# --- exercise 2: focal loss -------------------------------------------------


def focal_right(logits, target, gamma):
    N = len(target)
    p = celib.softmax(logits)
    rows = np.arange(N)
    p_t = p[rows, target]
    q = 1 - p_t
    g = q**gamma - gamma * p_t * q ** (gamma - 1) * np.log(p_t) if gamma else np.ones(N)
    onehot = np.zeros_like(p)
    onehot[rows, target] = 1
    return g[:, None] * (p - onehot) / N


def focal_factor_held_constant(logits, target, gamma):
    """Treats (1 - p_t)^gamma as a constant weight: forgets the derivative of the factor."""
    N = len(target)
    p = celib.softmax(logits)
    rows = np.arange(N)
    onehot = np.zeros_like(p)
    onehot[rows, target] = 1
    return ((1 - p[rows, target]) ** gamma)[:, None] * (p - onehot) / N


def focal_wrong_sign_of_extra_term(logits, target, gamma):
    N = len(target)
    p = celib.softmax(logits)
    rows = np.arange(N)
    p_t = p[rows, target]
    q = 1 - p_t
    g = q**gamma + gamma * p_t * q ** (gamma - 1) * np.log(p_t) if gamma else np.ones(N)
    onehot = np.zeros_like(p)
    onehot[rows, target] = 1
    return g[:, None] * (p - onehot) / N


# --- exercise 3: z-loss -----------------------------------------------------


def z_right(logits, coef):
    return 2 * coef * celib.logsumexp(logits)[:, None] * celib.softmax(logits) / len(logits)


def z_missing_two(logits, coef):
    return z_right(logits, coef) / 2


def z_missing_mean(logits, coef):
    return z_right(logits, coef) * len(logits)


def z_naive_overflows(logits, coef):
    with np.errstate(over="ignore", invalid="ignore"):
        e = np.exp(logits)
        lse = np.log(e.sum(axis=1, keepdims=True))
        return 2 * coef * lse * e / e.sum(axis=1, keepdims=True) / len(logits)


# --- exercise 4: soft-capping -------------------------------------------------


def softcap_right(logits, target, cap):
    t = np.tanh(logits / cap)
    return celib.cross_entropy_grad(cap * t, target) * (1 - t**2)


def softcap_no_chain_rule(logits, target, cap):
    return celib.cross_entropy_grad(cap * np.tanh(logits / cap), target)


def softcap_wrong_factor(logits, target, cap):
    t = np.tanh(logits / cap)
    return celib.cross_entropy_grad(cap * t, target) * (1 - t**2) / cap


def not_implemented(*args, **kwargs):
    raise NotImplementedError


CHECKS = [
    (
        ch10.check_bce_grad,
        bce_right,
        [bce_sign_error, bce_missing_mean, bce_ignores_weight, bce_weight_in_denominator],
    ),
    (
        ch10.check_focal_grad,
        focal_right,
        [focal_factor_held_constant, focal_wrong_sign_of_extra_term],
    ),
    (ch10.check_z_loss_grad, z_right, [z_missing_two, z_missing_mean, z_naive_overflows]),
    (ch10.check_softcap_ce_grad, softcap_right, [softcap_no_chain_rule, softcap_wrong_factor]),
]


@pytest.mark.parametrize("check,right,_", CHECKS)
@pytest.mark.parametrize("lang", ["en", "zh"])
def test_accepts_a_correct_solution(check, right, _, lang, capsys):
    with np.errstate(divide="ignore", invalid="ignore"):
        assert check(right, lang=lang).passed is True
    out = capsys.readouterr().out
    assert out.startswith("✓")
    if lang == "zh":
        assert "全部" in out


@pytest.mark.parametrize("check,wrong", [(c, w) for c, _, ws in CHECKS for w in ws])
def test_rejects_a_typical_mistake(check, wrong, capsys):
    with np.errstate(divide="ignore", invalid="ignore", over="ignore"):
        assert check(wrong, lang="en").status == "fail"
    out = capsys.readouterr().out
    assert out.startswith("✗") and "expected" in out


@pytest.mark.parametrize("check", [c for c, _, _ in CHECKS])
def test_reports_an_unfinished_stub(check, capsys):
    assert check(not_implemented, lang="zh").status == "not_attempted"
    assert "NotImplementedError" in capsys.readouterr().out


@pytest.mark.parametrize("check,_r,_w", CHECKS)
def test_accepts_the_library_itself_quietly(check, _r, _w, capsys):
    from celib import losses

    library = {
        ch10.check_bce_grad: lambda logits, target, weight: (
            losses.binary_cross_entropy_with_logits_grad(logits, target, weight=weight)
        ),
        ch10.check_focal_grad: lambda logits, target, gamma: losses.focal_loss_grad(
            logits, target, gamma=gamma
        ),
        ch10.check_z_loss_grad: lambda logits, coef: losses.z_loss_grad(logits, coef=coef),
        ch10.check_softcap_ce_grad: lambda logits, target, cap: (
            celib.cross_entropy_grad(losses.softcap(logits, cap), target)
            * losses.softcap_grad(logits, cap)
        ),
    }[check]
    assert check(library, quiet=True).passed is True
    assert capsys.readouterr().out == ""


# -- every typical wrong answer in ch10.WRONG_ANSWERS / MORE_WRONG_ANSWERS is rejected --------

from exercise_helpers import assert_rejected, wrong_answer_params  # noqa: E402


@pytest.mark.parametrize("name,description,source", wrong_answer_params(ch10))
def test_typical_wrong_answers_are_rejected(name, description, source):
    with np.errstate(all="ignore"):
        assert_rejected(ch10, name, source)
