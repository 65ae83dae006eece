"""Adversarial regressions for celib.torch_ops (torch backend and linear_cross_entropy).

Each test pins a bug found by probing celib against torch 2.13 and the NumPy reference.
"""

import math

import numpy as np
import pytest

torch = pytest.importorskip("torch", reason="celib.torch_ops needs torch")
F = torch.nn.functional

from celib import reference  # noqa: E402
from celib.torch_ops import cross_entropy, linear_cross_entropy  # noqa: E402


def _ce(*args, **kwargs):
    return cross_entropy(*args, backend="torch", **kwargs)


def test_uint8_target_is_class_indices_not_a_mask():
    # torch accepts Byte targets; celib indexed with them as a boolean mask and crashed
    x = torch.randn(4, 5, generator=torch.Generator().manual_seed(0))
    y = torch.tensor([0, 4, 2, 3])
    w = torch.rand(5, generator=torch.Generator().manual_seed(1))
    for kwargs in ({}, dict(weight=w), dict(weight=w, label_smoothing=0.2, reduction="none")):
        expected = F.cross_entropy(x, y.to(torch.uint8), **kwargs)
        torch.testing.assert_close(_ce(x, y.to(torch.uint8), **kwargs), expected)
        torch.testing.assert_close(_ce(x, y.to(torch.int32), **kwargs), expected)


def test_positive_inf_logit_on_another_class_gives_nan_loss_and_gradient():
    # torch and the reference: no softmax, so NaN loss and NaN gradient; celib gave +inf
    x = torch.tensor([[math.inf, 0.0, 0.0], [0.0, 1.0, 2.0]], dtype=torch.float64)
    y = torch.tensor([1, 2])
    ref = reference.cross_entropy(x.numpy(), y.numpy(), reduction="none")
    ref_grad = reference.cross_entropy_grad(
        x.numpy(), y.numpy(), reduction="none", grad_output=np.ones(2)
    )
    xg = x.clone().requires_grad_()
    loss = _ce(xg, y, reduction="none")
    loss.sum().backward()
    np.testing.assert_array_equal(np.isnan(loss.detach().numpy()), np.isnan(ref))
    np.testing.assert_allclose(loss.detach().numpy(), ref)
    np.testing.assert_allclose(xg.grad.numpy(), ref_grad)
    torch.testing.assert_close(loss, F.cross_entropy(x, y, reduction="none"), equal_nan=True)
    # and from an overflowing matmul in linear_cross_entropy
    inp, W = torch.ones(2, 1), torch.tensor([[1e38], [0.0]]) * torch.tensor([[10.0], [1.0]])
    t = torch.tensor([1, 1])
    assert torch.isnan(linear_cross_entropy(inp, W, t, reduction="none")).all()
    assert torch.isnan(F.linear_cross_entropy(inp, W, t, reduction="none")).all()


@pytest.mark.parametrize("reduction,expected", [("mean", math.nan), ("sum", 0.0), ("none", 0.0)])
def test_no_classes(reduction, expected):
    # C = 0: all-ignored class indices crashed with an IndexError; probabilities gave a
    # 'mean' of 0 instead of torch's and the reference's NaN
    x = torch.zeros(3, 0, dtype=torch.float64, requires_grad=True)
    for target in (torch.full((3,), -100), torch.zeros(3, 0, dtype=torch.float64)):
        loss = _ce(x, target, reduction=reduction)
        ref = F.cross_entropy(x, target, reduction=reduction)
        torch.testing.assert_close(loss, ref.abs(), equal_nan=True)  # torch: -0.0 for probs
        # with smoothing (eps / C undefined: the reference's spread is 0; torch gives NaN)
        loss = _ce(x, target, reduction=reduction, label_smoothing=0.1)
        assert torch.isnan(loss).all() if math.isnan(expected) else (loss == 0).all()
        (g,) = torch.autograd.grad(loss.sum(), x)
        assert g.shape == (3, 0)


