"""Adversarial inputs to celib's NumPy reference: regressions for bugs found by probing it
against torch.nn.functional.cross_entropy (and torch.softmax / log_softmax / logsumexp).

Each test names the input that broke celib; torch is the oracle wherever torch accepts the
input and is right. Where celib deliberately differs (an ignored row gets a gradient of
exactly 0, chapters/*/deviations.ipynb), the test says so. The general agreement with torch
is in test_reference.py, bad input in test_reference_errors.py.
"""

from __future__ import annotations

import warnings

import numpy as np
import pytest

import celib

torch = pytest.importorskip("torch")
F = torch.nn.functional

REDUCTIONS = ("none", "mean", "sum")
RNG = np.random.default_rng(0)
X = RNG.standard_normal((4, 5))
Y = np.array([0, 4, 2, 1])
Q = RNG.dirichlet(np.ones(5), 4)


def torch_loss_and_grad(x, t, *, weight=None, grad_output=None, **options):
    """torch's loss and dL/dx for NumPy inputs of any float dtype (each kept as it is)."""
    xt = torch.from_numpy(np.array(x)).requires_grad_(True)
    tt = torch.from_numpy(np.array(t))
    w = None if weight is None else torch.from_numpy(np.array(weight))
    loss = F.cross_entropy(xt, tt, weight=w, **options)
    g = torch.ones_like(loss) if grad_output is None else torch.from_numpy(np.array(grad_output))
    loss.backward(g)
    return loss.detach().numpy(), xt.grad.numpy()


def celib_loss_and_grad(x, t, **options):
    """celib's loss and gradient, with every NumPy warning turned into an error."""
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        loss, grad = celib.cross_entropy_and_grad(x, t, **options)
        opts = {k: v for k, v in options.items() if k != "grad_output"}
        assert np.array_equal(celib.cross_entropy(x, t, **opts), loss, equal_nan=True)
    return loss, grad


def assert_same(actual, expected, rtol=1e-12, atol=0.0):
    assert actual.dtype == expected.dtype, (actual.dtype, expected.dtype)
    assert actual.shape == expected.shape, (actual.shape, expected.shape)
    np.testing.assert_allclose(actual, expected, rtol=rtol, atol=atol, equal_nan=True)


def assert_matches_torch(x, t, rtol=1e-12, atol=0.0, **options):
    loss, grad = celib_loss_and_grad(x, t, **options)
    ref_loss, ref_grad = torch_loss_and_grad(x, t, **options)
    assert_same(loss, ref_loss, rtol, atol)
    assert_same(grad, ref_grad, rtol, atol)
    return loss, grad


# ---------------------------------------------------------------------------
# no classes: C = 0 (celib crashed in reshape(-1, 0) with "cannot reshape array of size 0")
# ---------------------------------------------------------------------------


@pytest.mark.parametrize("reduction", REDUCTIONS)
def test_zero_classes_and_zero_rows(reduction):
    """(0, 0) logits with (0,) indices or (0, 0) probabilities: torch's empty results."""
    x = np.zeros((0, 0))
    assert_matches_torch(x, np.zeros(0, np.int64), reduction=reduction)
    assert_matches_torch(x, np.zeros((0, 0)), reduction=reduction)


@pytest.mark.parametrize("reduction", REDUCTIONS)
@pytest.mark.parametrize("shape", [(3, 0), (2, 0, 3)])
def test_zero_classes_with_probabilities(reduction, shape):
    """An empty sum per element: loss 0 ('none', 'sum'); 'mean' NaN, as torch (no classes)."""
    assert_matches_torch(np.zeros(shape), np.zeros(shape), reduction=reduction)


@pytest.mark.parametrize("f", [celib.cross_entropy, celib.cross_entropy_grad])
def test_zero_classes_with_indices_is_an_index_error(f):
    """Every class index is out of range for C = 0: IndexError naming the first, as torch."""
    with pytest.raises(
        IndexError, match=r"target 0 at position \(0,\) is out of bounds for 0 classes"
    ):
        f(np.zeros((3, 0)), np.zeros(3, np.int64))
    with pytest.raises(IndexError, match=r"target 0 at position \(\)"):
        f(np.zeros(0), np.array(0))


