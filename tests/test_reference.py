"""celib's NumPy reference against torch.nn.functional.cross_entropy and its autograd.

Sections: the oracle (torch), property-based agreement over random shapes and every
combination of options, named edge cases, the deliberate deviations from torch (the
book's page ``chapters/*/deviations.ipynb``), the softmax family, finite differences.
Bad input and the caller's arrays are in ``test_reference_errors.py``.

Tolerances (documented here, used below)
-----------------------------------------
float64   celib vs torch float64: rtol 1e-10, atol 1e-12 x magnitude.
float32   celib vs torch float64 on the same (float32) numbers: rtol 2e-5,
          atol 2e-6 x magnitude; vs torch float32: rtol 1e-4, atol 2e-5 x magnitude
          (torch float32 itself loses the small entries of confident rows).
float16   celib vs torch float64: rtol 2e-3, atol 2e-3 x magnitude (celib computes in
          float32 and rounds once); vs torch float16: rtol 2e-2, atol 2e-2 x magnitude
          (torch rounds log-probabilities to float16 before reducing).
"Magnitude" is (1 + max |finite logit|) x (1 + max weight) x |grad_output| for a loss,
times the number of elements for reduction='sum'; for a gradient, the size of the two terms
that cancel in s_n (p_n A_n - a_n): (1 + max weight) x |grad_output| / denominator (torch's
own float64 p_y - 1 loses about 1e-16 of it in a confident row).
"""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import celib

torch = pytest.importorskip("torch")
F = torch.nn.functional

REDUCTIONS = ("none", "mean", "sum")
EXAMPLES = settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])


# ---------------------------------------------------------------------------
# the oracle: torch's forward and autograd, as NumPy arrays
# ---------------------------------------------------------------------------


def torch_cross_entropy(logits, target, *, dtype=None, grad_output=None, weight=None, **options):
    """Loss and dL/dlogits from torch (CPU), optionally recomputed in ``dtype``.

    Class indices are passed as int64; float arrays (logits, probabilities, weight,
    grad_output) are cast to ``dtype`` (default: the logits' dtype).
    """
    dtype = np.dtype(dtype or np.asarray(logits).dtype)

    def as_float(a):
        return torch.from_numpy(np.array(a, dtype=dtype))

    x = as_float(logits).requires_grad_(True)
    t = np.asarray(target)
    t = as_float(t) if np.issubdtype(t.dtype, np.floating) else torch.from_numpy(t.astype(np.int64))
    w = None if weight is None else as_float(weight)
    loss = F.cross_entropy(x, t, weight=w, **options)
    g = torch.ones_like(loss) if grad_output is None else as_float(grad_output)
    loss.backward(g)
    return loss.detach().numpy(), x.grad.numpy()


def torch_oracle(
    logits,
    target,
    *,
    dtype,
    grad_output=None,
    weight=None,
    ignore_index=-100,
    reduction="mean",
    label_smoothing=0.0,
):
    """The true loss and gradient, computed by torch in ``dtype`` without torch's 0 * inf = NaN.

    Two rewrites, each exact: a -inf logit with a zero effective target becomes a finite
    logit whose exp still underflows to 0 (:func:`harmless_logits`); and a class-index
    target with label_smoothing=1.0, whose loss is the smoothing term alone (torch adds
    0 * NLL, NaN for a -inf target logit), is computed from torch's probability-target
    path with eps = 1, masked and reduced with the class-index denominators.
    """
    a = effective_target(logits, target, weight, ignore_index, label_smoothing)
    x = harmless_logits(logits, a)
    t = np.asarray(target)
    if t.shape != x.shape and x.size:  # an ignored row of all -inf: any finite row will do
        axis = 0 if x.ndim == 1 else 1
        dead = np.expand_dims((t == ignore_index) & np.all(np.isneginf(x), axis=axis), axis)
        x = np.where(dead, 0.0, x).astype(x.dtype)
    options = dict(
        weight=weight,
        ignore_index=ignore_index,
        reduction=reduction,
        label_smoothing=label_smoothing,
    )
    t = np.asarray(target)
    if t.shape == x.shape or label_smoothing != 1.0:
        return torch_cross_entropy(x, t, dtype=dtype, grad_output=grad_output, **options)

    axis = 0 if x.ndim == 1 else 1
    xt = torch.from_numpy(np.array(x, dtype=dtype)).requires_grad_(True)
    w = None if weight is None else torch.from_numpy(np.array(weight, dtype=dtype))
    per = F.cross_entropy(xt, torch.zeros_like(xt), weight=w, reduction="none", label_smoothing=1.0)
    keep = torch.from_numpy(np.asarray(t != ignore_index))
    per = per.masked_fill(~keep, 0.0)
    if reduction == "none":
        loss = per
    elif reduction == "sum":
        loss = per.sum()
    else:
        w_all = torch.ones(x.shape[axis], dtype=xt.dtype) if w is None else w
        denominator = w_all[torch.from_numpy(np.where(t != ignore_index, t, 0).astype(np.int64))][
            keep
        ].sum()
        loss = per.sum() / denominator if denominator != 0 else per.sum() * np.nan
    g = (
        torch.ones_like(loss)
        if grad_output is None
        else torch.from_numpy(np.array(grad_output, dtype))
    )
    loss.backward(g)
    return loss.detach().numpy(), xt.grad.numpy()


