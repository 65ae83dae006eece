"""Adversarial regressions for the Triton backend, run under Triton's interpreter on CPU.

TRITON_INTERPRET=1 must be set before triton is first imported: set here, at the top.
Run this file in its own process (as tests/test_triton_kernel.py).
"""

import math
import os
import sys

_TRITON_WAS_IMPORTED = "triton" in sys.modules
os.environ["TRITON_INTERPRET"] = "1"

import pytest  # noqa: E402

torch = pytest.importorskip("torch", reason="the Triton backend needs torch")
pytest.importorskip("triton", reason="the Triton backend needs triton")

from celib import triton_kernels  # noqa: E402
from celib.torch_ops import cross_entropy  # noqa: E402

if type(triton_kernels._cross_entropy_kernel).__name__ != "InterpretedFunction":
    pytest.skip(
        "triton (or celib.triton_kernels) was imported before TRITON_INTERPRET=1 was "
        f"set in this process (triton imported first: {_TRITON_WAS_IMPORTED}); run this "
        "file on its own: pytest tests/test_triton_adversarial.py",
        allow_module_level=True,
    )

F = torch.nn.functional


def _tr(*args, **kwargs):
    return cross_entropy(*args, backend="triton", **kwargs)


@pytest.mark.parametrize("layout", ["strided", "expanded"])
def test_strided_or_expanded_target(layout):
    # the kernel read Y + row: a strided target was misread, an expanded one read past its end
    x = torch.randn(4, 5, generator=torch.Generator().manual_seed(0))
    base = torch.tensor([0, 9, 3, 9, 1, 9, 4, 9])
    y = base[::2] if layout == "strided" else torch.tensor([3]).expand(4)
    torch.testing.assert_close(_tr(x, y, reduction="none"), F.cross_entropy(x, y, reduction="none"))


def test_uint8_target_with_weight():
    # uint8 indices indexed the weight as a boolean mask: IndexError
    x = torch.randn(4, 5, generator=torch.Generator().manual_seed(1))
    y = torch.tensor([0, 4, 2, 3], dtype=torch.uint8)
    w = torch.rand(5, generator=torch.Generator().manual_seed(2))
    torch.testing.assert_close(_tr(x, y, weight=w), F.cross_entropy(x, y, weight=w))


def test_positive_inf_logit_on_another_class_gives_nan():
    # lse = +inf gave a loss of +inf and a gradient of 0 on the finite classes
    x = torch.tensor([[math.inf, 0.0, 0.0], [0.0, 1.0, 2.0]], requires_grad=True)
    y = torch.tensor([1, 2])
    loss = _tr(x, y, reduction="none", label_smoothing=0.1)
    loss.sum().backward()
    assert torch.isnan(loss[0]) and torch.isfinite(loss[1])
    assert torch.isnan(x.grad[0]).all() and torch.isfinite(x.grad[1]).all()
    torch.testing.assert_close(
        loss, F.cross_entropy(x, y, reduction="none", label_smoothing=0.1), equal_nan=True
    )


def test_create_graph_is_refused_not_silent():
    # once_differentiable returned a gradient without a graph: second-order terms silently 0
    x = torch.randn(3, 4, requires_grad=True)
    loss = _tr(x, torch.tensor([0, 1, 2]))
    with pytest.raises(RuntimeError, match="not twice differentiable"):
        torch.autograd.grad(loss, x, create_graph=True)


def test_inplace_backward_refuses_logits_whose_rows_are_a_copy():
    # (N, C, d) logits: the rows were reshaped into a copy, so "in place" wrote the copy
    # and marked the untouched logits dirty
    base = torch.randn(2, 5, 3, requires_grad=True)
    logits = base * 1.0
    with pytest.raises(ValueError, match="inplace_backward=True needs logits"):
        _tr(logits, torch.randint(0, 5, (2, 3)), inplace_backward=True)
    # channels-last rows are a view: accepted, and truly in place
    base4 = torch.randn(2, 5, 3, 4, requires_grad=True)
    logits4 = (base4 * 1.0).contiguous(memory_format=torch.channels_last)
    y4 = torch.randint(0, 5, (2, 3, 4))
    _tr(logits4, y4, inplace_backward=True).backward()
    expected = base4.detach().clone().requires_grad_()
    F.cross_entropy(expected, y4).backward()
    torch.testing.assert_close(base4.grad, expected.grad)


