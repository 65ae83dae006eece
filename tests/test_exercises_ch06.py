"""Chapter 6's checkers accept correct solutions and reject the typical wrong ones."""

import numpy as np
import pytest

from celib.exercises import ch06


def central(f, x, eps):
    x = np.array(x, dtype=np.float64)
    g = np.zeros_like(x)
    for i in np.ndindex(x.shape):
        xp, xm = x.copy(), x.copy()
        xp[i] += eps
        xm[i] -= eps
        g[i] = (f(xp) - f(xm)) / (2 * eps)
    return g


def forward(f, x, eps):
    x = np.array(x, dtype=np.float64)
    g = np.zeros_like(x)
    for i in np.ndindex(x.shape):
        xp = x.copy()
        xp[i] += eps
        g[i] = (f(xp) - f(x)) / eps
    return g


def missing_half(f, x, eps):
    return 2 * central(f, x, eps)


def flattened_only(f, x, eps):  # returns the gradient with the wrong shape
    return central(f, x, eps).reshape(-1)


def relative_error(actual, expected):
    a, e = np.asarray(actual, float), np.asarray(expected, float)
    scale = max(np.abs(a).max(), np.abs(e).max())
    return 0.0 if scale == 0 else np.abs(a - e).max() / scale


def elementwise_relative_error(actual, expected):
    a, e = np.asarray(actual, float), np.asarray(expected, float)
    with np.errstate(invalid="ignore", divide="ignore"):
        r = np.abs(a - e) / np.maximum(np.abs(a), np.abs(e))
    return np.nanmax(r) if np.any(np.isfinite(r)) else 0.0


def no_abs_relative_error(actual, expected):
    a, e = np.asarray(actual, float), np.asarray(expected, float)
    scale = max(np.abs(a).max(), np.abs(e).max())
    return 0.0 if scale == 0 else np.max(a - e) / scale


def unguarded_relative_error(actual, expected):
    a, e = np.asarray(actual, float), np.asarray(expected, float)
    with np.errstate(invalid="ignore"):
        return np.abs(a - e).max() / max(np.abs(a).max(), np.abs(e).max())


@pytest.mark.parametrize("lang", ["en", "zh"])
def test_central_difference_checker(lang, capsys):
    assert ch06.check_central_difference(central, lang=lang)
    assert "✓" in capsys.readouterr().out
    assert not ch06.check_central_difference(forward, lang=lang)
    out = capsys.readouterr().out
    assert "✗" in out and "0x" not in out  # the test functions print readably
    assert not ch06.check_central_difference(missing_half, quiet=True)
    assert not ch06.check_central_difference(flattened_only, quiet=True)


def test_relative_error_checker():
    assert ch06.check_relative_error(relative_error, quiet=True)
    assert not ch06.check_relative_error(elementwise_relative_error, quiet=True)
    assert not ch06.check_relative_error(no_abs_relative_error, quiet=True)
    assert not ch06.check_relative_error(unguarded_relative_error, quiet=True)


# -- every typical wrong answer in ch06.WRONG_ANSWERS / MORE_WRONG_ANSWERS is rejected --------

from exercise_helpers import assert_rejected, wrong_answer_params  # noqa: E402


@pytest.mark.parametrize("name,description,source", wrong_answer_params(ch06))
def test_typical_wrong_answers_are_rejected(name, description, source):
    with np.errstate(all="ignore"):
        assert_rejected(ch06, name, source)