def effective_target(logits, target, weight, ignore_index, label_smoothing):
    """a_nc of the design notes, float64, shape of logits (the test's own spelling of it)."""
    x = np.asarray(logits)
    C = x.shape[0 if x.ndim == 1 else 1]
    axis = 0 if x.ndim == 1 else 1
    w = np.ones(C) if weight is None else np.asarray(weight, np.float64)
    eps = label_smoothing
    wshape = [1] * x.ndim
    wshape[axis] = C
    w_b = w.reshape(wshape)
    t = np.asarray(target)
    if t.shape == x.shape:  # probabilities
        return ((1 - eps) * t.astype(np.float64) + eps / C) * w_b
    keep = t != ignore_index
    y = np.where(keep, t, 0)
    onehot = np.moveaxis(np.eye(C)[y], -1, axis)  # shape of logits
    a = (1 - eps) * onehot * w_b + eps / C * w_b
    return a * np.expand_dims(keep, axis)


def harmless_logits(logits, a):
    """Logits where each -inf with a zero effective target is replaced by a finite value.

    exp of the new value underflows to 0 exactly as exp(-inf) does, and 0 times a
    finite number is 0: the true loss and gradient are unchanged, but torch no longer
    computes 0 * inf = NaN there. Only rows with a finite maximum are touched.
    """
    x = np.array(logits)
    axis = 0 if x.ndim == 1 else 1
    m = np.max(x, axis=axis, keepdims=True) if x.size else x
    replace = np.isneginf(x) & (a == 0) & np.isfinite(m)
    x[replace] = np.broadcast_to(m - 3e4 if x.dtype != np.float16 else m - 6e4, x.shape)[replace]
    return x


def assert_agrees(actual, expected, *, rtol, atol, what=""):
    """Same shape; NaN where expected is NaN; same infinities; close elsewhere."""
    actual, expected = np.asarray(actual), np.asarray(expected)
    assert actual.shape == expected.shape, f"{what}: shape {actual.shape} != {expected.shape}"
    np.testing.assert_array_equal(np.isnan(actual), np.isnan(expected), err_msg=f"{what}: NaN")
    np.testing.assert_array_equal(
        np.isposinf(actual), np.isposinf(expected), err_msg=f"{what}: +inf"
    )
    np.testing.assert_array_equal(
        np.isneginf(actual), np.isneginf(expected), err_msg=f"{what}: -inf"
    )
    finite = np.isfinite(expected)
    np.testing.assert_allclose(
        actual[finite].astype(np.float64),
        expected[finite].astype(np.float64),
        rtol=rtol,
        atol=atol,
        err_msg=what,
    )


def magnitudes(problem, expected_grad):
    """The 'magnitude' of the module docstring for the loss and for the gradient."""
    x = np.asarray(problem["logits"], np.float64)
    finite = x[np.isfinite(x)]
    xmax = np.max(np.abs(finite)) if finite.size else 0.0
    w = problem["options"].get("weight")
    wmax = 0.0 if w is None else float(np.max(w))
    g = problem["grad_output"]
    gmax = 1.0 if g is None else float(np.max(np.abs(g), initial=0.0))
    loss_mag = (1 + xmax) * (1 + wmax) * max(gmax, 1e-3)
    if problem["options"]["reduction"] == "sum":
        loss_mag *= max(1, x.size)
    # the gradient's terms p_n A_n and a_n are up to |s_n| (1 + max weight), s_n = g / denominator
    denominator = 1.0
    if problem["options"]["reduction"] == "mean":
        a = effective_target(x, problem["target"], w, problem["options"]["ignore_index"], 0.0)
        denominator = (
            a.sum()
            if np.shape(problem["target"]) != x.shape
            else a.size / max(1, a.shape[a.ndim > 1])
        )
        denominator = denominator or 1.0
    grad = np.abs(expected_grad[np.isfinite(expected_grad)])
    grad_mag = max(float(np.max(grad, initial=0.0)), (1 + wmax) * gmax / denominator)
    return loss_mag, grad_mag


# ---------------------------------------------------------------------------
# random problems: shapes (edge shapes included), both target kinds, every option
# ---------------------------------------------------------------------------


@st.composite
def problems(draw, dtype=np.float64, scales=(1.0, 10.0, 1e4), allow_masked=True, max_dim=4):
    layout = draw(st.sampled_from(["(C,)", "(N,C)", "(N,C,d...)"]))
    C = draw(st.integers(1, 5))
    if layout == "(C,)":
        batch, shape = (), (C,)
    elif layout == "(N,C)":
        N = draw(st.integers(0, max_dim))
        batch, shape = (N,), (N, C)
    else:
        N = draw(st.integers(0, 3))
        ds = tuple(draw(st.lists(st.integers(0, 3), min_size=1, max_size=2)))
        batch, shape = (N, *ds), (N, C, *ds)
    rng = np.random.default_rng(draw(st.integers(0, 2**32 - 1)))
    axis = 0 if len(shape) == 1 else 1

    x = rng.standard_normal(shape) * draw(st.sampled_from(scales))
    if allow_masked and draw(st.booleans()):  # masked classes
        x[rng.random(shape) < 0.3] = -np.inf

    weight = None
    weight_kind = draw(st.sampled_from(["none", "positive", "with zeros"]))
    if weight_kind != "none":
        weight = rng.uniform(0.1, 3.0, C)
        if weight_kind == "with zeros":
            weight[rng.random(C) < 0.4] = 0.0

    kind = draw(st.sampled_from(["indices", "probabilities"]))
    if kind == "indices":
        ignore_index = draw(st.sampled_from(["-100", "-1", "inside", "outside"]))
        ignore_index = {"-100": -100, "-1": -1, "inside": int(rng.integers(C)), "outside": C + 3}[
            ignore_index
        ]
        target = rng.integers(0, C, batch)
        ignored = rng.random(batch) < draw(st.sampled_from([0.0, 0.3, 1.0]))
        target = np.where(ignored, ignore_index, target).astype(np.int64)
    else:
        ignore_index = draw(st.sampled_from([-100, -1, -7]))
        target = rng.random(shape)
        target[rng.random(shape) < 0.3] = 0.0
        if draw(st.booleans()):  # a distribution, or not
            with np.errstate(invalid="ignore", divide="ignore"):
                target = np.nan_to_num(target / target.sum(axis=axis, keepdims=True))
        target = target.astype(dtype)

    label_smoothing = draw(st.sampled_from([0.0, 1.0]) | st.floats(0.0, 1.0))
    reduction = draw(st.sampled_from(REDUCTIONS))
    grad_output = None
    if draw(st.booleans()):
        loss_shape = batch if reduction == "none" else ()
        grad_output = rng.uniform(-2, 2, loss_shape).astype(dtype)

    return {
        "logits": x.astype(dtype),
        "target": target,
        "grad_output": grad_output,
        "options": {
            "weight": None if weight is None else weight.astype(dtype),
            "ignore_index": ignore_index,
            "reduction": reduction,
            "label_smoothing": label_smoothing,
        },
    }