def _hvp(fn, x, y):
    loss = fn(x, y)
    (g,) = torch.autograd.grad(loss, x, create_graph=True)
    (h,) = torch.autograd.grad((g**2).sum() + x.sum(), x)
    return h


@pytest.mark.parametrize(
    "kwargs",
    [
        {},
        dict(label_smoothing=0.3, reduction="sum"),
        dict(weight=torch.tensor([1.0, 0.5, 2.0, 0.0], dtype=torch.float64), reduction="none"),
    ],
)
def test_double_backward_matches_torch(kwargs):
    # create_graph=True silently gave a gradient without a graph (second-order terms 0)
    gen = torch.Generator().manual_seed(3)
    x = torch.randn(3, 4, dtype=torch.float64, generator=gen, requires_grad=True)
    y = torch.tensor([0, -100, 2])
    red = kwargs.get("reduction", "mean")
    fold = (lambda v: v.sum()) if red == "none" else (lambda v: v)
    torch.testing.assert_close(
        _hvp(lambda a, b: fold(_ce(a, b, **kwargs)), x, y),
        _hvp(lambda a, b: fold(F.cross_entropy(a, b, **kwargs)), x, y),
    )


@pytest.mark.parametrize("kind", ["indices", "probabilities"])
def test_gradgradcheck_float64(kind):
    gen = torch.Generator().manual_seed(4)
    x = torch.randn(3, 4, 2, dtype=torch.float64, generator=gen, requires_grad=True)
    w = torch.rand(4, dtype=torch.float64, generator=gen) + 0.5
    if kind == "indices":
        y = torch.tensor([[0, 3], [-100, 1], [2, 2]])
        fn = lambda a: _ce(a, y, weight=w, label_smoothing=0.2, reduction="none")  # noqa: E731
        inputs = (x,)
    else:
        q = torch.rand(3, 4, 2, dtype=torch.float64, generator=gen, requires_grad=True)
        fn = lambda a, b: _ce(a, b, weight=w, label_smoothing=0.2)  # noqa: E731
        inputs = (x, q)
    assert torch.autograd.gradgradcheck(fn, inputs)


@pytest.mark.parametrize("modify", ["target", "weight"])
def test_in_place_change_between_forward_and_backward_is_refused(modify):
    # celib read the caller's probability target (and weight) again in backward without
    # saving them: a change in place gave a silently wrong gradient; torch raises
    x = torch.randn(3, 4, requires_grad=True)
    q = torch.softmax(torch.randn(3, 4), dim=1)
    w = torch.rand(4)
    loss = _ce(x, q, weight=w, label_smoothing=0.1)
    (q if modify == "target" else w).mul_(0.5)
    with pytest.raises(RuntimeError, match="modified by an inplace operation"):
        loss.backward()


def test_weight_that_requires_grad_is_refused():
    # torch raises; celib silently returned no gradient for it
    x, y = torch.randn(3, 4, requires_grad=True), torch.tensor([0, 1, 2])
    w = torch.rand(4, requires_grad=True)
    with pytest.raises(RuntimeError, match="weight"):
        F.cross_entropy(x, y, weight=w)
    with pytest.raises(RuntimeError, match="weight requires grad"):
        _ce(x, y, weight=w)
    with pytest.raises(RuntimeError, match="weight requires grad"):
        linear_cross_entropy(torch.randn(3, 2), torch.randn(4, 2), y, weight=w)
    with torch.no_grad():  # no graph, nothing to refuse
        torch.testing.assert_close(_ce(x, y, weight=w), F.cross_entropy(x, y, weight=w))


@pytest.mark.parametrize("chunk_size", [2.5, "3", True, 1.0])
def test_linear_chunk_size_must_be_an_integer(chunk_size):
    x, W, y = torch.randn(5, 3), torch.randn(4, 3), torch.tensor([0, 1, 2, 3, 0])
    with pytest.raises(TypeError, match="chunk_size"):
        linear_cross_entropy(x, W, y, chunk_size=chunk_size)
    torch.testing.assert_close(
        linear_cross_entropy(x, W, y, chunk_size=np.int64(2)), F.linear_cross_entropy(x, W, y)
    )


