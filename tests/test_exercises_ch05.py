"""Chapter 5's checkers accept correct solutions and reject the typical wrong ones."""

import numpy as np
import pytest

from celib import reference
from celib.exercises import ch05


def stable_logsumexp(x):
    m = np.max(x, axis=-1, keepdims=True)
    m = np.where(np.isfinite(m), m, 0.0)
    with np.errstate(divide="ignore"):
        return np.squeeze(m + np.log(np.sum(np.exp(x - m), axis=-1, keepdims=True)), -1)


def naive_logsumexp(x):
    with np.errstate(over="ignore", divide="ignore"):
        return np.log(np.sum(np.exp(x), axis=-1))


def unguarded_logsumexp(x):  # shifts by the max even when it is -inf
    m = np.max(x, axis=-1, keepdims=True)
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.squeeze(m + np.log(np.sum(np.exp(x - m), axis=-1, keepdims=True)), -1)


def stable_log_softmax(x):
    m = np.max(x, axis=-1, keepdims=True)
    return (x - m) - np.log(np.sum(np.exp(x - m), axis=-1, keepdims=True))


def log_of_softmax(x):
    with np.errstate(divide="ignore"):
        return np.log(reference.softmax(x))


def true_class_grad(x, y):
    m = np.max(x)
    e = np.exp(x - m)
    return -np.sum(np.delete(e, y)) / np.sum(e)


def cancelling_true_class_grad(x, y):  # sum(e) - e_y cancels when p_y is near 1
    m = np.max(x)
    e = np.exp(x - m)
    return -(np.sum(e) - e[y]) / np.sum(e)


def naive_true_class_grad(x, y):
    return reference.softmax(x)[y] - 1.0


@pytest.mark.parametrize("lang", ["en", "zh"])
def test_logsumexp_checker(lang, capsys):
    assert ch05.check_logsumexp(stable_logsumexp, lang=lang)
    assert "✓" in capsys.readouterr().out
    assert not ch05.check_logsumexp(naive_logsumexp, lang=lang)
    assert "✗" in capsys.readouterr().out
    assert not ch05.check_logsumexp(unguarded_logsumexp, quiet=True)
    assert not ch05.check_logsumexp(lambda x: stable_logsumexp(x) + 1e-3, quiet=True)


def test_log_softmax_checker():
    assert ch05.check_log_softmax(stable_log_softmax, quiet=True)
    assert ch05.check_log_softmax(reference.log_softmax, quiet=True)
    assert not ch05.check_log_softmax(log_of_softmax, quiet=True)
    assert not ch05.check_log_softmax(lambda x: x - np.max(x, axis=-1, keepdims=True), quiet=True)


def test_true_class_grad_checker():
    assert ch05.check_true_class_grad(true_class_grad, quiet=True)
    assert not ch05.check_true_class_grad(naive_true_class_grad, quiet=True)
    assert not ch05.check_true_class_grad(cancelling_true_class_grad, quiet=True)
    assert not ch05.check_true_class_grad(lambda x, y: -true_class_grad(x, y), quiet=True)


def test_true_class_grad_checker_accepts_celibs_gradient():
    """celib's cross_entropy_grad forms p_y - 1 without cancellation too (chapter 5, 5.6)."""

    def celib_true_class_grad(x, y):
        return reference.cross_entropy_grad(x[None, :], np.array([y]), reduction="sum")[0, y]

    assert ch05.check_true_class_grad(celib_true_class_grad, quiet=True)


def test_failure_report_names_the_case(capsys):
    ch05.check_log_softmax(log_of_softmax, lang="zh")
    out = capsys.readouterr().out
    assert "機率下溢成 0 的類別" in out and "0x" not in out


# -- every typical wrong answer in ch05.WRONG_ANSWERS / MORE_WRONG_ANSWERS is rejected --------

from exercise_helpers import assert_rejected, wrong_answer_params  # noqa: E402


@pytest.mark.parametrize("name,description,source", wrong_answer_params(ch05))
def test_typical_wrong_answers_are_rejected(name, description, source):
    with np.errstate(all="ignore"):
        assert_rejected(ch05, name, source)