# ---------------------------------------------------------------------------
# option types: ignore_index and label_smoothing (celib silently accepted nonsense)
# ---------------------------------------------------------------------------


@pytest.mark.parametrize("f", [celib.cross_entropy, celib.cross_entropy_grad])
@pytest.mark.parametrize("bad", [1.5, -1.0, None, True, "1", np.float64(-100.0)])
def test_ignore_index_must_be_an_integer(f, bad):
    """torch raises TypeError; celib compared the targets with it and ignored nothing
    (1.5, None) or class 1 (True), silently."""
    with pytest.raises(TypeError, match="ignore_index"):
        f(X, Y, ignore_index=bad)
    with pytest.raises(TypeError, match="ignore_index"):
        f(X, Q, ignore_index=bad)


def test_ignore_index_numpy_integer_is_accepted():
    t = np.array([0, -1, 2, 1])
    assert_matches_torch(X, t, ignore_index=np.int64(-1))
    assert_matches_torch(X, t.astype(np.uint8), ignore_index=np.int32(255))


@pytest.mark.parametrize("f", [celib.cross_entropy, celib.cross_entropy_grad])
@pytest.mark.parametrize("bad", ["0.1", b"0.1", np.array([0.1]), [0.1]])
def test_label_smoothing_must_be_a_number(f, bad):
    """label_smoothing='0.1' was parsed by float() and used; torch raises TypeError."""
    with pytest.raises(TypeError, match="label_smoothing"):
        f(X, Y, label_smoothing=bad)


# ---------------------------------------------------------------------------
# class weights: NaN, inf and huge values on a class no row targets
# ---------------------------------------------------------------------------


@pytest.mark.parametrize("bad_weight", [np.nan, np.inf, 1e308])
@pytest.mark.parametrize("reduction", ["none", "sum"])
def test_nonfinite_weight_of_an_untargeted_class_leaves_other_rows_alone(bad_weight, reduction):
    """Class 1 (weight NaN / inf / 1e308) is the target of row 3 only. Without smoothing,
    rows 0-2 have finite losses and gradients (torch's); celib gave NaN gradients for every
    row, from 0 * sum(w) = 0 * NaN in the target mass."""
    w = np.array([1.0, bad_weight, 1.0, 1.0, 1.0])
    loss, grad = celib_loss_and_grad(X, Y, weight=w, reduction=reduction)
    ref_loss, ref_grad = torch_loss_and_grad(X, Y, weight=w, reduction=reduction)
    assert_same(grad[:3], ref_grad[:3])
    assert np.all(np.isfinite(grad[:3]))
    if reduction == "none":
        assert_same(loss, ref_loss)


def test_infinite_total_weight_zero_grad_output():
    """mean with a kept weight of inf: the loss is inf / inf = NaN, and s = g / inf = 0, so
    rows of finite weight get a gradient of exactly 0 (torch's), not NaN."""
    w = np.array([1.0, np.inf, 1.0, 1.0, 1.0])
    loss, grad = celib_loss_and_grad(X, Y, weight=w, grad_output=np.array(0.0))
    ref_loss, ref_grad = torch_loss_and_grad(X, Y, weight=w, grad_output=np.array(0.0))
    assert np.isnan(loss) and np.isnan(ref_loss)
    assert_same(grad[:3], ref_grad[:3])