@pytest.mark.parametrize("name", ["linear_weight", "linear_bias", "weight"])
def test_linear_tensors_on_another_device_are_named(name):
    # linear_weight on another device gave a number (meta), the others torch's message
    x, W, y = torch.randn(5, 3), torch.randn(4, 3), torch.tensor([0, 1, 2, 3, 0])
    kwargs = dict(linear_weight=W, linear_bias=torch.zeros(4), weight=torch.ones(4))
    kwargs[name] = kwargs[name].to("meta")
    W = kwargs.pop("linear_weight")
    with pytest.raises(ValueError, match=f"{name} is on meta but input on cpu"):
        linear_cross_entropy(x, W, y, **kwargs)


def test_linear_create_graph_is_refused_not_silent():
    x = torch.randn(5, 3, dtype=torch.float64, requires_grad=True)
    W = torch.randn(4, 3, dtype=torch.float64)
    loss = linear_cross_entropy(x, W, torch.tensor([0, 1, 2, 3, 0]))
    with pytest.raises(RuntimeError, match="not twice differentiable"):
        torch.autograd.grad(loss, x, create_graph=True)


# ---------------------------------------------------------------------------
# issue 11: wrong numbers found by a second adversarial comparison with torch 2.13
# ---------------------------------------------------------------------------


@pytest.mark.parametrize("reduction", ["none", "mean", "sum"])
def test_uint8_targets_of_100_and_above(reduction):
    # celib compared uint8 targets with ignore_index -100 in uint8 arithmetic (-100 -> 156):
    # a target 156 was ignored and targets >= 100 were reported out of range
    gen = torch.Generator().manual_seed(11)
    x = torch.randn(4, 200, dtype=torch.float64, generator=gen, requires_grad=True)
    y = torch.tensor([156, 100, 3, 199], dtype=torch.uint8)
    loss = _ce(x, y, reduction=reduction)
    expected = F.cross_entropy(x, y, reduction=reduction)
    torch.testing.assert_close(loss, expected)
    g = torch.ones_like(loss)
    torch.testing.assert_close(
        torch.autograd.grad(loss, x, g)[0], torch.autograd.grad(expected, x, g)[0]
    )
    W = torch.randn(200, 3, dtype=torch.float64, generator=gen)
    h = torch.randn(4, 3, dtype=torch.float64, generator=gen)
    torch.testing.assert_close(
        linear_cross_entropy(h, W, y, reduction=reduction),
        F.cross_entropy(h @ W.T, y, reduction=reduction),
    )


@pytest.mark.parametrize("bad", [math.nan, math.inf])
@pytest.mark.parametrize("case", ["weight0", "zero_probabilities"])
def test_row_without_softmax_and_zero_effective_target_is_nan(bad, case):
    # the row has no softmax; its target carries no mass. torch and the reference: NaN
    x = torch.tensor([[bad, 0.0, 1.0], [0.5, 0.0, 1.0]], dtype=torch.float64)
    if case == "weight0":
        target, kw = (
            torch.tensor([1, 2]),
            dict(weight=torch.tensor([1.0, 0.0, 1.0], dtype=torch.float64)),
        )
    else:
        target, kw = torch.tensor([[0.0, 0.0, 0.0], [0.2, 0.3, 0.5]], dtype=torch.float64), {}
    xg = x.clone().requires_grad_()
    loss = _ce(xg, target, reduction="none", **kw)
    expected = F.cross_entropy(x, target, reduction="none", **kw)
    ref = reference.cross_entropy(
        x.numpy(), target.numpy(), reduction="none", **{k: v.numpy() for k, v in kw.items()}
    )
    assert math.isnan(expected[0]) and math.isnan(ref[0])
    torch.testing.assert_close(loss.detach(), torch.from_numpy(ref), equal_nan=True)
    loss.sum().backward()
    ref_grad = reference.cross_entropy_grad(
        x.numpy(),
        target.numpy(),
        reduction="none",
        grad_output=np.ones(2),
        **{k: v.numpy() for k, v in kw.items()},
    )
    torch.testing.assert_close(xg.grad, torch.from_numpy(ref_grad), equal_nan=True)