def check_against_torch(problem, *, rtol, atol, rtol_same, atol_same):
    """celib vs torch at float64 (tight) and torch in the input's dtype (dtype, shape, looser)."""
    x, t, g, opts = problem["logits"], problem["target"], problem["grad_output"], problem["options"]
    loss = celib.cross_entropy(x, t, **opts)
    grad = celib.cross_entropy_grad(x, t, grad_output=g, **opts)

    ref_loss, ref_grad = torch_oracle(x, t, dtype=np.float64, grad_output=g, **opts)
    same_loss, same_grad = torch_cross_entropy(x, t, grad_output=g, **opts)

    # dtypes and shapes as torch's, in the input's dtype
    assert loss.dtype == same_loss.dtype == x.dtype and loss.shape == same_loss.shape
    assert grad.dtype == same_grad.dtype == x.dtype and grad.shape == same_grad.shape == x.shape

    loss_mag, grad_mag = magnitudes(problem, ref_grad)
    assert_agrees(loss, ref_loss, rtol=rtol, atol=atol * loss_mag, what="loss vs torch float64")
    assert_agrees(grad, ref_grad, rtol=rtol, atol=atol * grad_mag, what="grad vs torch float64")

    # torch in the input's own dtype: the same, except where it computes 0 * inf = NaN
    # from a -inf logit (the deliberate deviations, chapters/*/deviations.ipynb)
    deviating = np.isnan(same_loss) & ~np.isnan(loss)
    if deviating.any():
        assert np.isneginf(x).any()
    assert_agrees(
        loss[~deviating],
        same_loss[~deviating],
        rtol=rtol_same,
        atol=atol_same * loss_mag,
        what="loss vs torch",
    )
    deviating = np.isnan(same_grad) & ~np.isnan(grad)  # an ignored row of all -inf
    if deviating.any():
        assert np.isneginf(x).any() and np.all(grad[deviating] == 0)
    if x.dtype != np.float16:  # torch float16 can flush a tiny gradient or overflow a big one
        assert_agrees(
            grad[~deviating],
            same_grad[~deviating],
            rtol=rtol_same,
            atol=atol_same * grad_mag,
            what="grad vs torch",
        )


# ---------------------------------------------------------------------------
# properties
# ---------------------------------------------------------------------------


@EXAMPLES
@given(problems(np.float64))
def test_float64_agrees_with_torch(problem):
    check_against_torch(problem, rtol=1e-10, atol=1e-12, rtol_same=1e-10, atol_same=1e-12)


@EXAMPLES
@given(problems(np.float32))
def test_float32_agrees_with_torch(problem):
    check_against_torch(problem, rtol=2e-5, atol=2e-6, rtol_same=1e-4, atol_same=2e-5)


@EXAMPLES
@given(problems(np.float16, scales=(1.0, 5.0)))
def test_float16_agrees_with_torch(problem):
    check_against_torch(problem, rtol=2e-3, atol=2e-3, rtol_same=2e-2, atol_same=2e-2)


@EXAMPLES
@given(problems(np.float64, scales=(1.0, 3.0), allow_masked=False, max_dim=3))
def test_gradient_agrees_with_finite_differences(problem):
    """cross_entropy_grad against celib.numerical_grad of cross_entropy, in float64."""
    x, t, g, opts = problem["logits"], problem["target"], problem["grad_output"], problem["options"]
    if g is None:
        g = (
            np.ones(x.shape[:1] + x.shape[2:] if x.ndim > 1 else ())
            if opts["reduction"] == "none"
            else np.array(1.0)
        )

    def objective(z):  # J = sum(grad_output * L)
        return np.sum(g * celib.cross_entropy(z, t, **opts))

    grad = celib.cross_entropy_grad(x, t, grad_output=g, **opts)
    numeric = celib.numerical_grad(objective, x, eps=1e-6)
    if np.isnan(celib.cross_entropy(x, t, **opts)).any():  # mean over a total weight of 0
        return  # (compared with torch above)
    scale = 1 + np.max(np.abs(grad), initial=0.0)
    np.testing.assert_allclose(
        grad, numeric, rtol=1e-6, atol=1e-7 * scale * (1 + np.abs(x).max(initial=0))
    )


