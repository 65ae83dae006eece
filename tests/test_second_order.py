"""celib.cross_entropy_hvp against torch's double backward and finite differences.

The random problems are test_reference's (every layout, both target kinds, weights,
ignore_index, label smoothing, each reduction, grad_output, -inf logits); the
oracle is torch's double backward of ``F.cross_entropy``:
``torch.autograd.grad(torch.autograd.grad(J, x, create_graph=True), x, v)`` with
J = sum(grad_output * loss), and the same of ``celib.torch_ops.cross_entropy``.

Tolerances: float64, rtol 1e-10 and atol 1e-12 x magnitude, the magnitude being
(1 + max weight) x |grad_output| / denominator x (1 + max |v|), the size of the terms
s_n A_n p_n v_n that cancel (torch's own p_j (v_j - p . v) loses about 1e-16 of them
in a confident row).
"""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given
from test_reference import (
    EXAMPLES,
    assert_agrees,
    effective_target,
    harmless_logits,
    problems,
)

import celib

torch = pytest.importorskip("torch")
F = torch.nn.functional


def _direction(problem, seed=1):
    x = problem["logits"]
    return np.random.default_rng(seed).standard_normal(x.shape).astype(x.dtype)


def _upstream(problem):
    """grad_output as an array of the loss's shape (ones by default)."""
    x, g, opts = problem["logits"], problem["grad_output"], problem["options"]
    if g is not None:
        return np.asarray(g, np.float64)
    loss_shape = (
        (x.shape[:1] + x.shape[2:] if x.ndim > 1 else ()) if opts["reduction"] == "none" else ()
    )
    return np.ones(loss_shape)


def _double_backward(loss_fn, x, v, g):
    """H v of J = sum(g * loss_fn(x)) with respect to x, by torch's double backward."""
    xt = torch.from_numpy(np.array(x, np.float64)).requires_grad_(True)
    J = (loss_fn(xt) * torch.from_numpy(g)).sum()
    (grad,) = torch.autograd.grad(J, xt, create_graph=True)
    if not grad.requires_grad:  # a gradient that does not depend on x (empty input)
        return np.zeros(x.shape)
    (hv,) = torch.autograd.grad(
        grad, xt, torch.from_numpy(np.array(v, np.float64)), allow_unused=True
    )
    return np.zeros(x.shape) if hv is None else hv.numpy()


def _torch_logits(problem):
    """The logits torch is given: test_reference's exact rewrites of the deliberate deviations.

    A -inf logit with a zero effective target becomes a finite one whose exp still
    underflows to 0 (torch would compute 0 * inf = NaN); an ignored row of all -inf
    becomes zeros (it gets no loss either way).
    """
    x, t, opts = problem["logits"], np.asarray(problem["target"]), problem["options"]
    a = effective_target(x, t, opts["weight"], opts["ignore_index"], opts["label_smoothing"])
    x = harmless_logits(x, a)
    if t.shape != x.shape and x.size:
        axis = 0 if x.ndim == 1 else 1
        dead = np.expand_dims((t == opts["ignore_index"]) & np.all(np.isneginf(x), axis=axis), axis)
        x = np.where(dead, 0.0, x).astype(x.dtype)
    return x


def torch_hvp(problem, v):
    """The oracle: double backward of torch.nn.functional.cross_entropy, float64."""
    x, t, opts = _torch_logits(problem), np.asarray(problem["target"]), problem["options"]
    w = None if opts["weight"] is None else torch.from_numpy(np.array(opts["weight"], np.float64))
    eps, ignore_index, reduction = opts["label_smoothing"], opts["ignore_index"], opts["reduction"]
    axis = 0 if x.ndim == 1 else 1
    if t.shape == x.shape:
        tt = torch.from_numpy(t.astype(np.float64))
    else:
        tt = torch.from_numpy(t.astype(np.int64))

    def loss_fn(xt):
        if t.shape == x.shape or eps != 1.0:
            return F.cross_entropy(
                xt,
                tt,
                weight=w,
                ignore_index=ignore_index,
                reduction=reduction,
                label_smoothing=eps,
            )
        # label_smoothing = 1 with class indices: torch adds 0 * NLL, NaN at a -inf target
        # logit; the smoothing term alone, from torch's probability path, masked and reduced
        # with the class-index denominators (as test_reference's torch_oracle)
        per = F.cross_entropy(
            xt, torch.zeros_like(xt), weight=w, reduction="none", label_smoothing=1.0
        )
        keep = torch.from_numpy(np.asarray(t != ignore_index))
        per = per.masked_fill(~keep, 0.0)
        if reduction == "none":
            return per
        if reduction == "sum":
            return per.sum()
        w_all = torch.ones(x.shape[axis], dtype=torch.float64) if w is None else w
        y = torch.from_numpy(np.where(t != ignore_index, t, 0).astype(np.int64))
        denominator = w_all[y][keep].sum()
        return per.sum() / denominator if denominator != 0 else per.sum() * np.nan

    return _double_backward(loss_fn, x, v, _upstream(problem))