@pytest.mark.parametrize("bad", [math.nan, math.inf, -math.inf])
def test_one_class_with_a_non_finite_logit_gives_nan_gradient(bad):
    # C = 1: the true-class gradient was an empty sum over the other classes, 0
    x = torch.tensor([[bad], [2.0]], dtype=torch.float64, requires_grad=True)
    y = torch.tensor([0, 0])
    loss = _ce(x, y, reduction="sum")
    (g,) = torch.autograd.grad(loss, x)
    xt = x.detach().clone().requires_grad_()
    (gt,) = torch.autograd.grad(F.cross_entropy(xt, y, reduction="sum"), xt)
    ref = reference.cross_entropy_grad(x.detach().numpy(), y.numpy(), reduction="sum")
    assert torch.isnan(gt[0, 0]) and np.isnan(ref[0, 0])
    torch.testing.assert_close(g, torch.from_numpy(ref), equal_nan=True)
    torch.testing.assert_close(
        loss, F.cross_entropy(x.detach(), y, reduction="sum"), equal_nan=True
    )


@pytest.mark.parametrize("offset", [1e4, 1e5])
def test_label_smoothing_with_a_large_common_offset_keeps_float32_precision(offset):
    # the smoothing term was C * lse - sum(x): cancellation at a large common offset
    gen = torch.Generator().manual_seed(5)
    x32 = (torch.randn(64, 50, dtype=torch.float64, generator=gen) + offset).float()
    y = torch.randint(0, 50, (64,), generator=gen)
    truth = F.cross_entropy(x32.double(), y, label_smoothing=0.1, reduction="none")
    for got in (
        _ce(x32, y, label_smoothing=0.1, reduction="none"),
        linear_cross_entropy(x32, torch.eye(50), y, label_smoothing=0.1, reduction="none"),
    ):
        err = ((got.double() - truth).abs() / truth.abs()).max().item()
        theirs = F.cross_entropy(x32, y, label_smoothing=0.1, reduction="none").double()
        err_torch = ((theirs - truth).abs() / truth.abs()).max().item()
        assert err <= max(4 * err_torch, 1e-6), (err, err_torch)


@pytest.mark.parametrize("reduction", ["mean", "sum", "none"])
def test_loss_dtype_follows_torch_promotion_with_wider_probabilities(reduction):
    # float32 logits with float64 probabilities: torch returns float64, celib gave float32
    gen = torch.Generator().manual_seed(6)
    for xdt, qdt in (
        (torch.float32, torch.float64),
        (torch.float16, torch.float32),
        (torch.float32, torch.float16),
    ):
        x = torch.randn(5, 4, generator=gen).to(xdt).requires_grad_()
        q = torch.softmax(torch.randn(5, 4, generator=gen), 1).to(qdt)
        loss = _ce(x, q, reduction=reduction)
        expected = F.cross_entropy(x, q, reduction=reduction)
        assert loss.dtype == expected.dtype, (xdt, qdt)
        torch.testing.assert_close(loss, expected, rtol=2e-3, atol=2e-3)
        (g,) = torch.autograd.grad(loss.sum(), x)
        assert g.dtype == xdt
        ref = reference.cross_entropy(x.detach().numpy(), q.numpy(), reduction=reduction)
        assert ref.dtype == torch.empty((), dtype=expected.dtype).numpy().dtype


