"""Chapter 3's checkers accept the reference solutions and reject typical mistakes."""

import numpy as np
import pytest

import celib
from celib.exercises import ch03

torch = pytest.importorskip("torch")


# -- the solutions shown in the chapter ---------------------------------------


def mean_denominator(target, weight=None, ignore_index=-100):
    y = np.asarray(target).reshape(-1)
    kept = y[y != ignore_index]
    if weight is None:
        return float(kept.size)
    return float(np.asarray(weight, dtype=float)[kept].sum())


def batch_grad(
    logits,
    target,
    weight=None,
    ignore_index=-100,
    reduction="mean",
    divide_by_n=True,
    use_weights=True,
):
    moved = np.moveaxis(logits, 1, -1)
    C = moved.shape[-1]
    x = moved.reshape(-1, C)
    y = np.asarray(target).reshape(-1)
    w = np.ones(C) if (weight is None or not use_weights) else np.asarray(weight, dtype=float)
    kept = y != ignore_index
    y_safe = np.where(kept, y, 0)
    a = np.eye(C)[y_safe] * np.where(kept, w[y_safe], 0.0)[:, None]
    G = celib.softmax(x, axis=1) * a.sum(axis=1, keepdims=True) - a
    if reduction == "mean" and divide_by_n and a.sum() > 0:
        G = G / a.sum()
    return np.moveaxis(G.reshape(moved.shape), -1, 1)


def accumulated_grad(micro_logits, micro_targets, weight=None, ignore_index=-100):
    total = sum(mean_denominator(t, weight, ignore_index) for t in micro_targets)
    grads = [
        celib.cross_entropy_grad(x, t, weight=weight, ignore_index=ignore_index, reduction="sum")
        / total
        for x, t in zip(micro_logits, micro_targets)
    ]
    return np.concatenate(grads, axis=0)


# -- accepted -------------------------------------------------------------------


@pytest.mark.parametrize("lang", ["en", "zh"])
def test_checkers_accept_the_solutions(lang, capsys):
    assert ch03.check_mean_denominator(mean_denominator, lang=lang)
    assert ch03.check_batch_grad(batch_grad, lang=lang)
    assert ch03.check_accumulated_grad(accumulated_grad, lang=lang)
    out = capsys.readouterr().out
    assert out.count("✓") == 3


def test_mean_denominator_reference_is_pytorchs():
    """sum / mean of torch's loss recovers the denominator the reference states."""
    rng = np.random.default_rng(0)
    x = torch.tensor(rng.normal(size=(6, 4)))
    y = torch.tensor([0, -100, 3, 1, -100, 3])
    w = torch.tensor([1.0, 2.0, 0.5, 3.0], dtype=torch.float64)
    ratio = (
        torch.nn.functional.cross_entropy(x, y, weight=w, reduction="sum")
        / torch.nn.functional.cross_entropy(x, y, weight=w)
    ).item()
    assert ratio == pytest.approx(ch03.reference_mean_denominator(y.numpy(), w.numpy()))


# -- rejected -------------------------------------------------------------------


def test_rejects_a_denominator_that_counts_ignored_targets():
    def wrong(target, weight=None, ignore_index=-100):
        y = np.asarray(target).reshape(-1)
        return (
            float(y.size)
            if weight is None
            else float(np.asarray(weight)[np.where(y < 0, 0, y)].sum())
        )

    assert not ch03.check_mean_denominator(wrong, quiet=True)


def test_rejects_a_denominator_without_weights():
    def wrong(target, weight=None, ignore_index=-100):
        return mean_denominator(target, None, ignore_index)

    assert not ch03.check_mean_denominator(wrong, quiet=True)


def test_rejects_missing_one_over_n():
    def wrong(logits, target, weight=None, ignore_index=-100, reduction="mean"):
        return batch_grad(logits, target, weight, ignore_index, reduction, divide_by_n=False)

    assert not ch03.check_batch_grad(wrong, quiet=True)


def test_rejects_ignoring_the_weights():
    def wrong(logits, target, weight=None, ignore_index=-100, reduction="mean"):
        return batch_grad(logits, target, weight, ignore_index, reduction, use_weights=False)

    assert not ch03.check_batch_grad(wrong, quiet=True)


def test_rejects_dividing_by_n_instead_of_the_weight_sum():
    def wrong(logits, target, weight=None, ignore_index=-100, reduction="mean"):
        G = batch_grad(logits, target, weight, ignore_index, reduction="sum")
        if reduction == "mean":
            G = G / np.asarray(target).size
        return G

    assert not ch03.check_batch_grad(wrong, quiet=True)


def test_rejects_a_sign_error():
    def wrong(logits, target, weight=None, ignore_index=-100, reduction="mean"):
        return -batch_grad(logits, target, weight, ignore_index, reduction)

    assert not ch03.check_batch_grad(wrong, quiet=True)


def test_rejects_nan_for_an_all_ignored_batch():
    def wrong(logits, target, weight=None, ignore_index=-100, reduction="mean"):
        G = batch_grad(logits, target, weight, ignore_index, reduction="sum")
        if reduction == "mean":
            with np.errstate(invalid="ignore", divide="ignore"):
                G = G / mean_denominator(target, weight, ignore_index)
        return G

    assert not ch03.check_batch_grad(wrong, quiet=True)


def test_rejects_averaging_the_micro_batch_means():
    def wrong(micro_logits, micro_targets, weight=None, ignore_index=-100):
        K = len(micro_logits)
        return np.concatenate(
            [
                celib.cross_entropy_grad(x, t, weight=weight, ignore_index=ignore_index) / K
                for x, t in zip(micro_logits, micro_targets)
            ]
        )

    with np.errstate(invalid="ignore"):
        assert not ch03.check_accumulated_grad(wrong, quiet=True)


def test_rejects_a_count_that_ignores_the_weights():
    def wrong(micro_logits, micro_targets, weight=None, ignore_index=-100):
        total = sum(mean_denominator(t, None, ignore_index) for t in micro_targets)
        return np.concatenate(
            [
                celib.cross_entropy_grad(
                    x, t, weight=weight, ignore_index=ignore_index, reduction="sum"
                )
                / total
                for x, t in zip(micro_logits, micro_targets)
            ]
        )

    assert not ch03.check_accumulated_grad(wrong, quiet=True)


def test_failure_report_names_the_case_in_chinese(capsys):
    def wrong(logits, target, weight=None, ignore_index=-100, reduction="mean"):
        return batch_grad(logits, target, weight, ignore_index, reduction, divide_by_n=False)

    ch03.check_batch_grad(wrong, lang="zh")
    out = capsys.readouterr().out
    assert "✗ 練習 3.2，my_batch_grad" in out and "1/N" in out


# -- every typical wrong answer in ch03.WRONG_ANSWERS / MORE_WRONG_ANSWERS is rejected --------

from exercise_helpers import assert_rejected, wrong_answer_params  # noqa: E402


@pytest.mark.parametrize("name,description,source", wrong_answer_params(ch03))
def test_typical_wrong_answers_are_rejected(name, description, source):
    with np.errstate(all="ignore"):
        assert_rejected(ch03, name, source)