def torch_ops_hvp(problem, v):
    """Double backward of celib.torch_ops.cross_entropy (torch backend), float64."""
    from celib.torch_ops import cross_entropy

    x, t, opts = problem["logits"], np.asarray(problem["target"]), problem["options"]
    if t.shape != x.shape and x.size:  # an ignored row of all -inf: no loss either way
        axis = 0 if x.ndim == 1 else 1
        dead = np.expand_dims((t == opts["ignore_index"]) & np.all(np.isneginf(x), axis=axis), axis)
        x = np.where(dead, 0.0, x)
    w = None if opts["weight"] is None else torch.from_numpy(np.array(opts["weight"], np.float64))
    tt = torch.from_numpy(t.astype(np.float64 if t.shape == x.shape else np.int64))
    options = dict(opts, weight=w)
    return _double_backward(
        lambda xt: cross_entropy(xt, tt, backend="torch", **options), x, v, _upstream(problem)
    )


def magnitude(problem, v, expected):
    x, opts = problem["logits"], problem["options"]
    w = opts["weight"]
    wmax = 0.0 if w is None else float(np.max(w))
    g = _upstream(problem)
    gmax = float(np.max(np.abs(g), initial=0.0))
    denominator = 1.0
    if opts["reduction"] == "mean":
        t = problem["target"]
        a = effective_target(x, t, w, opts["ignore_index"], 0.0)
        denominator = a.sum() if np.shape(t) != x.shape else a.size / max(1, a.shape[a.ndim > 1])
        denominator = denominator or 1.0
    finite = np.abs(expected[np.isfinite(expected)])
    vmax = float(np.max(np.abs(v), initial=0.0))
    return max(float(np.max(finite, initial=0.0)), (1 + wmax) * gmax / denominator * (1 + vmax))


def _hvp(problem, v):
    x, t, g, opts = problem["logits"], problem["target"], problem["grad_output"], problem["options"]
    return celib.cross_entropy_hvp(x, t, v, grad_output=g, **opts)


# ---------------------------------------------------------------------------
# agreement with torch's double backward, over the whole option space
# ---------------------------------------------------------------------------


@EXAMPLES
@given(problems(np.float64))
def test_agrees_with_torch_double_backward(problem):
    v = _direction(problem)
    hv = _hvp(problem, v)
    assert hv.shape == problem["logits"].shape and hv.dtype == np.float64
    expected = torch_hvp(problem, v)
    assert_agrees(
        hv,
        expected,
        rtol=1e-10,
        atol=1e-12 * magnitude(problem, v, expected),
        what="H v vs torch's double backward",
    )


@EXAMPLES
@given(problems(np.float64))
def test_agrees_with_torch_ops_double_backward(problem):
    v = _direction(problem)
    hv = _hvp(problem, v)
    expected = torch_ops_hvp(problem, v)
    assert_agrees(
        hv,
        expected,
        rtol=1e-10,
        atol=1e-12 * magnitude(problem, v, expected),
        what="H v vs celib.torch_ops.cross_entropy's double backward",
    )


@EXAMPLES
@given(problems(np.float32, scales=(1.0, 10.0)))
def test_float32_close_to_float64(problem):
    v = _direction(problem)
    hv = _hvp(problem, v)
    assert hv.dtype == np.float32
    p64 = dict(problem, logits=problem["logits"].astype(np.float64))
    expected = _hvp(p64, v.astype(np.float64))
    assert_agrees(
        hv,
        expected,
        rtol=1e-4,
        atol=1e-5 * magnitude(problem, v, expected),
        what="float32 vs float64",
    )


# ---------------------------------------------------------------------------
# finite differences of cross_entropy_grad along v
# ---------------------------------------------------------------------------


