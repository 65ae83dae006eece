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
    ref_grad = reference.cross_entropy_grad(x.numpy(), y.numpy(), reduction="none",
                                            grad_output=np.ones(2))
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
        torch.testing.assert_close(loss, ref.abs(), equal_nan=True)   # torch: -0.0 for probs
        # with smoothing (eps / C undefined: the reference's spread is 0; torch gives NaN)
        loss = _ce(x, target, reduction=reduction, label_smoothing=0.1)
        assert torch.isnan(loss).all() if math.isnan(expected) else (loss == 0).all()
        (g,) = torch.autograd.grad(loss.sum(), x)
        assert g.shape == (3, 0)


def _hvp(fn, x, y):
    loss = fn(x, y)
    (g,) = torch.autograd.grad(loss, x, create_graph=True)
    (h,) = torch.autograd.grad((g ** 2).sum() + x.sum(), x)
    return h


@pytest.mark.parametrize("kwargs", [{}, dict(label_smoothing=0.3, reduction="sum"),
                                    dict(weight=torch.tensor([1.0, 0.5, 2.0, 0.0], dtype=torch.float64),
                                         reduction="none")])
def test_double_backward_matches_torch(kwargs):
    # create_graph=True silently gave a gradient without a graph (second-order terms 0)
    gen = torch.Generator().manual_seed(3)
    x = torch.randn(3, 4, dtype=torch.float64, generator=gen, requires_grad=True)
    y = torch.tensor([0, -100, 2])
    red = kwargs.get("reduction", "mean")
    fold = (lambda v: v.sum()) if red == "none" else (lambda v: v)
    torch.testing.assert_close(_hvp(lambda a, b: fold(_ce(a, b, **kwargs)), x, y),
                               _hvp(lambda a, b: fold(F.cross_entropy(a, b, **kwargs)), x, y))


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
    with torch.no_grad():   # no graph, nothing to refuse
        torch.testing.assert_close(_ce(x, y, weight=w), F.cross_entropy(x, y, weight=w))


@pytest.mark.parametrize("chunk_size", [2.5, "3", True, 1.0])
def test_linear_chunk_size_must_be_an_integer(chunk_size):
    x, W, y = torch.randn(5, 3), torch.randn(4, 3), torch.tensor([0, 1, 2, 3, 0])
    with pytest.raises(TypeError, match="chunk_size"):
        linear_cross_entropy(x, W, y, chunk_size=chunk_size)
    torch.testing.assert_close(linear_cross_entropy(x, W, y, chunk_size=np.int64(2)),
                               F.linear_cross_entropy(x, W, y))


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