@settings(max_examples=300, deadline=None)
@given(
    st.integers(0, 2**32 - 1),
    st.sampled_from([np.float16, np.float32, np.float64]),
    st.sampled_from([1.0, 1e4, 1e8, 1e30, 3e38]),
    st.integers(1, 6),
)
def test_softmax_family_stable_and_agrees_with_torch(seed, dtype, scale, C):
    """Finite input of any size (float32's maximum included): finite, torch's values."""
    rng = np.random.default_rng(seed)
    limit = np.finfo(dtype).max
    x = np.clip(rng.uniform(-1, 1, (3, C)) * scale, -limit, limit).astype(dtype)
    xt = torch.from_numpy(x.astype(np.float64))
    rtol = {np.float16: 2e-3, np.float32: 2e-6, np.float64: 1e-13}[dtype]
    for ours, theirs in [
        (celib.softmax(x), torch.softmax(xt, -1)),
        (celib.log_softmax(x), torch.log_softmax(xt, -1)),
        (celib.logsumexp(x), torch.logsumexp(xt, -1)),
    ]:
        assert ours.dtype == dtype
        with np.errstate(over="ignore"):
            expected = theirs.numpy().astype(dtype)  # float64 truth, rounded to the dtype
        # -inf only where the true value is below -max float (x - m overflows)
        assert_agrees(
            ours,
            expected,
            rtol=rtol,
            atol=rtol * (1 + np.abs(x.astype(float)).max()),
            what=f"{dtype.__name__}",
        )
    assert np.all(np.isfinite(celib.softmax(x)))
    assert np.all(np.isfinite(celib.logsumexp(x)))


# ---------------------------------------------------------------------------
# named edge cases
# ---------------------------------------------------------------------------


def both(x, t, g=None, **options):
    """celib's loss and gradient."""
    return celib.cross_entropy(x, t, **options), celib.cross_entropy_grad(
        x, t, grad_output=g, **options
    )


def assert_matches_torch(x, t, g=None, *, rtol=1e-12, atol=1e-14, **options):
    loss, grad = both(x, t, g, **options)
    ref_loss, ref_grad = torch_cross_entropy(x, t, grad_output=g, **options)
    assert loss.dtype == ref_loss.dtype and grad.dtype == ref_grad.dtype
    assert_agrees(loss, ref_loss, rtol=rtol, atol=atol, what="loss")
    assert_agrees(grad, ref_grad, rtol=rtol, atol=atol, what="grad")
    return loss, grad


RNG = np.random.default_rng(0)
X = RNG.standard_normal((4, 5))
Y = np.array([0, 4, 2, 1])
Q = RNG.dirichlet(np.ones(5), 4)
W = np.array([0.5, 2.0, 0.0, 1.0, 3.0])


@pytest.mark.parametrize("reduction", REDUCTIONS)
def test_one_dimensional_logits(reduction):
    assert_matches_torch(X[0], np.array(3), reduction=reduction, weight=W, label_smoothing=0.2)
    assert_matches_torch(X[0], Q[0], reduction=reduction, weight=W, label_smoothing=0.2)


@pytest.mark.parametrize("reduction", REDUCTIONS)
@pytest.mark.parametrize("shape", [(0, 5), (0, 5, 3), (2, 5, 0), (0, 1)])
def test_empty_input(reduction, shape):
    """mean of nothing is NaN, sum of nothing 0, none is empty; the gradient is empty."""
    x = np.zeros(shape)
    t_idx = np.zeros(shape[:1] + shape[2:], np.int64)
    for t in (t_idx, np.zeros(shape)):
        loss, grad = assert_matches_torch(x, t, reduction=reduction, label_smoothing=0.1)
        assert grad.shape == shape
        if reduction == "mean":
            assert np.isnan(loss)


@pytest.mark.parametrize("reduction", REDUCTIONS)
def test_single_class(reduction):
    """C = 1: the loss is 0 for the only class (times its weight), the gradient 0."""
    x = RNG.standard_normal((3, 1, 2))
    loss, grad = assert_matches_torch(
        x,
        np.zeros((3, 2), np.int64),
        reduction=reduction,
        label_smoothing=0.3,
        weight=np.array([2.0]),
    )
    assert np.all(grad == 0)
    assert_matches_torch(x, np.ones((3, 1, 2)), reduction=reduction)


@pytest.mark.parametrize("ignore_index", [-100, -1, 0, 2, 4, 5, 1000])
@pytest.mark.parametrize("label_smoothing", [0.0, 0.3, 1.0])
def test_ignore_index_inside_and_outside_the_classes(ignore_index, label_smoothing):
    t = np.array([ignore_index, 1, ignore_index, 3])
    for reduction in REDUCTIONS:
        _, grad = assert_matches_torch(
            X,
            t,
            reduction=reduction,
            weight=W,
            ignore_index=ignore_index,
            label_smoothing=label_smoothing,
        )
        assert np.all(grad[[0, 2]] == 0)


@pytest.mark.parametrize("label_smoothing", [0.0, 0.4])
def test_all_targets_ignored(label_smoothing):
    t = np.full(4, -100)
    loss, grad = assert_matches_torch(X, t, weight=W, label_smoothing=label_smoothing)
    assert np.isnan(loss) and np.all(grad == 0)
    assert both(X, t, reduction="sum")[0] == 0


def test_mean_denominators_are_torchs():
    """Class indices: sum of w[y] over kept targets; probabilities: N * d1 * ... (weights ignored)."""
    t = np.array([0, 4, -100, 1])
    per = celib.cross_entropy(X, t, weight=W, reduction="none")
    assert np.isclose(celib.cross_entropy(X, t, weight=W), per.sum() / (W[0] + W[4] + W[1]))
    per = celib.cross_entropy(X, Q, weight=W, reduction="none")
    assert np.isclose(celib.cross_entropy(X, Q, weight=W), per.sum() / 4)
    assert_matches_torch(X, t, weight=W)
    assert_matches_torch(X, Q, weight=W)