@pytest.mark.parametrize("label_smoothing", [0.0, 0.2])
@pytest.mark.parametrize("reduction", ["none", "sum"])
def test_huge_weights(label_smoothing, reduction):
    """Weights of 1e308: sum(w) overflows, but every a_nc and every gradient entry is
    finite (torch's values); celib gave inf / NaN gradients. The unreduced loss is
    1e308 times that of unit weights where that is below the float64 maximum (torch
    overflows to inf in its smoothing sum there: celib is the more accurate)."""
    w = np.full(5, 1e308)
    options = dict(reduction=reduction, label_smoothing=label_smoothing)
    loss, grad = celib_loss_and_grad(X, Y, weight=w, **options)
    ref_loss, ref_grad = torch_loss_and_grad(X, Y, weight=w, **options)
    assert_same(grad, ref_grad)
    with np.errstate(over="ignore"):
        exact = 1e308 * celib.cross_entropy(X, Y, **options)
    assert_same(loss, exact)


# ---------------------------------------------------------------------------
# logits at the largest float: the smoothing / probability terms lost log C
# ---------------------------------------------------------------------------


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("sign", [1, -1])
@pytest.mark.parametrize("reduction", REDUCTIONS)
def test_equal_logits_at_float_max_smoothing_and_probabilities(dtype, sign, reduction):
    """All logits equal to +-max float: softmax is uniform, every loss log(5) = 1.609.
    celib formed lse - x_c as (m + log S) - x_c, which rounds m + log S to m: the label
    smoothing term lost log 5 (loss 1.448) and probability targets gave 0."""
    x = np.full((4, 5), sign * np.finfo(dtype).max, dtype)
    tol = dict(rtol=1e-5, atol=1e-7) if dtype == np.float32 else dict(rtol=1e-12, atol=1e-15)
    loss, _ = assert_matches_torch(x, Y, reduction=reduction, label_smoothing=0.1, **tol)
    assert_matches_torch(x, Q.astype(dtype), reduction=reduction, **tol)
    assert_matches_torch(x, Q.astype(dtype), reduction=reduction, label_smoothing=0.3, **tol)
    assert np.allclose(loss, np.log(5) * (4 if reduction == "sum" else 1), rtol=1e-6)


# ---------------------------------------------------------------------------
# +inf logits: torch gives NaN for the slice (inf - inf); celib gave a mixture
# ---------------------------------------------------------------------------


@pytest.mark.parametrize("dtype", [np.float16, np.float32, np.float64])
def test_softmax_family_with_positive_infinity(dtype):
    """softmax([1, inf, 0]) is NaN everywhere in torch (exp(inf - inf)); celib gave
    [0, nan, 0] and log_softmax [-inf, nan, -inf]. logsumexp is +inf in both."""
    x = np.array(
        [
            [1.0, np.inf, 0.0],
            [np.inf, np.inf, -np.inf],
            [np.inf, -np.inf, -np.inf],
            [1.0, 2.0, 3.0],
            [-np.inf, -np.inf, -np.inf],
            [np.inf, np.nan, 0.0],
        ],
        dtype,
    )
    xt = torch.from_numpy(x.astype(np.float64))
    for ours, theirs in [
        (celib.softmax(x), torch.softmax(xt, -1)),
        (celib.log_softmax(x), torch.log_softmax(xt, -1)),
        (celib.logsumexp(x), torch.logsumexp(xt, -1)),
    ]:
        assert_same(ours, theirs.numpy().astype(dtype), rtol=1e-3 if dtype == np.float16 else 1e-6)


@pytest.mark.parametrize("dtype", [np.float16, np.float32, np.float64])
@pytest.mark.parametrize("reduction", REDUCTIONS)
@pytest.mark.parametrize("label_smoothing", [0.0, 0.1])
def test_positive_infinite_logit(dtype, reduction, label_smoothing):
    """A +inf logit (also float16 logits beyond 65504): NaN loss and NaN gradient for the
    row, as torch (celib gave loss +inf, or NaN, with gradient 0 off the inf class)."""
    x = X.copy()
    x[1, 3] = np.inf  # not the target (4)
    x[2, 2] = np.inf  # the target
    x[3, [0, 3]] = np.inf  # two of them
    x = x.astype(dtype)
    rtol = 2e-2 if dtype == np.float16 else 1e-5
    for t in (Y, Q.astype(dtype)):
        loss, grad = assert_matches_torch(
            x, t, reduction=reduction, label_smoothing=label_smoothing, rtol=rtol, atol=rtol
        )
        assert np.all(np.isnan(grad[1:])) and np.all(np.isfinite(grad[0]))


