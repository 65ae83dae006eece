"""celib.gradcheck: central differences, relative_error and compare."""

import numpy as np
import pytest

from celib import reference
from celib.gradient_check import Comparison, compare, numerical_grad, relative_error

# --- numerical_grad ---------------------------------------------------------


def test_numerical_grad_matches_closed_form_of_cross_entropy():
    rng = np.random.default_rng(0)
    x = rng.standard_normal((4, 5))
    y = np.array([0, 4, 2, 1])
    num = numerical_grad(lambda z: reference.cross_entropy(z, y), x)
    assert relative_error(num, reference.cross_entropy_grad(x, y)) < 1e-8


def test_numerical_grad_does_not_modify_x_and_keeps_shape():
    x = np.arange(6.0).reshape(2, 3)
    before = x.copy()
    g = numerical_grad(lambda z: np.sum(z**2), x)
    np.testing.assert_array_equal(x, before)
    assert g.shape == x.shape and g.dtype == np.float64
    np.testing.assert_allclose(g, 2 * x, rtol=1e-8, atol=1e-8)


def test_numerical_grad_truncation_is_second_order():
    # f = x^3 at 1: the central difference is 3 + eps^2 exactly
    for eps in (1e-1, 1e-2):
        g = numerical_grad(lambda z: np.sum(z**3), np.array([1.0]), eps=eps)
        assert g[0] == pytest.approx(3 + eps**2, rel=1e-10)


@pytest.mark.parametrize("eps", [0.0, -1e-6, np.inf, np.nan])
def test_numerical_grad_rejects_bad_step(eps):
    with pytest.raises(ValueError, match="eps"):
        numerical_grad(lambda z: np.sum(z), np.ones(2), eps=eps)


def test_numerical_grad_rejects_non_scalar_f():
    with pytest.raises(ValueError, match="scalar"):
        numerical_grad(lambda z: z * 2, np.ones(2))


# --- relative_error ---------------------------------------------------------


def test_relative_error_values():
    assert relative_error([1.0, 2.0], [1.0, 2.0]) == 0.0
    assert relative_error(np.zeros(3), np.zeros(3)) == 0.0
    assert relative_error([], []) == 0.0
    assert relative_error([3.0, 0.0], [1.0, 0.0]) == pytest.approx(2 / 3)
    # scale-free: the same relative change at any magnitude
    assert relative_error([1e-8, 2e-8], [1e-8, 2.2e-8]) == pytest.approx(
        relative_error([1, 2], [1, 2.2])
    )
    # a near-zero entry does not dominate
    assert relative_error([0.0, 1.0], [1e-12, 1.0]) == pytest.approx(1e-12)
    assert np.isnan(relative_error([np.nan, 1.0], [1.0, 1.0]))


def test_relative_error_is_symmetric():
    rng = np.random.default_rng(1)
    a, b = rng.standard_normal(5), rng.standard_normal(5)
    assert relative_error(a, b) == relative_error(b, a)


def test_relative_error_shape_mismatch_names_both_shapes():
    with pytest.raises(ValueError, match=r"\(2,\).*\(3,\)"):
        relative_error(np.ones(2), np.ones(3))


# --- compare ----------------------------------------------------------------


def test_compare_equal():
    a = np.arange(6.0).reshape(2, 3)
    r = compare(a, a.copy())
    assert isinstance(r, Comparison)
    assert r.equal and r.close and bool(r)
    assert r.max_abs_diff == 0.0 and r.max_abs_index is None and r.mismatched == 0
    assert str(r) == "exactly equal; shape (2, 3)"


def test_compare_close_reports_largest_differences_and_indices():
    expected = np.array([[1.0, 2.0, 4.0], [0.5, 8.0, 1.0]])
    actual = expected.copy()
    actual[1, 1] += 4e-7  # the largest absolute difference
    actual[1, 0] += 1e-7  # the largest relative difference: 2e-7
    r = compare(actual, expected, rtol=1e-6)
    assert r.close and not r.equal
    assert r.max_abs_index == (1, 1) and r.max_abs_diff == pytest.approx(4e-7)
    assert r.max_rel_index == (1, 0) and r.max_rel_diff == pytest.approx(2e-7)
    assert "(1, 1)" in str(r) and "(1, 0)" in str(r)
    assert "close (rtol=1e-06, atol=0)" in str(r)
    assert repr(r).startswith("Comparison(equal=False, close=True, rtol=1e-06")


def test_compare_not_close_counts_mismatches():
    r = compare([1.0, 2.0, 3.0], [1.0, 2.1, 3.3], rtol=1e-3)
    assert not r and r.mismatched == 2
    assert r.max_abs_index == (2,)
    assert str(r).startswith("NOT close (rtol=0.001, atol=0): 2 of 3 entries differ")


def test_compare_atol_and_zero_expected():
    r = compare([1e-9, 1.0], [0.0, 1.0], rtol=0.0, atol=1e-8)
    assert r.close and r.max_rel_diff == np.inf and r.max_rel_index == (0,)
    assert not compare([1e-9, 1.0], [0.0, 1.0], rtol=1e-3)


def test_compare_nan_and_inf():
    assert compare([np.nan, np.inf], [np.nan, np.inf]).equal
    r = compare([1.0, np.nan], [1.0, 1.0])
    assert not r.close and r.max_abs_diff == np.inf and r.max_abs_index == (1,)
    assert not compare([np.inf], [-np.inf]).close


def test_compare_accepts_torch_tensors_and_does_not_modify_inputs():
    torch = pytest.importorskip("torch")
    t = torch.tensor([1.0, 2.0], dtype=torch.float32, requires_grad=True)
    a = np.array([1.0, 2.0])
    r = compare(t, a)
    assert r.equal
    np.testing.assert_array_equal(a, [1.0, 2.0])


def test_compare_empty_and_scalars():
    assert compare(np.ones((0, 3)), np.ones((0, 3))).equal
    assert compare(2.0, 2.0 + 1e-12, rtol=1e-9).close


def test_compare_errors():
    with pytest.raises(ValueError, match=r"\(2,\).*\(2, 1\)"):
        compare(np.ones(2), np.ones((2, 1)))
    with pytest.raises(ValueError, match="non-negative"):
        compare(1.0, 1.0, rtol=-1.0)
    with pytest.raises(ValueError, match="non-negative"):
        compare(1.0, 1.0, atol=np.nan)