def test_ignore_index_beyond_int64_is_refused_as_torch():
    x, y = torch.randn(3, 4), torch.tensor([0, 1, 2])
    with pytest.raises((ValueError, RuntimeError, OverflowError)):
        F.cross_entropy(x, y, ignore_index=2**63)
    for fn in (_ce, lambda *a, **k: reference.cross_entropy(x.numpy(), y.numpy(), **k)):
        with pytest.raises(ValueError, match="ignore_index"):
            fn(x, y, ignore_index=2**63)
        with pytest.raises(ValueError, match="ignore_index"):
            fn(x, y, ignore_index=-(2**63) - 1)


@pytest.mark.parametrize("reduction", ["mean", "sum", "none"])
def test_one_dimensional_logits_with_a_target_of_shape_one(reduction):
    # torch's forward accepts (C,) logits with a (1,) target (one element); celib raised.
    # (torch's backward then fails with "size mismatch": the gradient is compared with
    # the one of a 0-d target)
    x = torch.tensor([0.5, 2.0, -1.0], dtype=torch.float64, requires_grad=True)
    y = torch.tensor([1])
    loss = _ce(x, y, reduction=reduction)
    expected = F.cross_entropy(x.detach(), y, reduction=reduction)
    torch.testing.assert_close(loss, expected)
    one = F.cross_entropy(x, y[0], reduction=reduction)
    torch.testing.assert_close(torch.autograd.grad(loss, x)[0], torch.autograd.grad(one, x)[0])
    ref = reference.cross_entropy(x.detach().numpy(), y.numpy(), reduction=reduction)
    np.testing.assert_allclose(ref, expected.numpy())
    assert ref.shape == tuple(expected.shape)
    W = torch.eye(3, dtype=torch.float64)
    torch.testing.assert_close(
        linear_cross_entropy(x.detach(), W, y, reduction=reduction), expected
    )


@pytest.mark.parametrize("reduction", ["mean", "sum"])
def test_linear_weight_changed_in_place_before_backward_is_refused(reduction):
    # the gradients were computed in the forward: a change of W in place gave old gradients
    x = torch.randn(5, 3, requires_grad=True)
    W = torch.randn(4, 3, requires_grad=True)
    y = torch.tensor([0, 1, 2, 3, 0])
    loss = linear_cross_entropy(x, W, y, reduction=reduction)
    with torch.no_grad():
        W.mul_(2.0)
    with pytest.raises(RuntimeError, match="modified by an inplace operation"):
        loss.backward()


# ---------------------------------------------------------------------------
# torch.func: grad, jacrev, jacfwd, jvp, vmap and forward-mode AD, against F.cross_entropy
# ---------------------------------------------------------------------------


def _func_problem():
    gen = torch.Generator().manual_seed(12)
    x = torch.randn(4, 5, dtype=torch.float64, generator=gen)
    y = torch.tensor([0, 4, -100, 2])
    q = torch.softmax(torch.randn(4, 5, dtype=torch.float64, generator=gen), 1)
    w = torch.rand(5, dtype=torch.float64, generator=gen) + 0.5
    return x, y, q, w