@EXAMPLES
@given(problems(np.float64, scales=(1.0, 3.0), allow_masked=False, max_dim=3))
def test_agrees_with_finite_differences_of_the_gradient(problem):
    x, t, g, opts = problem["logits"], problem["target"], problem["grad_output"], problem["options"]
    v = _direction(problem)
    hv = _hvp(problem, v)
    if np.isnan(celib.cross_entropy(x, t, **opts)).any():  # 'mean' over a total weight of 0
        assert np.all(np.isnan(hv) | (hv == 0))
        return
    h = 1e-5

    def grad(z):
        return celib.cross_entropy_grad(z, t, grad_output=g, **opts)

    numeric = (grad(x + h * v) - grad(x - h * v)) / (2 * h)
    scale = magnitude(problem, v, hv)
    np.testing.assert_allclose(hv, numeric, rtol=1e-6, atol=1e-8 * scale)


# ---------------------------------------------------------------------------
# the formula, edge cases and accuracy
# ---------------------------------------------------------------------------

RNG = np.random.default_rng(0)
X = RNG.standard_normal((4, 5))
Y = np.array([0, 4, 2, 1])
V = RNG.standard_normal((4, 5))
W = np.array([0.5, 2.0, 0.0, 1.0, 3.0])


def test_is_the_softmax_jacobian_times_v_for_one_row():
    hv = celib.cross_entropy_hvp(X[0], np.array(3), V[0])
    np.testing.assert_allclose(hv, celib.softmax_jacobian(X[0]) @ V[0], rtol=1e-13, atol=1e-16)


def test_all_ones_direction_gives_zero():
    hv = celib.cross_entropy_hvp(X, Y, np.ones_like(X), weight=W, label_smoothing=0.1)
    assert np.all(np.abs(hv) < 1e-16)


def test_ignored_rows_are_exactly_zero_and_nan_direction_stays_there():
    t = np.array([-100, 1, -100, 3])
    v = V.copy()
    v[0] = np.nan
    hv = celib.cross_entropy_hvp(X, t, v)
    assert np.all(hv[[0, 2]] == 0) and np.all(np.isfinite(hv))


def test_rows_without_softmax_are_nan():
    x = X.copy()
    x[1] = -np.inf
    x[2, 0] = np.inf
    x[3, 1] = np.nan
    hv = celib.cross_entropy_hvp(x, Y, V, reduction="sum")
    assert np.all(np.isnan(hv[1:])) and np.all(np.isfinite(hv[0]))


def test_masked_class_gets_zero():
    x = X.copy()
    x[:, 2] = -np.inf
    hv = celib.cross_entropy_hvp(x, Y, V, label_smoothing=0.0)
    assert np.all(hv[:, 2] == 0) and np.all(np.isfinite(hv))


def test_mean_of_nothing_is_nan():
    hv = celib.cross_entropy_hvp(X, np.full(4, -100), V)
    assert np.all(hv == 0)  # every row ignored: exactly zero
    hv = celib.cross_entropy_hvp(X, np.array([2, 2, 2, 2]), V, weight=W)
    assert np.all(np.isnan(hv))  # kept targets of total weight 0: NaN, as the loss


@pytest.mark.parametrize("shape", [(0, 5), (0, 5, 3), (2, 5, 0), (2, 0), (3, 0, 2)])
def test_empty_shapes(shape):
    x = np.zeros(shape)
    t = np.full(shape[:1] + shape[2:], 0 if shape[1] else -100, np.int64)  # C = 0: ignored
    for target in (t, np.zeros(shape)):
        for reduction in ("none", "mean", "sum"):
            hv = celib.cross_entropy_hvp(x, target, np.zeros(shape), reduction=reduction)
            assert hv.shape == shape


def test_confident_rows_keep_relative_accuracy():
    """p_y = 1 - 2e-40 (rounds to 1): the entry at y is -p_y sum_c p_c (v_c - v_y), ~1e-40."""
    x = np.array([[100.0, 10.0, 10.0]])
    v = np.array([[0.0, 1.0, 3.0]])
    hv = celib.cross_entropy_hvp(x, np.array([0]), v, reduction="sum")
    p = np.exp(x[0] - 100.0)
    p /= p.sum()
    expected_y = -p[0] * (p[1] * 1.0 + p[2] * 3.0)
    np.testing.assert_allclose(hv[0, 0], expected_y, rtol=1e-14)
    assert hv[0, 0] != 0


