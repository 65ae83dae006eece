"""Chapter 8's checkers accept the reference solutions and reject typical mistakes."""

import numpy as np
import pytest

import celib
from celib.exercises import ch08

# --- solutions ---------------------------------------------------------------


def logits_gib(tokens, vocab, bytes_per_element):
    return tokens * vocab * bytes_per_element / 2**30


def linear_ce_grads(h, W, b, target):
    G = celib.cross_entropy_grad(h @ W.T + b, target)
    return G @ W, G.T @ h, G.sum(axis=0)


def chunked_logsumexp(Z, chunk_size):
    N, V = Z.shape
    shift = np.zeros(N)  # the running maximum, 0 while it is -inf
    m = np.full(N, -np.inf)
    s = np.zeros(N)  # sum of exp(z - shift) so far
    for lo in range(0, V, chunk_size):
        z = Z[:, lo : lo + chunk_size]
        m = np.maximum(m, z.max(axis=1))
        new_shift = np.where(np.isfinite(m), m, 0.0)
        with np.errstate(over="ignore", invalid="ignore"):  # nothing to rescale while s is 0
            kept = np.where(s > 0, s * np.exp(shift - new_shift), 0.0)
        s = kept + np.exp(z - new_shift[:, None]).sum(axis=1)
        shift = new_shift
    with np.errstate(divide="ignore"):
        return shift + np.log(s)


# --- typical wrong answers ---------------------------------------------------


def gib_decimal(tokens, vocab, bytes_per_element):  # GB (1e9), not GiB
    return tokens * vocab * bytes_per_element / 1e9


def gib_forgot_bytes(tokens, vocab, bytes_per_element):  # elements, not bytes
    return tokens * vocab / 2**30


def grads_without_mean(h, W, b, target):  # the sum, not the mean
    G = celib.cross_entropy_grad(h @ W.T + b, target, reduction="sum")
    return G @ W, G.T @ h, G.sum(axis=0)


def grads_mean_over_all_rows(h, W, b, target):  # divides by N, ignored rows included
    G = celib.cross_entropy_grad(h @ W.T + b, target, reduction="sum") / len(target)
    return G @ W, G.T @ h, G.sum(axis=0)


def grads_transposed_weight(h, W, b, target):  # h^T G: (H, V), the layout of chapter 7
    G = celib.cross_entropy_grad(h @ W.T + b, target)
    return G @ W, h.T @ G, G.sum(axis=0)


def grads_wrong_sign(h, W, b, target):
    dh, dW, db = linear_ce_grads(h, W, b, target)
    return -dh, -dW, -db


def grads_missing_dh(h, W, b, target):
    return linear_ce_grads(h, W, b, target)[1:]


def lse_sum_of_chunks(Z, chunk_size):  # adds the chunks' lse
    parts = [
        celib.logsumexp(Z[:, lo : lo + chunk_size], axis=-1)
        for lo in range(0, Z.shape[1], chunk_size)
    ]
    return np.sum(parts, axis=0)


def lse_no_shift(Z, chunk_size):  # overflows near 1e4
    s = np.zeros(Z.shape[0])
    with np.errstate(over="ignore", divide="ignore"):
        for lo in range(0, Z.shape[1], chunk_size):
            s += np.exp(Z[:, lo : lo + chunk_size]).sum(axis=1)
        return np.log(s)


def lse_naive_running_max(Z, chunk_size):  # -inf - (-inf) = NaN
    m = np.full(Z.shape[0], -np.inf)
    s = np.zeros(Z.shape[0])
    with np.errstate(invalid="ignore", divide="ignore"):
        for lo in range(0, Z.shape[1], chunk_size):
            z = Z[:, lo : lo + chunk_size]
            m_new = np.maximum(m, z.max(axis=1))
            s = s * np.exp(m - m_new) + np.exp(z - m_new[:, None]).sum(axis=1)
            m = m_new
        return m + np.log(s)


def lse_first_chunk_only(Z, chunk_size):
    return celib.logsumexp(Z[:, :chunk_size], axis=-1)


@pytest.mark.parametrize("lang", ["en", "zh"])
def test_reference_solutions_pass(lang, capsys):
    assert ch08.check_logits_gib(logits_gib, lang=lang)
    assert ch08.check_linear_ce_grads(linear_ce_grads, lang=lang)
    assert ch08.check_chunked_logsumexp(chunked_logsumexp, lang=lang)
    out = capsys.readouterr().out
    assert out.count("✓") == 3 and "✗" not in out


@pytest.mark.parametrize("wrong", [gib_decimal, gib_forgot_bytes])
def test_logits_gib_rejects(wrong):
    assert not ch08.check_logits_gib(wrong, quiet=True)


@pytest.mark.parametrize(
    "wrong",
    [
        grads_without_mean,
        grads_mean_over_all_rows,
        grads_transposed_weight,
        grads_wrong_sign,
        grads_missing_dh,
    ],
)
def test_linear_ce_grads_rejects(wrong):
    assert not ch08.check_linear_ce_grads(wrong, quiet=True)


@pytest.mark.parametrize(
    "wrong", [lse_sum_of_chunks, lse_no_shift, lse_naive_running_max, lse_first_chunk_only]
)
def test_chunked_logsumexp_rejects(wrong):
    assert not ch08.check_chunked_logsumexp(wrong, quiet=True)


def test_reports_are_bilingual(capsys):
    ch08.check_linear_ce_grads(grads_transposed_weight, lang="en")
    assert "dW: expected shape (5, 3), got shape (3, 5) (the transpose?)" in capsys.readouterr().out
    ch08.check_linear_ce_grads(grads_missing_dh, lang="zh")
    assert "預期回傳 3 個值的 tuple（dh, dW, db）" in capsys.readouterr().out


# -- every typical wrong answer in ch08.WRONG_ANSWERS / MORE_WRONG_ANSWERS is rejected --------

from exercise_helpers import assert_rejected, wrong_answer_params  # noqa: E402


@pytest.mark.parametrize("name,description,source", wrong_answer_params(ch08))
def test_typical_wrong_answers_are_rejected(name, description, source):
    with np.errstate(all="ignore"):
        assert_rejected(ch08, name, source)
