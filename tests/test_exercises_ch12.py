"""Chapter 12's checkers accept correct solutions and reject typical mistakes."""

import numpy as np
import pytest

from celib.exercises import ch12


def combine_right(maxes, sumexps):
    m = maxes.max(axis=0)
    safe = np.where(np.isfinite(m), m, 0.0)
    return safe + np.log((sumexps * np.exp(maxes - safe)).sum(axis=0))


def combine_naive(maxes, sumexps):
    """Undoes the shift and adds raw exponentials: overflows at 900."""
    with np.errstate(over="ignore"):
        return np.log((sumexps * np.exp(maxes)).sum(axis=0))


def combine_mean_of_lse(maxes, sumexps):
    return (maxes + np.log(sumexps)).mean(axis=0)


def shard_right(local_logits, target, lse, vocab_start):
    N, V_local = local_logits.shape
    g = np.exp(local_logits - lse[:, None]) / N
    for n in range(N):
        if vocab_start <= target[n] < vocab_start + V_local:
            g[n, target[n] - vocab_start] -= 1 / N
    return g


def shard_wraps_around(local_logits, target, lse, vocab_start):
    """Subtracts the one-hot at target - vocab_start on every shard (negative indices wrap)."""
    N, V_local = local_logits.shape
    g = np.exp(local_logits - lse[:, None]) / N
    for n in range(N):
        k = target[n] - vocab_start
        if k < V_local:
            g[n, k] -= 1 / N
    return g


def shard_no_mean(local_logits, target, lse, vocab_start):
    return shard_right(local_logits, target, lse, vocab_start) * len(local_logits)


def _wrong(name):
    namespace = {"np": np}
    exec(ch12.WRONG_ANSWERS[name], namespace)  # noqa: S102  (the checker's own wrong answers)
    return namespace[name]


CHECKS = [
    (
        ch12.check_combine_lse,
        combine_right,
        [combine_naive, combine_mean_of_lse, _wrong("my_combine_lse")],
    ),
    (
        ch12.check_shard_grad,
        shard_right,
        [shard_wraps_around, shard_no_mean, _wrong("my_shard_grad")],
    ),
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


def test_every_wrong_answer_defines_its_name():
    assert set(ch12.WRONG_ANSWERS) == {"my_combine_lse", "my_shard_grad"}


def not_implemented(*args, **kwargs):
    raise NotImplementedError("Exercise 12.1: your code here")


@pytest.mark.parametrize("check", [c for c, _, _ in CHECKS])
def test_reports_an_unfinished_stub(check, capsys):
    assert check(not_implemented, lang="zh").status == "not_attempted"
    out = capsys.readouterr().out
    assert "尚未作答" in out and "NotImplementedError" in out


def test_the_library_itself_passes_quietly(capsys):
    """celib.distributed's combination rule, run on one process's NumPy copies."""
    assert ch12.check_combine_lse(combine_right, quiet=True).passed is True
    assert capsys.readouterr().out == ""


def test_reports_in_both_languages(capsys):
    assert ch12.check_shard_grad(shard_right, lang="en")
    assert ch12.check_shard_grad(shard_right, lang="zh")
    en, zh = capsys.readouterr().out.splitlines()
    assert en == "✓ Exercise 12.2, my_shard_grad: all 5 cases pass."
    assert zh == "✓ 練習 12.2，my_shard_grad：全部 5 個測試案例通過。"


# -- every typical wrong answer in ch12.WRONG_ANSWERS / MORE_WRONG_ANSWERS is rejected --------

from exercise_helpers import assert_rejected, wrong_answer_params


@pytest.mark.parametrize("name,description,source", wrong_answer_params(ch12))
def test_typical_wrong_answers_are_rejected(name, description, source):
    with np.errstate(all="ignore"):
        assert_rejected(ch12, name, source)