def test_positive_infinite_logit_in_an_ignored_row():
    """Ignored: loss 0 and gradient exactly 0 (celib's convention for ignored elements,
    deviation 5 of the book; torch's gradient is NaN there)."""
    x = X.copy()
    x[1, 3] = np.inf
    t = np.array([0, -100, 2, 1])
    loss, grad = celib_loss_and_grad(x, t, reduction="none")
    ref_loss, ref_grad = torch_loss_and_grad(x, t, reduction="none")
    assert_same(loss, ref_loss)
    assert np.all(grad[1] == 0) and np.all(np.isnan(ref_grad[1]))
    assert_same(grad[[0, 2, 3]], ref_grad[[0, 2, 3]])


# ---------------------------------------------------------------------------
# the softmax family on 0-d and empty input (crashed: "return arrays must be of ArrayType",
# "zero-size array to reduction operation maximum which has no identity")
# ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    "x, axis",
    [
        (np.array(1.5), 0),
        (np.array(-np.inf), -1),
        (2.5, -1),
        (np.zeros(0), -1),
        (np.zeros((3, 0)), -1),
        (np.zeros((3, 0)), 0),
        (np.zeros((0, 4)), 1),
        (np.zeros((2, 0, 3)), 1),
    ],
)
@pytest.mark.parametrize("name", ["softmax", "log_softmax", "logsumexp"])
def test_softmax_family_zero_dimensional_and_empty(x, axis, name):
    ours = getattr(celib, name)(x, axis=axis)
    theirs = getattr(torch, name)(torch.tensor(np.asarray(x, np.float64)), axis).numpy()
    assert_same(np.asarray(ours), theirs)


@pytest.mark.parametrize("name", ["softmax", "log_softmax", "logsumexp"])
@pytest.mark.parametrize(
    "x, axis", [(np.array(1.5), 1), (np.zeros((2, 3)), 2), (np.zeros((2, 3)), -3)]
)
def test_softmax_family_axis_out_of_range(name, x, axis):
    """numpy's AxisError (a ValueError and an IndexError) naming the axis and the ndim."""
    with pytest.raises(
        IndexError, match=f"axis {axis} is out of bounds for array of dimension {x.ndim}"
    ):
        getattr(celib, name)(x, axis=axis)


# ---------------------------------------------------------------------------
# no floating-point warnings leak out for extreme but valid input
# ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    "case",
    [
        "inf weight",
        "huge weight",
        "float max logits",
        "float16 huge grad_output",
        "float16 overflowing sum",
    ],
)
def test_no_runtime_warnings(case):
    """celib states its IEEE conventions (inf, NaN) instead of warning about them; these
    inputs emitted 'overflow encountered in multiply / cast / subtract' and 'invalid value'."""
    options = {
        "inf weight": dict(weight=np.array([1.0, np.inf, 1.0, 1.0, 1.0]), label_smoothing=0.1),
        "huge weight": dict(weight=np.full(5, 1e308), label_smoothing=0.2, reduction="sum"),
        "float max logits": dict(label_smoothing=0.1),
        "float16 huge grad_output": dict(grad_output=np.array(6e4, np.float16), reduction="sum"),
        "float16 overflowing sum": dict(reduction="sum"),
    }[case]
    x = {
        "float max logits": np.where(np.arange(5) % 2 == 0, 1, -1)
        * np.finfo(np.float64).max
        * np.ones((4, 1)),
        "float16 huge grad_output": X.astype(np.float16),
        "float16 overflowing sum": (X / np.abs(X).max() * 6e4).astype(np.float16),
    }.get(case, X)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        celib.cross_entropy_and_grad(x, Y, **options)
        if "grad_output" not in options:
            celib.cross_entropy(x, Q.astype(x.dtype), **options)


