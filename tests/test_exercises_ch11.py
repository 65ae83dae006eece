"""Chapter 11's checkers accept correct solutions and reject typical mistakes."""

import numpy as np
import pytest

import celib
from celib.exercises import ch11


def softmax_rows(Z):
    return celib.softmax(Z, axis=-1)


# --- exercise 1: the Hessian of one row --------------------------------------


def row_right(z, a):
    p = celib.softmax(z)
    return a.sum() * (np.diag(p) - np.outer(p, p))


# --- exercise 2: the HVP ------------------------------------------------------


def hvp_right(Z, y, V):
    P = softmax_rows(Z)
    U = V - np.take_along_axis(V, np.argmax(Z, axis=1)[:, None], axis=1)  # keeps confident rows
    return P * (U - (P * U).sum(axis=1, keepdims=True)) / len(Z)


# --- exercise 3: power iteration ---------------------------------------------


def power_right(matvec, v0, steps):
    v = v0 / np.linalg.norm(v0)
    for _ in range(steps):
        w = matvec(v)
        v = w / np.linalg.norm(w)
    return float(v @ matvec(v))


def power_norm_estimate(matvec, v0, steps):
    v = v0 / np.linalg.norm(v0)
    for _ in range(steps):
        w = matvec(v)
        lam = np.linalg.norm(w)
        v = w / lam
    return float(lam)


def not_implemented(*args, **kwargs):
    raise NotImplementedError("Exercise 11.k: your code here")


CHECKS = [
    (ch11.check_row_hessian, row_right),
    (ch11.check_hvp, hvp_right),
    (ch11.check_power_iteration, power_right),
]


@pytest.mark.parametrize("check,right", CHECKS)
@pytest.mark.parametrize("lang", ["en", "zh"])
def test_accepts_a_correct_solution(check, right, lang, capsys):
    assert check(right, lang=lang).passed is True
    out = capsys.readouterr().out
    assert out.startswith("✓")
    if lang == "zh":
        assert "全部" in out


def test_accepts_the_norm_estimate_of_power_iteration(capsys):
    assert ch11.check_power_iteration(power_norm_estimate, lang="en").passed is True


@pytest.mark.parametrize("check", [c for c, _ in CHECKS])
def test_reports_an_unfinished_stub(check, capsys):
    assert check(not_implemented, lang="zh").status == "not_attempted"
    out = capsys.readouterr().out
    assert "尚未作答" in out and "NotImplementedError" in out
    assert "0x" not in out  # no addresses in a printed input


def test_every_checker_has_a_wrong_answer():
    names = {"my_row_hessian", "my_hvp", "my_power_iteration"}
    assert set(ch11.WRONG_ANSWERS) == set(ch11.MORE_WRONG_ANSWERS) == names


def test_checkers_accept_the_library_quietly(capsys):
    assert ch11.check_hvp(lambda Z, y, V: celib.cross_entropy_hvp(Z, y, V), quiet=True).passed
    assert ch11.check_row_hessian(  # row c of H = H e_c (H is symmetric)
        lambda z, a: celib.cross_entropy_hvp(
            np.tile(z, (len(z), 1)), np.tile(a, (len(z), 1)), np.eye(len(z)), reduction="none"
        ),
        quiet=True,
    ).passed
    assert capsys.readouterr().out == ""


def test_reports_in_both_languages(capsys):
    assert ch11.check_hvp(hvp_right, lang="en")
    assert ch11.check_hvp(hvp_right, lang="zh")
    en, zh = capsys.readouterr().out.splitlines()
    assert en == "✓ Exercise 11.2, my_hvp: all 6 cases pass."
    assert zh == "✓ 練習 11.2，my_hvp：全部 6 個測試案例通過。"


def test_a_failure_prints_the_first_failing_case(capsys):
    source = ch11.MORE_WRONG_ANSWERS["my_hvp"]["transposed result (C, N)"]
    namespace = {"np": np, "celib": celib}
    exec(source, namespace)  # noqa: S102 (the checker's own wrong answer)
    assert ch11.check_hvp(namespace["my_hvp"], lang="en").status == "fail"
    out = capsys.readouterr().out
    assert out.startswith("✗ Exercise 11.2, my_hvp: case 1 of 6") and "the transpose?" in out


# -- every typical wrong answer in ch11.WRONG_ANSWERS / MORE_WRONG_ANSWERS is rejected --------

from exercise_helpers import assert_rejected, wrong_answer_params


@pytest.mark.parametrize("name,description,source", wrong_answer_params(ch11))
def test_typical_wrong_answers_are_rejected(name, description, source):
    with np.errstate(all="ignore"):
        assert_rejected(ch11, name, source)
