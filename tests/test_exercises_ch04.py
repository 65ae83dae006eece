"""Chapter 4's checkers accept the reference solutions and reject typical mistakes."""

import numpy as np
import pytest

import celib
from celib.exercises import ch04


def smoothed_target(target, num_classes, eps):
    return (1 - eps) * np.eye(num_classes)[np.asarray(target)] + eps / num_classes


def effective_target(target, weight, eps, ignore_index=-100):
    y = np.asarray(target)
    w = np.asarray(weight, dtype=float)
    C = len(w)
    kept = y != ignore_index
    y_safe = np.where(kept, y, 0)
    a = (1 - eps) * np.eye(C)[y_safe] * w[y_safe][:, None] + eps / C * w
    return a * kept[:, None]


def distillation_grad(student_logits, teacher_logits, T):
    p = celib.softmax(student_logits / T, axis=1)
    q = celib.softmax(teacher_logits / T, axis=1)
    return T * (p - q) / len(student_logits)


@pytest.mark.parametrize("lang", ["en", "zh"])
def test_checkers_accept_the_solutions(lang, capsys):
    assert ch04.check_smoothed_target(smoothed_target, lang=lang)
    assert ch04.check_effective_target(effective_target, lang=lang)
    assert ch04.check_distillation_grad(distillation_grad, lang=lang)
    assert capsys.readouterr().out.count("✓") == 3


def test_rejects_eps_over_c_minus_one_on_the_other_classes():
    def wrong(target, num_classes, eps):
        onehot = np.eye(num_classes)[np.asarray(target)]
        return (1 - eps) * onehot + eps / (num_classes - 1) * (1 - onehot)

    assert not ch04.check_smoothed_target(wrong, quiet=True)


def test_rejects_one_minus_eps_without_the_true_class_share():
    def wrong(target, num_classes, eps):
        onehot = np.eye(num_classes)[np.asarray(target)]
        return (1 - eps) * onehot + eps / num_classes * (1 - onehot)

    assert not ch04.check_smoothed_target(wrong, quiet=True)


def test_rejects_weighting_the_spread_by_the_true_class():
    def wrong(target, weight, eps, ignore_index=-100):
        y = np.asarray(target)
        w = np.asarray(weight, dtype=float)
        kept = y != ignore_index
        y_safe = np.where(kept, y, 0)
        q = (1 - eps) * np.eye(len(w))[y_safe] + eps / len(w)
        return q * w[y_safe][:, None] * kept[:, None]

    assert not ch04.check_effective_target(wrong, quiet=True)


def test_rejects_ignoring_the_weights():
    def wrong(target, weight, eps, ignore_index=-100):
        return effective_target(target, np.ones(len(weight)), eps, ignore_index)

    assert not ch04.check_effective_target(wrong, quiet=True)


def test_rejects_not_zeroing_ignored_rows():
    def wrong(target, weight, eps, ignore_index=-100):
        y = np.asarray(target)
        w = np.asarray(weight, dtype=float)
        y_safe = np.where(y != ignore_index, y, 0)
        return (1 - eps) * np.eye(len(w))[y_safe] * w[y_safe][:, None] + eps / len(w) * w

    assert not ch04.check_effective_target(wrong, quiet=True)


def test_rejects_a_missing_t_squared():
    def wrong(student_logits, teacher_logits, T):
        return distillation_grad(student_logits, teacher_logits, T) / T**2

    assert not ch04.check_distillation_grad(wrong, quiet=True)


def test_rejects_a_missing_chain_rule_factor():
    def wrong(student_logits, teacher_logits, T):
        return distillation_grad(student_logits, teacher_logits, T) * T

    assert not ch04.check_distillation_grad(wrong, quiet=True)


def test_rejects_a_sign_error():
    def wrong(student_logits, teacher_logits, T):
        return -distillation_grad(student_logits, teacher_logits, T)

    assert not ch04.check_distillation_grad(wrong, quiet=True)


def test_effective_target_reference_matches_torch():
    """sum_c a_nc (lse_n - x_nc) with the reference's a equals torch's unreduced loss."""
    torch = pytest.importorskip("torch")
    rng = np.random.default_rng(1)
    x = rng.normal(size=(4, 5))
    y = np.array([2, -100, 4, 0])
    w = np.array([1.0, 2.0, 0.5, 3.0, 1.5])
    a = ch04.reference_effective_target(y, w, 0.2)
    ours = (a * (celib.logsumexp(x, axis=1)[:, None] - x)).sum(axis=1)
    theirs = torch.nn.functional.cross_entropy(
        torch.tensor(x),
        torch.tensor(y),
        weight=torch.tensor(w),
        label_smoothing=0.2,
        reduction="none",
    ).numpy()
    np.testing.assert_allclose(ours, theirs, rtol=1e-12, atol=1e-14)


# -- every typical wrong answer in ch04.WRONG_ANSWERS / MORE_WRONG_ANSWERS is rejected --------

from exercise_helpers import assert_rejected, wrong_answer_params  # noqa: E402


@pytest.mark.parametrize("name,description,source", wrong_answer_params(ch04))
def test_typical_wrong_answers_are_rejected(name, description, source):
    with np.errstate(all="ignore"):
        assert_rejected(ch04, name, source)