# ---------------------------------------------------------------------------
# numerical_grad: bad steps and bad return values are errors, not silent numbers
# ---------------------------------------------------------------------------


def test_numerical_grad_step_below_resolution_is_an_error():
    with pytest.raises(ValueError, match="eps"):
        celib.numerical_grad(np.sum, X, eps=1e-320)


@pytest.mark.parametrize("eps", ["1e-6", None, np.array([1e-6, 1e-6])])
def test_numerical_grad_non_numeric_step_names_eps(eps):
    with pytest.raises((TypeError, ValueError), match="eps"):
        celib.numerical_grad(np.sum, X, eps=eps)


def test_numerical_grad_f_returning_none_is_an_error():
    with pytest.raises((TypeError, ValueError), match="f must return"):
        celib.numerical_grad(lambda z: None, X)


@pytest.mark.parametrize("reduction", ["none", "sum", "mean"])
def test_no_classes_every_target_ignored(reduction):
    """C = 0 with every class index ignored: torch gives zeros / 0 / NaN, not an error."""
    x, t = np.zeros((3, 0)), np.full(3, -100)
    expected = {"none": np.zeros(3), "sum": 0.0, "mean": np.nan}[reduction]
    np.testing.assert_array_equal(celib.cross_entropy(x, t, reduction=reduction), expected)
    assert celib.cross_entropy_grad(x, t, reduction=reduction).shape == (3, 0)


# ---------------------------------------------------------------------------
# issue 11: the input contract against torch 2.13 (followed, or a listed deviation)
# ---------------------------------------------------------------------------


def test_probability_target_wider_than_logits_promotes_the_loss_dtype():
    # torch promotes: float32 logits with float64 probabilities give a float64 loss
    import torch

    rng = np.random.default_rng(8)
    for xdt, qdt in (
        (np.float32, np.float64),
        (np.float16, np.float32),
        (np.float32, np.float16),
        (np.float64, np.float32),
    ):
        x = rng.standard_normal((4, 3)).astype(xdt)
        q = rng.dirichlet(np.ones(3), 4).astype(qdt)
        for reduction in ("mean", "none"):
            expected = torch.nn.functional.cross_entropy(
                torch.from_numpy(x), torch.from_numpy(q), reduction=reduction
            ).numpy()
            got = celib.cross_entropy(x, q, reduction=reduction)
            assert got.dtype == expected.dtype, (xdt, qdt)
            np.testing.assert_allclose(got, expected, rtol=2e-3)
            assert celib.cross_entropy_grad(x, q, reduction=reduction).dtype == xdt


@pytest.mark.parametrize("ignore_index", [2**63, -(2**63) - 1, 10**30])
def test_ignore_index_beyond_int64_is_an_error_as_torch(ignore_index):
    with pytest.raises(ValueError, match=f"ignore_index={ignore_index}"):
        celib.cross_entropy(np.zeros((2, 3)), np.array([0, 1]), ignore_index=ignore_index)


def test_one_dimensional_logits_accept_a_target_of_shape_one_as_torch():
    x = np.array([0.5, 2.0, -1.0])
    for reduction in ("mean", "sum", "none"):
        got = celib.cross_entropy(x, np.array([1]), reduction=reduction)
        assert got.shape == ()
        assert got == celib.cross_entropy(x, np.array(1), reduction=reduction)
        np.testing.assert_array_equal(
            celib.cross_entropy_grad(x, np.array([1]), reduction=reduction),
            celib.cross_entropy_grad(x, np.array(1), reduction=reduction),
        )