@pytest.mark.parametrize(
    "dtype,weight,grad_output",
    [
        (np.float64, 1.5e308, 2.0),  # s_n A_n = 3e308 overflows float64
        (np.float32, 1e30, 1e12),  # s_n A_n = 1e42 overflows float32, |Hv| about 1e35
    ],
)
def test_product_representable_although_scale_times_mass_overflows(dtype, weight, grad_output):
    """H v is linear in the class weights: with weights w / 1e10 and the result times 1e10
    nothing overflows; s_n A_n itself is beyond the dtype's range (torch gives NaN here)."""
    v = V * (1e-6 if dtype == np.float32 else 1.0)
    kw = {"reduction": "sum", "label_smoothing": 0.2, "grad_output": grad_output}
    hv = celib.cross_entropy_hvp(
        X.astype(dtype), Y, v.astype(dtype), weight=np.full(5, weight, dtype), **kw
    )
    expected = celib.cross_entropy_hvp(X, Y, v, weight=np.full(5, weight / 1e10), **kw) * 1e10
    assert hv.dtype == dtype and np.all(np.isfinite(hv))
    np.testing.assert_allclose(hv, expected, rtol=1e-12 if dtype == np.float64 else 1e-5)


def test_float16_input_returns_float16():
    hv = celib.cross_entropy_hvp(X.astype(np.float16), Y, V.astype(np.float16))
    assert hv.dtype == np.float16
    np.testing.assert_allclose(hv, celib.cross_entropy_hvp(X, Y, V), rtol=1e-2, atol=1e-3)


# ---------------------------------------------------------------------------
# errors and the caller's arrays
# ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    "bad",
    [
        dict(logits=X.astype(np.int64)),
        dict(target=Y.astype(np.float64)),
        dict(target=np.array([0, 9, 1, 2])),
        dict(target=Y[:3]),
        dict(weight=W[:3]),
        dict(reduction="average"),
        dict(label_smoothing=1.5),
        dict(ignore_index=1.0),
        dict(target=np.abs(V), ignore_index=0),
        dict(grad_output=np.ones(4)),
        dict(reduction="none", grad_output=np.ones(3)),
    ],
)
def test_same_errors_as_the_gradient(bad):
    kwargs = dict(
        logits=X,
        target=Y,
        weight=None,
        ignore_index=-100,
        reduction="mean",
        label_smoothing=0.0,
        grad_output=None,
    )
    kwargs.update(bad)
    with pytest.raises(Exception) as expected:
        celib.cross_entropy_grad(**kwargs)
    logits, target = kwargs.pop("logits"), kwargs.pop("target")
    with pytest.raises(type(expected.value)) as raised:
        celib.cross_entropy_hvp(logits, target, V, **kwargs)
    assert str(raised.value) == str(expected.value)


def test_direction_of_the_wrong_shape():
    with pytest.raises(
        ValueError,
        match=r"v of shape \(5, 4\) does not match logits of shape "
        r"\(4, 5\)",
    ):
        celib.cross_entropy_hvp(X, Y, V.T)


def test_direction_must_be_float():
    with pytest.raises(TypeError, match="v must hold floating-point"):
        celib.cross_entropy_hvp(X, Y, np.ones((4, 5), np.int64))


def test_inputs_not_modified():
    arrays = dict(
        logits=np.array(X),
        target=np.array(Y),
        v=np.array(V),
        weight=np.array(W),
        grad_output=np.array(2.0),
    )
    before = {k: a.copy() for k, a in arrays.items()}
    celib.cross_entropy_hvp(
        arrays["logits"],
        arrays["target"],
        arrays["v"],
        weight=arrays["weight"],
        grad_output=arrays["grad_output"],
        label_smoothing=0.2,
    )
    q = celib.softmax(X)
    q_before = q.copy()
    xk = RNG.standard_normal((2, 5, 3))
    xk_before, vk = xk.copy(), RNG.standard_normal((2, 5, 3))
    vk_before = vk.copy()
    celib.cross_entropy_hvp(X, q, V, reduction="sum")
    celib.cross_entropy_hvp(xk, np.zeros((2, 3), np.int64), vk)
    for k, a in arrays.items():
        np.testing.assert_array_equal(a, before[k])
    np.testing.assert_array_equal(q, q_before)
    np.testing.assert_array_equal(xk, xk_before)
    np.testing.assert_array_equal(vk, vk_before)