@pytest.mark.parametrize("label_smoothing", [0.0, 0.3])
def test_mean_over_zero_total_weight_is_nan(label_smoothing):
    """Every kept target of weight 0: NaN loss and gradient, as torch (a bug fixed: celib gave
    +inf with label smoothing, whose sum stays positive)."""
    t = np.array([2, 2, -100, 2])
    loss, grad = assert_matches_torch(X, t, weight=W, label_smoothing=label_smoothing)
    assert np.isnan(loss) and np.all(np.isnan(grad[[0, 1, 3]])) and np.all(grad[2] == 0)


@pytest.mark.parametrize("kind", ["indices", "probabilities"])
@pytest.mark.parametrize("weight", [None, W])
@pytest.mark.parametrize("ignore_index", [-100, 1])
@pytest.mark.parametrize("label_smoothing", [0.0, 0.25, 1.0])
@pytest.mark.parametrize("reduction", REDUCTIONS)
def test_label_smoothing_with_weight_and_ignore_index(
    kind, weight, ignore_index, label_smoothing, reduction
):
    x = RNG.standard_normal((3, 5, 2))
    if kind == "indices":
        t = np.array([[0, 1], [4, 1], [2, 3]])
    else:
        if ignore_index >= 0:
            pytest.skip("torch rejects ignore_index >= 0 with probabilities (tested with errors)")
        t = RNG.dirichlet(np.ones(5), (3, 2)).transpose(0, 2, 1)
    g = RNG.standard_normal((3, 2)) if reduction == "none" else np.array(0.7)
    assert_matches_torch(
        x,
        t,
        g,
        weight=weight,
        ignore_index=ignore_index,
        label_smoothing=label_smoothing,
        reduction=reduction,
    )


@pytest.mark.parametrize("reduction", REDUCTIONS)
def test_masked_classes(reduction):
    """-inf logits (a mask): finite loss and gradient 0 there, or +inf loss when targeted."""
    x = X.copy()
    x[:, 3] = -np.inf
    loss, grad = assert_matches_torch(x, np.array([0, 4, 2, 1]), reduction=reduction)
    assert np.all(np.isfinite(loss)) and np.all(grad[:, 3] == 0)
    loss, _ = assert_matches_torch(x, np.array([3, 4, 2, 1]), reduction=reduction)
    assert np.isposinf(loss).any()
    # label smoothing puts eps / C on the masked class: +inf, as torch
    loss, _ = assert_matches_torch(
        x, np.array([0, 4, 2, 1]), reduction=reduction, label_smoothing=0.1
    )
    assert np.isposinf(loss).all()


@pytest.mark.parametrize("margin", [14.0, 16.0, 20.0])
def test_confident_rows_float32_gradient_is_accurate(margin):
    """p_y within 1e-6 of 1: the true class's gradient p_y - 1 keeps float32's relative
    accuracy (compared with float64); torch float32 rounds it to 0 or a few ulps of 1."""
    rng = np.random.default_rng(1)
    x = rng.standard_normal((64, 50)).astype(np.float32)
    y = rng.integers(0, 50, 64)
    x[np.arange(64), y] += margin  # 1 - p_y between 4e-5 and 1e-7
    grad = celib.cross_entropy_grad(x, y, reduction="sum")
    true_loss, truth = torch_cross_entropy(x, y, dtype=np.float64, reduction="none")
    _, torch32 = torch_cross_entropy(x, y, reduction="sum")
    true_class = (np.arange(64), y)
    assert np.all(-truth[true_class] < 1e-3)  # p_y - 1
    np.testing.assert_allclose(grad[true_class], truth[true_class], rtol=1e-6)
    np.testing.assert_allclose(grad, truth, rtol=1e-6, atol=1e-12)
    loss = celib.cross_entropy(x, y, reduction="none")  # -log p_y, near 0: also accurate
    np.testing.assert_allclose(loss, true_loss, rtol=1e-6)
    if margin == 20.0:
        torch_error = np.abs(torch32[true_class] / truth[true_class] - 1).max()
        assert torch_error > 1e-3  # why we compare with float64


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("margin", [20.0, 30.0, 40.0, 60.0, 80.0])  # e^-80: still a normal float32
def test_confident_rows_at_any_margin(dtype, margin):
    """Beyond the margins where float64 itself cancels (1 - p_y below 1e-16), the true
    class's gradient still has the input's relative accuracy: compared with the exact
    value -(C - 1) e^-margin / (1 + (C - 1) e^-margin) of a row [margin, 0, ..., 0]."""
    C = 7
    x = np.zeros((1, C), dtype)
    x[0, 0] = margin
    exact = -(C - 1) * np.exp(-margin) / (1 + (C - 1) * np.exp(-margin))
    grad = celib.cross_entropy_grad(x, np.array([0]))
    rtol = 4 * np.finfo(dtype).eps
    np.testing.assert_allclose(grad[0, 0], exact, rtol=rtol)
    np.testing.assert_allclose(
        grad[0, 1:], np.exp(-margin) / (1 + (C - 1) * np.exp(-margin)), rtol=rtol
    )


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("scale", [1e4, 1e8, 3e38])
def test_huge_logits(dtype, scale):
    x = (np.array([[1.0, -0.5, 0.25], [-1.0, 1.0, 0.999]]) * scale).astype(dtype)
    t = np.array([1, 2])
    loss, grad = both(x, t, reduction="none")
    ref_loss, ref_grad = torch_cross_entropy(x, t, dtype=np.float64, reduction="none")
    assert loss.dtype == grad.dtype == dtype
    assert np.all(np.isfinite(grad))
    with np.errstate(over="ignore"):  # 4.5e38 is +inf in float32
        np.testing.assert_allclose(loss, ref_loss.astype(dtype), rtol=1e-6)
    np.testing.assert_allclose(grad, ref_grad, rtol=1e-6, atol=1e-30)