@pytest.mark.parametrize("kind", ["indices", "probabilities"])
@pytest.mark.parametrize("reduction", ["mean", "none"])
def test_torch_func_transforms_match_torch(kind, reduction):
    x, y, q, w = _func_problem()
    t = y if kind == "indices" else q
    kw = dict(weight=w, label_smoothing=0.1, reduction=reduction)

    def ours(a):
        return _ce(a, t, **kw).sum()

    def theirs(a):
        return F.cross_entropy(a, t, **kw).sum()

    tf = torch.func
    torch.testing.assert_close(tf.grad(ours)(x), tf.grad(theirs)(x))
    torch.testing.assert_close(tf.jacrev(tf.grad(ours))(x), tf.jacrev(tf.grad(theirs))(x))
    torch.testing.assert_close(tf.jacfwd(ours)(x), tf.jacfwd(theirs)(x))
    v = torch.ones_like(x)
    torch.testing.assert_close(tf.jvp(ours, (x,), (v,)), tf.jvp(theirs, (x,), (v,)))
    # vmap over a batch of logits (the target shared)
    xs = torch.stack([x, 2 * x, x - 1])
    torch.testing.assert_close(tf.vmap(ours)(xs), tf.vmap(theirs)(xs))
    torch.testing.assert_close(tf.vmap(tf.grad(ours))(xs), tf.vmap(tf.grad(theirs))(xs))
    # forward-mode AD outside torch.func
    import torch.autograd.forward_ad as fwAD

    with fwAD.dual_level():
        ours_t = fwAD.unpack_dual(ours(fwAD.make_dual(x, v))).tangent
        theirs_t = fwAD.unpack_dual(theirs(fwAD.make_dual(x, v))).tangent
    torch.testing.assert_close(ours_t, theirs_t)
    # and linear_cross_entropy
    W = torch.eye(5, dtype=torch.float64)

    def linear(a):
        return linear_cross_entropy(a, W, t, **kw).sum()

    torch.testing.assert_close(tf.grad(linear)(x), tf.grad(theirs)(x))
    torch.testing.assert_close(tf.vmap(linear)(xs), tf.vmap(theirs)(xs))


def test_torch_func_probability_target_vmapped_and_differentiated():
    x, _, q, w = _func_problem()
    qs = torch.stack([q, q.flip(0)])
    tf = torch.func
    torch.testing.assert_close(
        tf.vmap(lambda b: _ce(x, b, weight=w))(qs),
        tf.vmap(lambda b: F.cross_entropy(x, b, weight=w))(qs),
    )
    torch.testing.assert_close(
        tf.grad(lambda b: _ce(x, b, weight=w), argnums=0)(q),
        tf.grad(lambda b: F.cross_entropy(x, b, weight=w))(q),
    )


def test_torch_func_vmap_over_class_indices_is_refused_by_name():
    x, y, _, _ = _func_problem()
    ys = torch.stack([y, y.flip(0)])
    with pytest.raises(NotImplementedError, match="torch.func.vmap"):
        torch.func.vmap(lambda t: _ce(x, t))(ys)


def test_torch_func_special_values_as_the_backend():
    # the plain-ops path keeps the backends' values: NaN for no softmax, 0 for ignored rows
    x = torch.tensor(
        [[math.nan, 0.0, 1.0], [math.inf, 0.0, 1.0], [0.0, -math.inf, 1.0]], dtype=torch.float64
    )
    for y in (torch.tensor([0, 1, 2]), torch.tensor([-100, -100, 2])):
        expected_loss = _ce(x, y, reduction="none")
        xg = x.clone().requires_grad_()
        (expected_grad,) = torch.autograd.grad(_ce(xg, y, reduction="none").sum(), xg)
        torch.testing.assert_close(
            torch.func.vmap(lambda a, y=y: _ce(a, y, reduction="none"))(x[None])[0],
            expected_loss,
            equal_nan=True,
        )
        torch.testing.assert_close(
            torch.func.grad(lambda a, y=y: _ce(a, y, reduction="none").sum())(x),
            expected_grad,
            equal_nan=True,
        )


def test_torch_func_vmap_over_class_weights_and_linear_weights():
    x, y, _, _ = _func_problem()
    ws = torch.rand(3, 5, dtype=torch.float64, generator=torch.Generator().manual_seed(13)) + 0.5
    torch.testing.assert_close(
        torch.func.vmap(lambda w: _ce(x, y, weight=w, label_smoothing=0.1))(ws),
        torch.func.vmap(lambda w: F.cross_entropy(x, y, weight=w, label_smoothing=0.1))(ws),
    )
    Ws = torch.randn(3, 5, 5, dtype=torch.float64, generator=torch.Generator().manual_seed(14))
    torch.testing.assert_close(
        torch.func.vmap(lambda W: linear_cross_entropy(x, W, y))(Ws),
        torch.func.vmap(lambda W: F.cross_entropy(F.linear(x, W), y))(Ws),
    )