def test_deviation_weight_dtype_may_differ_from_the_logits():
    """torch raises for a weight whose dtype is not the logits'; celib computes with it."""
    import torch

    x, y = np.array([[2.0, 0.0, 0.5]], np.float32), np.array([1])
    w = np.array([1.0, 2.0, 0.5])  # float64
    with pytest.raises(RuntimeError, match="expected scalar type"):
        torch.nn.functional.cross_entropy(
            torch.from_numpy(x), torch.from_numpy(y), weight=torch.from_numpy(w)
        )
    got = celib.cross_entropy(x, y, weight=w)
    assert got.dtype == np.float32
    np.testing.assert_allclose(got, celib.cross_entropy(x.astype(np.float64), y), rtol=1e-6)
    from celib.torch_ops import cross_entropy as torch_ce

    np.testing.assert_allclose(
        torch_ce(torch.from_numpy(x), torch.from_numpy(y), weight=torch.from_numpy(w)).numpy(),
        got,
        rtol=1e-6,
    )


@pytest.mark.parametrize("dtype", [np.int32, np.int16, np.int8])
def test_deviation_narrow_integer_targets_are_class_indices(dtype):
    """torch accepts only int64 and uint8 class indices; celib any integer dtype."""
    import torch

    x, y = np.array([[2.0, 0.0, 0.5], [0.1, 0.2, 0.3]]), np.array([1, -100])
    with pytest.raises(RuntimeError, match="expected target dtype to be Long or Byte"):
        torch.nn.functional.cross_entropy(torch.from_numpy(x), torch.from_numpy(y.astype(dtype)))
    assert celib.cross_entropy(x, y.astype(dtype)) == celib.cross_entropy(x, y)
    from celib.torch_ops import cross_entropy as torch_ce

    assert torch_ce(
        torch.from_numpy(x), torch.from_numpy(y.astype(dtype))
    ).item() == celib.cross_entropy(x, y)


def test_deviation_elementwise_mean_is_rejected():
    """torch accepts its deprecated alias reduction='elementwise_mean' (with a warning)."""
    import warnings

    import torch

    x, y = np.array([[2.0, 0.0, 0.5]]), np.array([1])
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        torch.nn.functional.cross_entropy(
            torch.from_numpy(x), torch.from_numpy(y), reduction="elementwise_mean"
        )
    assert any("deprecated" in str(w.message) for w in caught)
    with pytest.raises(ValueError, match="elementwise_mean"):
        celib.cross_entropy(x, y, reduction="elementwise_mean")


def test_float16_cast_of_subnormals_is_numpys_bit_for_bit():
    # the reference writes float16 subnormals from their bits (NumPy's cast of them is slow)
    from celib.reference import _cast

    rng = np.random.default_rng(9)
    v = np.concatenate(
        [
            rng.standard_normal(20000) * 10.0 ** rng.integers(-12, 3, 20000),
            np.array(
                [
                    0.0,
                    -0.0,
                    np.inf,
                    -np.inf,
                    np.nan,
                    2.0**-14,
                    -(2.0**-14),
                    2.0**-25,
                    3 * 2.0**-25,
                    5 * 2.0**-25,
                    2.0**-24 * 1023.5,
                    1e-45,
                    65520.0,
                ]
            ),
        ]
    ).astype(np.float32)
    mostly_normal = (rng.standard_normal(3000) * 10.0 ** rng.integers(-5, 4, 3000)).astype(
        np.float32
    )
    mostly_tiny = (rng.standard_normal(3000) * 1e-6).astype(np.float32)
    mostly_tiny[::7] = 0.5
    for a in (v, v[:20007].reshape(-1, 3)[:, ::2], mostly_normal, mostly_tiny):
        assert 0 < np.mean(np.abs(a) < 2.0**-14) < 1
        got, expected = _cast(a, np.float16), a.astype(np.float16)
        assert got.dtype == np.float16 and got.shape == a.shape
        np.testing.assert_array_equal(got.view(np.uint16), expected.view(np.uint16))


HUGE_WEIGHT_CASES = {
    # (rows, reduction, grad_output): s_n A_n overflows, s_n (p_n A_n - a_n) need not
    "one row, sum": (1, "sum", 2.0),
    "two rows, sum": (2, "sum", 2.0),
    "two rows, none": (2, "none", np.array([2.0, 3.0])),
}