@pytest.mark.parametrize("dtype", [np.float16, np.float32, np.float64])
def test_output_dtype_is_input_dtype(dtype):
    x = X.astype(dtype)
    for reduction in REDUCTIONS:
        loss, grad = both(x, Y, reduction=reduction, weight=W.astype(dtype), label_smoothing=0.1)
        ref_loss, ref_grad = torch_cross_entropy(
            x, Y, reduction=reduction, weight=W.astype(dtype), label_smoothing=0.1
        )
        assert loss.dtype == grad.dtype == ref_loss.dtype == ref_grad.dtype == dtype
        assert loss.shape == ref_loss.shape


def test_float16_is_computed_in_float32():
    """float16 logits 1e4 apart: float16 arithmetic would lose the loss (ulp(1e4) = 8)."""
    x = np.array([[10000.0, 9992.0, 0.0]], np.float16)
    loss = celib.cross_entropy(x, np.array([1]))
    assert loss.dtype == np.float16
    assert np.isclose(float(loss), 8.0 + np.log1p(np.exp(-8.0)), rtol=1e-3)


# ---------------------------------------------------------------------------
# deliberate deviations from torch (chapters/en/deviations.ipynb lists each one)
# ---------------------------------------------------------------------------
# Each test asserts what torch does today too, so that a torch release that changes it
# shows up here and the book's page can be updated.


def test_deviation_probability_zero_on_masked_class():
    """Probability target 0 on a -inf logit: torch NaN (0 * inf), celib the finite loss."""
    x = np.array([[2.0, -np.inf, 0.5]])
    q = np.array([[0.7, 0.0, 0.3]])
    loss, grad = both(x, q)
    torch_loss, torch_grad = torch_cross_entropy(x, q)
    assert np.isnan(torch_loss)
    lse = np.log(np.exp(2.0) + np.exp(0.5))
    assert np.isclose(loss, 0.7 * (lse - 2.0) + 0.3 * (lse - 0.5))
    np.testing.assert_allclose(grad, torch_grad, rtol=1e-12)  # torch's gradient is right


def test_deviation_full_label_smoothing_on_masked_target():
    """label_smoothing=1 and a -inf target logit: torch adds 0 * NLL = 0 * inf = NaN; the
    target's coefficient is 0, the uniform part gives +inf on the masked class... unless it
    has weight 0: with weight, celib's finite loss."""
    x = np.array([[2.0, -np.inf, 0.5]])
    t = np.array([1])
    w = np.array([1.0, 0.0, 2.0])
    loss, grad = both(x, t, weight=w, label_smoothing=1.0, reduction="sum")
    torch_loss, torch_grad = torch_cross_entropy(
        x, t, weight=w, label_smoothing=1.0, reduction="sum"
    )
    assert np.isnan(torch_loss)
    lse = np.log(np.exp(2.0) + np.exp(0.5))
    assert np.isclose(loss, (1 * (lse - 2.0) + 2 * (lse - 0.5)) / 3)
    np.testing.assert_allclose(grad, torch_grad, rtol=1e-12)
    # without a weight the masked class carries 1/C of the target: +inf, where torch says NaN
    loss, _ = both(x, t, label_smoothing=1.0, reduction="sum")
    assert np.isposinf(loss) and np.isnan(
        torch_cross_entropy(x, t, label_smoothing=1.0, reduction="sum")[0]
    )


def test_deviation_smoothing_with_zero_weight_on_masked_class():
    """Label smoothing, class weight 0 on a -inf logit: torch NaN (0 * inf), celib finite."""
    x = np.array([[2.0, -np.inf, 0.5], [0.0, -np.inf, 1.0]])
    t = np.array([0, 2])
    w = np.array([1.0, 0.0, 2.0])
    loss, grad = both(x, t, weight=w, label_smoothing=0.1)
    torch_loss, torch_grad = torch_cross_entropy(x, t, weight=w, label_smoothing=0.1)
    assert np.isnan(torch_loss) and np.isfinite(loss)
    ref_loss, _ = torch_oracle(x, t, dtype=np.float64, weight=w, label_smoothing=0.1)
    assert np.isclose(loss, ref_loss)
    np.testing.assert_allclose(grad, torch_grad, rtol=1e-12)


def test_deviation_zero_weight_on_masked_target():
    """Class weight 0 on a -inf target logit: torch's NLL is 0 * inf = NaN, celib's 0."""
    x = np.array([[2.0, -np.inf, 0.5], [0.0, 1.0, 1.0]])
    t = np.array([1, 2])
    w = np.array([1.0, 0.0, 2.0])
    loss, _ = both(x, t, weight=w, reduction="none")
    torch_loss, _ = torch_cross_entropy(x, t, weight=w, reduction="none")
    assert np.isnan(torch_loss[0]) and loss[0] == 0
    assert np.isclose(loss[1], torch_loss[1])


@pytest.mark.parametrize(
    "row",
    [[-np.inf, -np.inf, -np.inf], [np.nan, 0.0, 1.0], [np.inf, 0.0, 1.0]],
    ids=["all_masked", "nan", "plus_inf"],
)
def test_deviation_ignored_row_without_softmax(row):
    """An ignored element whose softmax is undefined (all -inf logits: a fully masked padding
    position; a NaN or a +inf logit): torch's gradient is NaN on that row (0 times the NaN
    softmax), celib's exactly 0."""
    x = np.array([[2.0, 0.0, 0.5], row])
    t = np.array([0, -100])
    loss, grad = both(x, t)
    torch_loss, torch_grad = torch_cross_entropy(x, t)
    assert np.isclose(loss, torch_loss)
    assert np.all(np.isnan(torch_grad[1])) and np.all(grad[1] == 0)
    np.testing.assert_allclose(grad[0], torch_grad[0], rtol=1e-12)


