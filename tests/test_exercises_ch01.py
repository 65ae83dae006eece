"""Chapter 1's checkers accept the reference solutions and reject typical wrong answers."""

import numpy as np
import pytest

from celib.exercises import ch01

# ---- solutions, as in the chapter ----------------------------------------


def good_softmax(x):
    x = np.asarray(x, dtype=np.float64)
    e = np.exp(x - np.max(x, axis=-1, keepdims=True))
    return e / e.sum(axis=-1, keepdims=True)


def good_cross_entropy(x, y):
    x = np.asarray(x, dtype=np.float64)
    m = np.max(x)
    return m + np.log(np.sum(np.exp(x - m))) - x[y]


def good_nll_loss(log_probs, target):
    return -np.mean(log_probs[np.arange(len(target)), target])


# ---- typical wrong answers -------------------------------------------------


def naive_softmax(x):  # overflows for large logits
    with np.errstate(over="ignore", invalid="ignore"):
        e = np.exp(x)
        return e / e.sum(axis=-1, keepdims=True)


def softmax_over_everything(x):  # normalises over the whole batch, not per row
    e = np.exp(x - np.max(x))
    return e / e.sum()


def softmax_first_axis(x):  # normalises along axis 0
    e = np.exp(x - np.max(x, axis=0, keepdims=True))
    return e / e.sum(axis=0, keepdims=True)


def cross_entropy_sign_error(x, y):
    return -good_cross_entropy(x, y)


def cross_entropy_naive(x, y):  # log of an overflowing softmax
    with np.errstate(over="ignore", invalid="ignore", divide="ignore"):
        return -np.log(np.exp(x[y]) / np.sum(np.exp(x)))


def cross_entropy_forgets_lse(x, y):  # -x_y alone
    return -np.asarray(x, dtype=np.float64)[y]


def nll_sum(log_probs, target):  # missing 1/N
    return -np.sum(log_probs[np.arange(len(target)), target])


def nll_sign_error(log_probs, target):
    return np.mean(log_probs[np.arange(len(target)), target])


def nll_wrong_indexing(log_probs, target):  # picks columns, not one entry per row
    return -np.mean(log_probs[:, target])


def test_softmax_checker_accepts_solution_and_reference():
    assert ch01.check_softmax(good_softmax, quiet=True)
    from celib import softmax

    assert ch01.check_softmax(softmax, quiet=True)


@pytest.mark.parametrize("wrong", [naive_softmax, softmax_over_everything, softmax_first_axis])
def test_softmax_checker_rejects(wrong):
    assert not ch01.check_softmax(wrong, quiet=True)


def test_cross_entropy_checker_accepts_solution():
    assert ch01.check_cross_entropy(good_cross_entropy, quiet=True)


@pytest.mark.parametrize(
    "wrong", [cross_entropy_sign_error, cross_entropy_naive, cross_entropy_forgets_lse]
)
def test_cross_entropy_checker_rejects(wrong):
    assert not ch01.check_cross_entropy(wrong, quiet=True)


def test_nll_checker_accepts_solution():
    assert ch01.check_nll_loss(good_nll_loss, quiet=True)


@pytest.mark.parametrize("wrong", [nll_sum, nll_sign_error, nll_wrong_indexing])
def test_nll_checker_rejects(wrong):
    assert not ch01.check_nll_loss(wrong, quiet=True)


def test_nll_reference_matches_torch():
    torch = pytest.importorskip("torch")
    for case in ch01.nll_cases():
        lp, t = case.kwargs["log_probs"], case.kwargs["target"]
        expected = torch.nn.functional.nll_loss(torch.from_numpy(lp), torch.from_numpy(t)).item()
        assert ch01.nll_loss(lp, t) == pytest.approx(expected, rel=1e-12)


def test_stub_is_reported_not_raised(capsys):
    def stub(x):
        raise NotImplementedError("your code")

    result = ch01.check_softmax(stub, lang="en")
    assert not result and result.status == "not_attempted"
    out = capsys.readouterr().out
    assert "not attempted yet" in out and "✗" not in out and "✓" not in out


def test_reports_in_both_languages(capsys):
    assert ch01.check_softmax(good_softmax, lang="en")
    assert ch01.check_softmax(good_softmax, lang="zh")
    en, zh = capsys.readouterr().out.splitlines()
    assert en == "✓ Exercise 1.1, my_softmax: all 8 cases pass."
    assert zh == "✓ 練習 1.1，my_softmax：全部 8 個測試案例通過。"
    assert not ch01.check_cross_entropy(cross_entropy_sign_error, lang="zh")
    out = capsys.readouterr().out
    assert "練習 1.2" in out and "本書範例，正確類別 0" in out


def test_cases_are_not_modified_by_the_learner():
    def scribbles(x):
        x[...] = 0.0
        return good_softmax(np.zeros_like(x))

    ch01.check_softmax(scribbles, quiet=True)
    assert np.array_equal(ch01.softmax_cases()[0].kwargs["x"], [2.0, 1.0, 0.1])


# -- every typical wrong answer in ch01.WRONG_ANSWERS / MORE_WRONG_ANSWERS is rejected --------

from exercise_helpers import assert_rejected, wrong_answer_params  # noqa: E402


@pytest.mark.parametrize("name,description,source", wrong_answer_params(ch01))
def test_typical_wrong_answers_are_rejected(name, description, source):
    with np.errstate(all="ignore"):
        assert_rejected(ch01, name, source)