def _huge_weight_case(rows, reduction, grad_output):
    x = np.random.default_rng(3).standard_normal((rows, 5))
    y = np.array([0, 3])[:rows]
    options = dict(weight=np.full(5, 1.5e308), reduction=reduction, label_smoothing=0.2)
    return x, y, grad_output, options


@pytest.mark.parametrize("case", HUGE_WEIGHT_CASES, ids=list(HUGE_WEIGHT_CASES))
def test_huge_class_weights_give_the_finite_gradient(case):
    # weights near the float maximum: s_n A_n = 2 * 1.5e308 overflowed before the small
    # factor p_n - a_n / A_n multiplied it, so every entry was +-inf. The true gradient is
    # 2^40 times that of the weights scaled by 2^-40 (exact powers of 2): finite but for
    # a true class or a very probable class, truly beyond the range there
    x, y, g, options = _huge_weight_case(*HUGE_WEIGHT_CASES[case])
    loss, grad = celib_loss_and_grad(x, y, grad_output=g, **options)
    small = dict(options, weight=np.ldexp(options["weight"], -40))
    with np.errstate(over="ignore"):
        expected = np.ldexp(celib.cross_entropy_grad(x, y, grad_output=g, **small), 40)
    assert np.count_nonzero(np.isfinite(grad)) >= x.size - len(y) - 1
    assert_same(grad, expected, rtol=1e-14)
    assert np.array_equal(grad, celib.cross_entropy_grad(x, y, grad_output=g, **options))


def test_mean_over_a_subnormal_total_weight_gives_the_finite_gradient():
    # each weight 1e-310: the total 4e-310 is subnormal and 1 / total overflowed, so the
    # gradient was +-inf. A weighted mean does not change when every weight is scaled by
    # the same factor: with equal weights it is the unweighted 0.25 (p_n - onehot(y_n))
    x, y = X, Y
    for label_smoothing in (0.0, 0.2):
        options = dict(weight=np.full(5, 1e-310), label_smoothing=label_smoothing)
        loss, grad = celib_loss_and_grad(x, y, **options)
        # (the smoothing's (eps / C) w is subnormal: rounded to about 40 bits)
        rtol = 1e-14 if label_smoothing == 0 else 1e-11
        scaled = dict(options, weight=np.ldexp(options["weight"], 200))  # normal, exact
        assert_same(grad, celib.cross_entropy_grad(x, y, **scaled), rtol=rtol)
        unweighted = celib.cross_entropy_grad(x, y, label_smoothing=label_smoothing)
        assert_same(grad, unweighted, rtol=rtol)
    p = celib.softmax(x)
    np.testing.assert_allclose(
        celib.cross_entropy_grad(x, y, np.full(5, 1e-310)), 0.25 * (p - np.eye(5)[y]), rtol=1e-12
    )


def test_deviation_huge_class_weights_finite_gradient_where_torch_overflows():
    """torch forms s_n A_n first: its gradient is inf or NaN where celib's is finite."""
    x, y, g, options = _huge_weight_case(*HUGE_WEIGHT_CASES["two rows, sum"])
    grad = celib.cross_entropy_grad(x, y, grad_output=g, **options)
    _, torch_grad = torch_loss_and_grad(x, y, grad_output=g, **options)
    assert np.count_nonzero(np.isfinite(grad)) == 8  # of 10
    assert not np.any(np.isfinite(torch_grad))


def test_deviation_mean_over_a_subnormal_total_weight():
    """torch divides by the subnormal total first: inf or NaN where celib's is finite."""
    weight = np.full(5, 1e-310)
    grad = celib.cross_entropy_grad(X, Y, weight)
    _, torch_grad = torch_loss_and_grad(X, Y, weight=weight)
    assert np.all(np.isfinite(grad))
    assert not np.any(np.isfinite(torch_grad))