def test_deviation_infinite_grad_output():
    """grad_output = inf: torch's log_softmax backward forms g - p * sum(g) with g_y = -inf,
    so the true class gets -inf + inf = NaN; celib gives s (p_y - 1) = -inf, the limit."""
    x, t = np.array([[2.0, 0.0, 0.5], [0.1, 0.2, 0.3]]), np.array([0, 2])
    grad = celib.cross_entropy_grad(x, t, grad_output=np.array(np.inf))
    _, torch_grad = torch_cross_entropy(x, t, grad_output=np.array(np.inf))
    true_class = np.zeros(x.shape, dtype=bool)
    true_class[[0, 1], t] = True
    assert np.all(np.isnan(torch_grad[true_class])) and np.all(np.isposinf(torch_grad[~true_class]))
    assert np.all(np.isneginf(grad[true_class])) and np.all(np.isposinf(grad[~true_class]))


def test_deviation_float16_grad_output_beyond_float16_range():
    """float16 logits, grad_output 1e6 (> 65504): torch casts it to float16 (inf) and gives NaN
    at the true class; celib scales in float64 and rounds once: -inf there, and an entry that
    fits in float16 stays finite."""
    x, t = np.array([[2.0, 0.0, 0.5], [0.1, 0.2, 0.3]], dtype=np.float16), np.array([0, 2])
    xt = torch.from_numpy(x).requires_grad_(True)
    F.cross_entropy(xt, torch.from_numpy(t)).backward(torch.tensor(1e6))
    torch_grad = xt.grad.numpy()
    grad = celib.cross_entropy_grad(x, t, grad_output=np.array(1e6))
    exact = celib.cross_entropy_grad(x.astype(np.float64), t, grad_output=np.array(1e6))
    assert grad.dtype == np.float16
    assert (
        np.isnan(torch_grad[0, 0]) and np.isnan(torch_grad[1, 2]) and np.isposinf(torch_grad[0, 1])
    )
    assert np.isneginf(grad[0, 0]) and np.isneginf(grad[1, 2])
    assert grad[0, 1] == exact[0, 1].astype(np.float16) == np.float16(49824)
    with np.errstate(over="ignore"):
        np.testing.assert_array_equal(grad, exact.astype(np.float16))


def test_deviation_float16_mean_whose_sum_overflows():
    """float16 logits of scale 3000, N = 4000: the mean (~3500) fits in float16, the sum of the
    losses (~1.4e7) does not; torch's float16 mean is inf, celib's the mean rounded once."""
    rng = np.random.default_rng(0)
    x = (3000 * rng.standard_normal((4000, 5))).astype(np.float16)
    t = rng.integers(0, 5, 4000)
    torch_loss, _ = torch_cross_entropy(x, t)
    assert np.isposinf(torch_loss)
    loss = celib.cross_entropy(x, t)
    exact = celib.cross_entropy(x.astype(np.float64), t)
    assert loss.dtype == np.float16 and 3000 < exact < 4000
    assert loss == np.float16(exact)


def test_deviation_huge_weights_with_label_smoothing():
    """Weights 1e308 and label_smoothing 0.2, reduction 'none': the row losses (~0.9e308 and
    ~1.65e308) are finite; torch forms sum_c w_c log p_c before the factor eps / C and gets inf."""
    x, t = np.array([[2.0, 0.0, 0.5, 1.0, -1.0], [0.0, 1.0, 2.0, 3.0, 4.0]]), np.array([0, 3])
    w = np.full(5, 1e308)
    loss, grad = both(x, t, weight=w, label_smoothing=0.2, reduction="none")
    torch_loss, torch_grad = torch_cross_entropy(
        x, t, weight=w, label_smoothing=0.2, reduction="none"
    )
    assert np.all(np.isposinf(torch_loss))
    expected = 1e308 * celib.cross_entropy(x, t, label_smoothing=0.2, reduction="none")
    assert np.all(np.isfinite(loss)) and loss[1] > 1.6e308
    np.testing.assert_allclose(loss, expected, rtol=1e-14)
    np.testing.assert_allclose(grad, torch_grad, rtol=1e-12)  # torch's gradient is right


def test_deviation_weights_that_cancel_in_the_mean():
    """Class weights summing to 0 over the targets: torch divides by 0 (loss +-inf, gradient
    +-inf with NaN at the true classes); the mean is undefined and celib says NaN, as for an
    all-zero weight."""
    x, t = np.array([[2.0, 0.0, 0.5], [0.0, 1.0, 1.0]]), np.array([0, 1])
    w = np.array([1.0, -1.0, 1.0])
    loss, grad = both(x, t, weight=w)
    torch_loss, torch_grad = torch_cross_entropy(x, t, weight=w)
    assert np.isinf(torch_loss)
    assert np.isnan(torch_grad[0, 0]) and np.isnan(torch_grad[1, 1])
    assert np.all(np.isinf(torch_grad[[0, 0, 1, 1], [1, 2, 0, 2]]))
    assert np.isnan(loss) and np.all(np.isnan(grad))
    # the same example through a larger batch (the tester's case)
    x4 = np.random.default_rng(0).standard_normal((4, 5))
    t4, w5 = np.array([0, 1, 0, 1]), np.array([1.0, -1.0, 1.0, 1.0, 1.0])
    torch_loss4, torch_grad4 = torch_cross_entropy(x4, t4, weight=w5)
    assert np.isinf(torch_loss4) and np.isnan(torch_grad4).any() and np.isinf(torch_grad4).any()
    assert np.isnan(celib.cross_entropy(x4, t4, weight=w5))
    assert np.all(np.isnan(celib.cross_entropy_grad(x4, t4, weight=w5)))


