"""Chapter 9's checkers accept the reference solutions and reject typical mistakes."""

import numpy as np
import pytest

from celib.exercises import ch09

# --- solutions ---------------------------------------------------------------


def online_step(m, d, block):
    m_new = max(m, block.max())
    shift_old = m if np.isfinite(m) else 0.0  # never -inf - (-inf)
    shift_new = m_new if np.isfinite(m_new) else 0.0
    if d != 0.0:  # nothing to rescale before a finite logit
        d = d * np.exp(shift_old - shift_new)
    return m_new, d + np.exp(block - shift_new).sum()


def saved_bytes(N, V, bytes_per_element):
    lse_bytes = 8 if bytes_per_element == 8 else 4
    return N * V * bytes_per_element, N * lse_bytes


def two_pass_row(x, y, block_size):
    m, d = -np.inf, 0.0
    for lo in range(0, len(x), block_size):  # pass 1: online log-sum-exp
        m, d = online_step(m, d, x[lo : lo + block_size])
    shift = m if np.isfinite(m) else 0.0
    lse = shift + np.log(d)
    grad = np.empty_like(x)
    for lo in range(0, len(x), block_size):  # pass 2: the gradient
        grad[lo : lo + block_size] = np.exp(x[lo : lo + block_size] - shift) / d
    grad[y] -= 1.0
    return lse - x[y], grad


# --- typical wrong answers ---------------------------------------------------


def step_no_rescale(m, d, block):  # the old sum keeps the old shift
    m_new = max(m, block.max())
    shift_new = m_new if np.isfinite(m_new) else 0.0
    return m_new, d + np.exp(block - shift_new).sum()


def step_naive_minus_inf(m, d, block):  # exp(-inf - (-inf)) = NaN
    m_new = max(m, block.max())
    with np.errstate(invalid="ignore"):
        return m_new, d * np.exp(m - m_new) + np.exp(block - m_new).sum()


def step_unguarded_zero(m, d, block):  # 0 * exp(800) = 0 * inf = NaN
    m_new = max(m, block.max())
    shift_old = m if np.isfinite(m) else 0.0
    shift_new = m_new if np.isfinite(m_new) else 0.0
    with np.errstate(over="ignore", invalid="ignore"):
        return m_new, d * np.exp(shift_old - shift_new) + np.exp(block - shift_new).sum()


def bytes_forgot_element_size(N, V, bytes_per_element):
    return N * V, N


def bytes_lse_in_logits_dtype(N, V, bytes_per_element):
    return N * V * bytes_per_element, N * bytes_per_element


def bytes_eager_float32(N, V, bytes_per_element):  # log-probs upcast: not what torch keeps
    return N * V * 4, N * (8 if bytes_per_element == 8 else 4)


def row_sign_error(x, y, block_size):
    loss, grad = two_pass_row(x, y, block_size)
    return loss, -grad


def row_missing_rescale(x, y, block_size):
    m, d = -np.inf, 0.0
    for lo in range(0, len(x), block_size):
        m, d = step_no_rescale(m, d, x[lo : lo + block_size])
    lse = m + np.log(d)
    grad = np.exp(x - m) / d
    grad[y] -= 1.0
    return lse - x[y], grad


def row_first_block_only(x, y, block_size):  # pass 1 stops after one block
    m = x[:block_size].max()
    d = np.exp(x[:block_size] - m).sum()
    grad = np.exp(x - m) / d
    grad[y] -= 1.0
    return m + np.log(d) - x[y], grad


def row_loss_only(x, y, block_size):
    return two_pass_row(x, y, block_size)[0]


@pytest.mark.parametrize("lang", ["en", "zh"])
def test_reference_solutions_pass(lang, capsys):
    assert ch09.check_online_step(online_step, lang=lang)
    assert ch09.check_saved_bytes(saved_bytes, lang=lang)
    assert ch09.check_two_pass_row(two_pass_row, lang=lang)
    out = capsys.readouterr().out
    assert out.count("✓") == 3 and "✗" not in out


@pytest.mark.parametrize("wrong", [step_no_rescale, step_naive_minus_inf, step_unguarded_zero])
def test_online_step_rejects(wrong):
    assert not ch09.check_online_step(wrong, quiet=True)


@pytest.mark.parametrize(
    "wrong", [bytes_forgot_element_size, bytes_lse_in_logits_dtype, bytes_eager_float32]
)
def test_saved_bytes_rejects(wrong):
    assert not ch09.check_saved_bytes(wrong, quiet=True)


@pytest.mark.parametrize(
    "wrong", [row_sign_error, row_missing_rescale, row_first_block_only, row_loss_only]
)
def test_two_pass_row_rejects(wrong):
    assert not ch09.check_two_pass_row(wrong, quiet=True)


def test_reports_are_bilingual(capsys):
    ch09.check_two_pass_row(row_loss_only, lang="en")
    assert "expected a tuple of 2 (loss, grad)" in capsys.readouterr().out
    ch09.check_two_pass_row(row_loss_only, lang="zh")
    assert "預期回傳 2 個值的 tuple（loss, grad）" in capsys.readouterr().out
    ch09.check_saved_bytes(bytes_forgot_element_size, lang="zh")
    out = capsys.readouterr().out
    assert "✗" in out and "預期值" in out


# -- every typical wrong answer in ch09.WRONG_ANSWERS / MORE_WRONG_ANSWERS is rejected --------

from exercise_helpers import assert_rejected, wrong_answer_params  # noqa: E402


@pytest.mark.parametrize("name,description,source", wrong_answer_params(ch09))
def test_typical_wrong_answers_are_rejected(name, description, source):
    with np.errstate(all="ignore"):
        assert_rejected(ch09, name, source)