def _torch_double_backward_cross_entropy(x, t, v, grad_output=None, **options):
    """H v by torch's double backward of F.cross_entropy, float64, as the deviations page."""
    xt = torch.tensor(x, requires_grad=True)
    if options.get("weight") is not None:
        options["weight"] = torch.tensor(options["weight"])
    loss = F.cross_entropy(xt, torch.tensor(t), **options)
    g = torch.ones_like(loss) if grad_output is None else torch.tensor(grad_output)
    (grad,) = torch.autograd.grad(loss, xt, g, create_graph=True)
    (hv,) = torch.autograd.grad(grad, xt, torch.tensor(v))
    return hv.numpy()


@pytest.mark.parametrize("entry", [np.nan, np.inf, -np.inf], ids=["nan", "plus_inf", "minus_inf"])
def test_deviation_hvp_ignored_row_with_non_finite_direction(entry):
    """An ignored row whose direction v holds NaN or an infinity: torch's double backward
    gives NaN on that row (0 times the non-finite v), celib exactly 0 (deviation 15, the
    second-order counterpart of test_deviation_ignored_row_without_softmax)."""
    x, t = np.array([[2.0, 0.0, 0.5], [0.1, 0.2, 0.3]]), np.array([0, -100])
    v = np.array([[1.0, -1.0, 0.5], [entry, 0.0, 1.0]])
    hv = celib.cross_entropy_hvp(x, t, v)
    torch_hv = _torch_double_backward_cross_entropy(x, t, v)
    assert np.all(np.isnan(torch_hv[1])) and np.all(hv[1] == 0)
    np.testing.assert_allclose(hv[0], torch_hv[0], rtol=1e-12)


@pytest.mark.parametrize("case", ["grad_output", "weight"])
def test_deviation_hvp_infinite_grad_output_or_weight(case):
    """An infinite grad_output ('none') or an infinite weight on a target class: torch's
    double backward gives NaN on the whole row (inf - inf), celib s A h = +-inf with the
    sign of the finite h = p * (v - p . v) (deviation 16, as test_deviation_infinite_grad_output)."""
    x, t = np.array([[2.0, 0.0, 0.5], [0.1, 0.2, 0.3]]), np.array([0, 2])
    v = np.array([[1.0, -1.0, 0.5], [0.5, 1.0, -2.0]])
    if case == "grad_output":
        options = dict(grad_output=np.array([np.inf, 1.0]), reduction="none")
    else:
        options = dict(weight=np.array([np.inf, 1.0, 1.0]), reduction="none")
    hv = celib.cross_entropy_hvp(x, t, v, **options)
    torch_hv = _torch_double_backward_cross_entropy(x, t, v, **options)
    finite = celib.cross_entropy_hvp(x, t, v, reduction="none")  # the same h, s A = 1
    assert np.all(np.isnan(torch_hv[0]))
    assert np.all(np.isinf(hv[0])) and np.array_equal(np.sign(hv[0]), np.sign(finite[0]))
    assert np.array_equal(np.sign(hv[0]), [1.0, -1.0, -1.0])
    np.testing.assert_allclose(hv[1], torch_hv[1], rtol=1e-12)


def test_ignored_elements_of_a_mean_of_nothing_get_exactly_zero_in_both_double_backwards():
    # 'mean' whose denominator is 0 (the only kept row has weight 0): the scale s is NaN,
    # and an ignored element must still get exactly 0, in celib and in torch_ops' double
    # backward (once 0 * NaN through torch.where's masked branch)
    x = np.array([[1.0, 2.0, 0.5], [0.3, -1.0, 2.0]])
    t = np.array([0, -100])
    v = np.array([[1.0, -2.0, 0.5], [0.7, 0.2, -1.5]])
    opts = dict(weight=np.array([0.0, 1.0, 1.0]), ignore_index=-100, reduction="mean")
    problem = {
        "logits": x,
        "target": t,
        "grad_output": None,
        "options": dict(opts, label_smoothing=0.0),
    }
    hv = celib.cross_entropy_hvp(x, t, v, **opts)
    expected = torch_ops_hvp(problem, v)
    assert np.all(hv[1] == 0) and np.all(expected[1] == 0)
    assert np.all(np.isnan(hv[0])) and np.all(np.isnan(expected[0]))