def test_deviation_negative_label_smoothing_is_an_error():
    """torch rejects label_smoothing > 1 but silently treats a negative value as 0."""
    torch_loss, _ = torch_cross_entropy(X, Y, label_smoothing=-0.1)
    assert np.isclose(torch_loss, torch_cross_entropy(X, Y)[0])
    with pytest.raises(ValueError, match="-0.1"):
        celib.cross_entropy(X, Y, label_smoothing=-0.1)


# ---------------------------------------------------------------------------
# softmax family, Jacobian, finite differences
# ---------------------------------------------------------------------------


@pytest.mark.parametrize("axis", [0, 1, -1])
def test_softmax_family_axis(axis):
    x = RNG.standard_normal((3, 4, 2))
    xt = torch.from_numpy(x)
    np.testing.assert_allclose(
        celib.softmax(x, axis=axis), torch.softmax(xt, axis).numpy(), rtol=1e-13
    )
    np.testing.assert_allclose(
        celib.log_softmax(x, axis=axis), torch.log_softmax(xt, axis).numpy(), rtol=1e-13
    )
    np.testing.assert_allclose(
        celib.logsumexp(x, axis=axis), torch.logsumexp(xt, axis).numpy(), rtol=1e-13
    )


def test_softmax_family_with_masks():
    x = np.array([[0.0, -np.inf, 1.0], [-np.inf, -np.inf, -np.inf]])
    xt = torch.from_numpy(x)
    assert_agrees(celib.softmax(x), torch.softmax(xt, -1).numpy(), rtol=1e-14, atol=0)
    assert_agrees(celib.log_softmax(x), torch.log_softmax(xt, -1).numpy(), rtol=1e-14, atol=0)
    assert_agrees(celib.logsumexp(x), torch.logsumexp(xt, -1).numpy(), rtol=1e-14, atol=0)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_softmax_jacobian(dtype):
    x = RNG.standard_normal(5).astype(dtype)
    J = celib.softmax_jacobian(x)
    expected = torch.autograd.functional.jacobian(
        lambda z: torch.softmax(z, 0), torch.from_numpy(x.astype(np.float64))
    ).numpy()
    assert J.dtype == dtype and J.shape == (5, 5)
    np.testing.assert_allclose(J, expected, rtol=1e-5 if dtype == np.float32 else 1e-12, atol=1e-7)
    np.testing.assert_allclose(
        np.arange(5.0) @ J,
        celib.numerical_grad(lambda z: celib.softmax(z) @ np.arange(5.0), x.astype(np.float64)),
        rtol=1e-4,
        atol=1e-7,
    )


def test_numerical_grad_of_cross_entropy_float64():
    x = RNG.standard_normal((3, 4, 2))
    t = np.array([[0, 3], [1, -100], [2, 2]])
    options = dict(weight=np.array([1.0, 0.5, 2.0, 0.0]), label_smoothing=0.2)
    numeric = celib.numerical_grad(lambda z: celib.cross_entropy(z, t, **options), x)
    np.testing.assert_allclose(
        celib.cross_entropy_grad(x, t, **options), numeric, rtol=1e-6, atol=1e-9
    )


# ---------------------------------------------------------------------------
# cross_entropy_and_grad: one softmax pass, bit-identical to the two calls
# ---------------------------------------------------------------------------


@pytest.mark.parametrize("reduction", ["mean", "sum", "none"])
@pytest.mark.parametrize("kind", ["indices", "probabilities"])
def test_cross_entropy_and_grad_equals_the_two_calls(reduction, kind):
    rng = np.random.default_rng(7)
    x = rng.normal(size=(6, 5, 3)).astype(np.float32)
    if kind == "indices":
        t = rng.integers(0, 5, size=(6, 3))
        t[0, 0] = -100
    else:
        t = rng.random((6, 5, 3))
    options = dict(weight=rng.random(5), reduction=reduction, label_smoothing=0.1)
    g = rng.normal(size=(6, 3)) if reduction == "none" else 0.5
    loss, grad = celib.cross_entropy_and_grad(x, t, grad_output=g, **options)
    np.testing.assert_array_equal(loss, celib.cross_entropy(x, t, **options))
    np.testing.assert_array_equal(grad, celib.cross_entropy_grad(x, t, grad_output=g, **options))
    assert grad.dtype == np.float32
    # float64 probabilities promote the loss to float64, as in torch
    assert loss.dtype == (np.float32 if kind == "indices" else np.float64)


def test_large_logits_in_parallel_equal_one_thread(monkeypatch):
    """Above _PARALLEL_MIN_ELEMENTS the softmax runs one block of rows per core: every
    value must be bit-identical to the one-thread computation."""
    from celib import reference

    rng = np.random.default_rng(11)
    x = (rng.standard_normal((257, 16411)) * 4).astype(np.float32)  # > 2^22 elements
    x[3, :] = -np.inf  # a row with no softmax
    y = rng.integers(0, 16411, 257)
    y[5] = -100
    assert x.size >= reference._PARALLEL_MIN_ELEMENTS
    parallel = celib.cross_entropy_and_grad(x, y, label_smoothing=0.1)
    monkeypatch.setattr(reference, "_PARALLEL_MIN_ELEMENTS", np.inf)
    serial = celib.cross_entropy_and_grad(x, y, label_smoothing=0.1)
    np.testing.assert_array_equal(parallel[0], serial[0])
    np.testing.assert_array_equal(parallel[1], serial[1])
    np.testing.assert_array_equal(celib.softmax(x), reference.softmax(x))
