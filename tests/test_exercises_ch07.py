"""Chapter 7's checkers accept the reference solutions and reject typical mistakes."""

import numpy as np
import pytest

import celib
from celib.exercises import ch07

# --- solutions, as a learner would write them --------------------------------


def linear_grads(X, y, W, b):
    G = celib.cross_entropy_grad(X @ W + b, y)
    return X.T @ G, G.sum(axis=0)


def gd_step(X, y, W, b, lr):
    dW, db = linear_grads(X, y, W, b)
    return W - lr * dW, b - lr * db


def confusion_matrix(y_true, y_pred, num_classes):
    M = np.zeros((num_classes, num_classes), dtype=int)
    for t, p in zip(y_true, y_pred):
        M[t, p] += 1
    return M


# --- typical wrong answers ---------------------------------------------------


def grads_without_mean(X, y, W, b):  # forgot the 1/N: the sum, not the mean
    G = celib.cross_entropy_grad(X @ W + b, y, reduction="sum")
    return X.T @ G, G.sum(axis=0)


def grads_wrong_sign(X, y, W, b):  # Y - P instead of P - Y
    dW, db = linear_grads(X, y, W, b)
    return -dW, -db


def grads_transposed(X, y, W, b):  # G^T X: (C, D) instead of (D, C)
    G = celib.cross_entropy_grad(X @ W + b, y)
    return G.T @ X, G.sum(axis=0)


def grads_bias_not_summed(X, y, W, b):  # db = G, one row per sample
    G = celib.cross_entropy_grad(X @ W + b, y)
    return X.T @ G, G


def grads_naive_softmax(X, y, W, b):  # exp without the max shift overflows
    Z = X @ W + b
    with np.errstate(over="ignore", invalid="ignore"):
        P = np.exp(Z) / np.exp(Z).sum(axis=1, keepdims=True)
    P[np.arange(len(y)), y] -= 1
    G = P / len(y)
    return X.T @ G, G.sum(axis=0)


def gd_step_wrong_sign(X, y, W, b, lr):  # gradient ascent
    dW, db = linear_grads(X, y, W, b)
    return W + lr * dW, b + lr * db


def gd_step_weights_only(X, y, W, b, lr):  # forgot to update the bias
    dW, _ = linear_grads(X, y, W, b)
    return W - lr * dW, b


def confusion_transposed(y_true, y_pred, num_classes):  # rows = predictions
    return confusion_matrix(y_true, y_pred, num_classes).T


def confusion_from_labels_seen(y_true, y_pred, num_classes):  # size from the data
    k = max(list(y_true) + list(y_pred), default=-1) + 1
    return confusion_matrix(y_true, y_pred, k)


def confusion_no_repeats(y_true, y_pred, num_classes):  # fancy-index assignment, not add
    M = np.zeros((num_classes, num_classes), dtype=int)
    M[np.asarray(y_true, dtype=int), np.asarray(y_pred, dtype=int)] += 1
    return M


@pytest.mark.parametrize("lang", ["en", "zh"])
def test_reference_solutions_pass(lang, capsys):
    assert ch07.check_linear_grads(linear_grads, lang=lang)
    assert ch07.check_gd_step(gd_step, lang=lang)
    assert ch07.check_confusion_matrix(confusion_matrix, lang=lang)
    out = capsys.readouterr().out
    assert out.count("✓") == 3 and "✗" not in out


@pytest.mark.parametrize(
    "wrong",
    [
        grads_without_mean,
        grads_wrong_sign,
        grads_transposed,
        grads_bias_not_summed,
        grads_naive_softmax,
    ],
)
def test_linear_grads_rejects(wrong):
    assert not ch07.check_linear_grads(wrong, quiet=True)


@pytest.mark.parametrize("wrong", [gd_step_wrong_sign, gd_step_weights_only])
def test_gd_step_rejects(wrong):
    assert not ch07.check_gd_step(wrong, quiet=True)


@pytest.mark.parametrize(
    "wrong", [confusion_transposed, confusion_from_labels_seen, confusion_no_repeats]
)
def test_confusion_matrix_rejects(wrong):
    assert not ch07.check_confusion_matrix(wrong, quiet=True)


def test_failure_report_names_the_case_in_both_languages(capsys):
    ch07.check_linear_grads(grads_transposed, lang="en")
    en = capsys.readouterr().out
    assert "✗" in en and "dW: expected shape (4, 3), got shape (3, 4) (the transpose?)" in en
    ch07.check_linear_grads(grads_transposed, lang="zh")
    zh = capsys.readouterr().out
    assert "✗" in zh and "dW：預期形狀為 (4, 3)，實際形狀為 (3, 4)" in zh


def test_a_stub_that_raises_is_reported_not_raised(capsys):
    def stub(X, y, W, b):
        raise NotImplementedError("your code")

    assert ch07.check_linear_grads(stub, lang="en").status == "not_attempted"
    assert "NotImplementedError" in capsys.readouterr().out


# -- every typical wrong answer in ch07.WRONG_ANSWERS / MORE_WRONG_ANSWERS is rejected --------

from exercise_helpers import assert_rejected, wrong_answer_params  # noqa: E402


@pytest.mark.parametrize("name,description,source", wrong_answer_params(ch07))
def test_typical_wrong_answers_are_rejected(name, description, source):
    with np.errstate(all="ignore"):
        assert_rejected(ch07, name, source)
