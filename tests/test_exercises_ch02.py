"""Chapter 2's checkers accept the reference solutions and reject typical wrong answers."""

import numpy as np
import pytest

import celib
from celib.exercises import ch02

# ---- solutions, as in the chapter ----------------------------------------


def good_gradient(x, y):
    grad = celib.softmax(np.asarray(x, dtype=np.float64))
    grad[y] -= 1.0
    return grad


def good_jacobian(x):
    p = celib.softmax(np.asarray(x, dtype=np.float64))
    return np.diag(p) - np.outer(p, p)


def good_backward(x, grad_p):
    p = celib.softmax(np.asarray(x, dtype=np.float64))
    return p * (grad_p - np.dot(p, grad_p))


# ---- typical wrong answers -------------------------------------------------


def gradient_sign_error(x, y):  # onehot - p
    return -good_gradient(x, y)


def gradient_is_softmax(x, y):  # forgets -e_y
    return celib.softmax(np.asarray(x, dtype=np.float64))


def gradient_target_only(x, y):  # p_y - 1 at the target, 0 elsewhere
    g = np.zeros(len(x))
    g[y] = celib.softmax(np.asarray(x, dtype=np.float64))[y] - 1.0
    return g


def gradient_naive(x, y):  # overflows for large logits
    with np.errstate(over="ignore", invalid="ignore"):
        e = np.exp(np.asarray(x, dtype=np.float64))
        g = e / e.sum()
    g[y] -= 1.0
    return g


def jacobian_sign_error(x):
    return -good_jacobian(x)


def jacobian_diag_only(x):
    return np.diag(celib.softmax(np.asarray(x, dtype=np.float64)))


def jacobian_outer_only(x):
    p = celib.softmax(np.asarray(x, dtype=np.float64))
    return -np.outer(p, p)


def jacobian_flat(x):  # p (1 - p) as a vector: the wrong shape
    p = celib.softmax(np.asarray(x, dtype=np.float64))
    return p * (1 - p)


def backward_elementwise(x, grad_p):  # p * g, forgets the coupling term
    return celib.softmax(np.asarray(x, dtype=np.float64)) * grad_p


def backward_sign_error(x, grad_p):
    return -good_backward(x, grad_p)


def backward_returns_gradient_of_p(x, grad_p):  # passes g through untouched
    return np.asarray(grad_p, dtype=np.float64)


def test_gradient_checker_accepts_solution_and_reference():
    assert ch02.check_gradient(good_gradient, quiet=True)
    assert ch02.check_gradient(lambda x, y: celib.cross_entropy_grad(x, y), quiet=True)


@pytest.mark.parametrize(
    "wrong", [gradient_sign_error, gradient_is_softmax, gradient_target_only, gradient_naive]
)
def test_gradient_checker_rejects(wrong):
    assert not ch02.check_gradient(wrong, quiet=True)


def test_sign_error_fails_on_the_running_example(capsys):
    assert not ch02.check_gradient(gradient_sign_error, lang="en")
    out = capsys.readouterr().out
    assert "case 1 of 7 (the running example, target 0)" in out


def test_jacobian_checker_accepts_solution_and_reference():
    assert ch02.check_softmax_jacobian(good_jacobian, quiet=True)
    assert ch02.check_softmax_jacobian(celib.softmax_jacobian, quiet=True)


@pytest.mark.parametrize(
    "wrong", [jacobian_sign_error, jacobian_diag_only, jacobian_outer_only, jacobian_flat]
)
def test_jacobian_checker_rejects(wrong):
    assert not ch02.check_softmax_jacobian(wrong, quiet=True)


def test_backward_checker_accepts_solution():
    assert ch02.check_softmax_backward(good_backward, quiet=True)


@pytest.mark.parametrize(
    "wrong", [backward_elementwise, backward_sign_error, backward_returns_gradient_of_p]
)
def test_backward_checker_rejects(wrong):
    assert not ch02.check_softmax_backward(wrong, quiet=True)


def test_backward_reference_matches_torch():
    torch = pytest.importorskip("torch")
    for case in ch02.backward_cases():
        x = torch.tensor(case.kwargs["x"], requires_grad=True)
        p = torch.softmax(x, dim=0)
        p.backward(torch.tensor(case.kwargs["grad_p"]))
        expected = x.grad.numpy()
        np.testing.assert_allclose(
            ch02.softmax_backward(**case.kwargs), expected, rtol=1e-10, atol=1e-12
        )


def test_first_backward_case_is_the_cross_entropy_gradient():
    case = ch02.backward_cases()[0]
    np.testing.assert_allclose(
        ch02.softmax_backward(**case.kwargs),
        celib.cross_entropy_grad(case.kwargs["x"], 0),
        rtol=1e-12,
        atol=1e-15,
    )


def test_reports_in_both_languages(capsys):
    assert ch02.check_gradient(good_gradient, lang="en")
    assert ch02.check_gradient(good_gradient, lang="zh")
    en, zh = capsys.readouterr().out.splitlines()
    assert en == "✓ Exercise 2.1, my_gradient: all 7 cases pass."
    assert zh == "✓ 練習 2.1，my_gradient：全部 7 個測試案例通過。"


# -- every typical wrong answer in ch02.WRONG_ANSWERS / MORE_WRONG_ANSWERS is rejected --------

from exercise_helpers import assert_rejected, wrong_answer_params  # noqa: E402


@pytest.mark.parametrize("name,description,source", wrong_answer_params(ch02))
def test_typical_wrong_answers_are_rejected(name, description, source):
    with np.errstate(all="ignore"):
        assert_rejected(ch02, name, source)