def test_inplace_backward_on_a_view_of_a_non_leaf():
    """The common (h @ W.T).view(-1, V): the gradient overwrites the logits' memory and
    flows back to h and W exactly as the default path's does."""
    torch.manual_seed(3)
    h = torch.randn(2, 3, 8, dtype=torch.float32, requires_grad=True)
    W = torch.randn(11, 8, dtype=torch.float32, requires_grad=True)
    y = torch.randint(0, 11, (6,))
    grads = []
    for inplace in (False, True):
        logits = (h @ W.T).view(-1, 11)
        loss = cross_entropy(logits, y, backend="triton", inplace_backward=inplace)
        grads.append(torch.autograd.grad(loss, (h, W)))
    for default, inplace in zip(*grads):
        torch.testing.assert_close(inplace, default)


def test_inplace_backward_when_another_op_saved_the_logits_raises():
    """tanh saves its output for backward; overwriting it must be caught by autograd."""
    z = torch.randn(4, 7, requires_grad=True)
    logits = torch.tanh(z)
    loss = cross_entropy(
        logits, torch.tensor([0, 1, 2, 3]), backend="triton", inplace_backward=True
    )
    with pytest.raises(RuntimeError, match="modified by an inplace operation"):
        loss.backward()


# ---------------------------------------------------------------------------
# issue 11, items 2 and 4 (the Triton backend)
# ---------------------------------------------------------------------------


def _reference(x, y, **kw):
    import numpy as np  # noqa: F401  (the reference is NumPy's)

    from celib import reference

    np_kw = {k: (v.double().numpy() if isinstance(v, torch.Tensor) else v) for k, v in kw.items()}
    xr, yr = x.double().numpy(), y.numpy()
    return (
        torch.from_numpy(reference.cross_entropy(xr, yr, **np_kw)),
        torch.from_numpy(reference.cross_entropy_grad(xr, yr, **np_kw)),
    )


@pytest.mark.filterwarnings("ignore:invalid value encountered:RuntimeWarning")
@pytest.mark.parametrize("bad", [math.nan, math.inf, "all -inf"])
@pytest.mark.parametrize("eps", [0.0, 0.2])
def test_row_without_softmax_and_zero_target_weight_is_nan(bad, eps):
    """Item 2: a row holding NaN or +inf (or only -inf) whose target class has weight 0.
    torch and the reference give NaN (0 * NaN); the kernel gave a loss of 0."""
    x = torch.tensor([[0.5, 1.0, -2.0, 0.0], [0.5, 1.0, -2.0, 0.0], [1.0, 2.0, 3.0, 4.0]])
    if bad == "all -inf":
        x[0] = -math.inf
    else:
        x[0, 2] = bad
    y = torch.tensor([1, 1, 3])
    w = torch.tensor([1.0, 0.0, 2.0, 1.0]) if eps == 0.0 else torch.tensor([0.0, 0.0, 0.0, 0.0])
    kw = dict(weight=w, reduction="none", label_smoothing=eps)
    xg = x.clone().requires_grad_()
    loss = _tr(xg, y, **kw)
    (grad,) = torch.autograd.grad(loss, xg, torch.ones(3))
    ref_loss, ref_grad = _reference(x, y, **kw)
    assert torch.isnan(ref_loss[0]) and torch.isnan(loss[0]), (loss, ref_loss)
    torch.testing.assert_close(loss.double(), ref_loss, equal_nan=True)
    torch.testing.assert_close(grad.double(), ref_grad, equal_nan=True)
    torch.testing.assert_close(loss, F.cross_entropy(x, y, **kw), equal_nan=True)


@pytest.mark.parametrize("bad", [math.nan, math.inf, -math.inf])
@pytest.mark.parametrize("reduction", ["sum", "none"])
def test_non_finite_weight_of_an_untargeted_class_without_smoothing(bad, reduction):
    """Item 4: weight NaN or inf on a class no row targets, no smoothing. Its gradient
    column is p * A (finite); the kernel gave NaN from 0 * w (beta * w with beta = 0)."""
    gen = torch.Generator().manual_seed(11)
    x = torch.randn(3, 5, generator=gen)
    y = torch.tensor([0, 2, 4])
    w = torch.tensor([1.0, bad, 0.5, 1.0, 2.0])
    kw = dict(weight=w, reduction=reduction)
    xg = x.clone().requires_grad_()
    loss = _tr(xg, y, **kw)
    (grad,) = torch.autograd.grad(loss, xg, torch.ones_like(loss))
    ref_loss, ref_grad = _reference(x, y, **kw)
    assert torch.isfinite(grad).all(), grad
    torch.testing.assert_close(loss.double(), ref_loss)
    torch.testing.assert_close(grad.double(), ref_grad)
