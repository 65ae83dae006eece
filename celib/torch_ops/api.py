"""The public cross-entropy of the torch path: checks, then the torch or the Triton backend.

Under a torch.func transform (or forward-mode AD) the loss is computed by
``celib.torch_ops.functional`` instead, in plain torch ops.
"""

from __future__ import annotations

from . import functional, triton_backend
from .checks import Spec, active_transform
from .torch_backend import CrossEntropyTorch


def cross_entropy(
    logits,
    target,
    *,
    weight=None,
    ignore_index=-100,
    reduction="mean",
    label_smoothing=0.0,
    backend="auto",
    inplace_backward=False,
):
    """Cross-entropy with PyTorch's semantics and a closed-form backward.

    Same options, shapes and results as ``torch.nn.functional.cross_entropy``
    and :func:`celib.cross_entropy` (with the reference's deliberate
    deviation: a class whose effective target is exactly 0 contributes exactly 0
    loss, even at a -inf logit). The backward is dL/dx_n = s_n (p_n A_n - a_n);
    the forward saves one log-sum-exp per row, never the M x C log-probabilities.

    Parameters
    ----------
    logits : torch.Tensor, float16/bfloat16/float32/float64
        Shape (C,), (N, C) or (N, C, d1, ..., dk).
        Unnormalised scores (nats); class axis 0 for 1-D input, else 1. Never modified
        (unless ``inplace_backward=True`` with the Triton backend, see below).
    target : torch.Tensor
        Class indices (integer, shape (), (N,) or (N, d1, ..., dk)), each in [0, C) or
        ``ignore_index``; or class probabilities (float, logits' shape).
    weight : torch.Tensor, float, shape (C,), optional
        A rescaling weight per class.
    ignore_index : int, default -100
        Targets equal to it get no loss, no gradient and no share of the 'mean'
        denominator. Must be negative with probability targets.
    reduction : {'mean', 'sum', 'none'}, default 'mean'
        'mean' divides by the sum of w[y_n] over kept targets (their count without
        weights) for class indices and by the number of elements for probabilities;
        NaN when that is 0.
    label_smoothing : float in [0, 1], default 0.0
        Target mixed with the uniform distribution: (1 - eps) q + eps / C.
    backend : {'auto', 'torch', 'triton'}, default 'auto'
        'torch': torch ops, any device, computed in float32 for 16-bit inputs and
        in chunks of rows. 'triton': the fused kernel of ``celib.triton_kernels``
        (loss and gradient in one launch; probability targets and float64 fall
        back to the torch backend). 'auto': Triton on CUDA when triton is
        installed, else torch.
    inplace_backward : bool, default False
        Triton backend only: write the gradient into the logits' own memory (no
        M x C buffer). The logits are then overwritten: their version counter is
        bumped and autograd raises if anything else saved them for backward. Their
        rows (classes last) must be a view with contiguous classes: (C,), (N, C), or
        channels-last K-dimensional logits.

    Returns
    -------
    torch.Tensor of logits' dtype (probability targets: promoted with theirs, as torch)
        Shape () for 'mean' and 'sum'; the loss shape (logits' shape without the
        class axis) for 'none'. A row holding a NaN or +inf logit has no softmax: its
        loss and gradient are NaN (unless the row is ignored). The torch backend is twice
        differentiable (create_graph=True); the Triton backend raises there. Under
        torch.func's grad, jacrev, jacfwd, jvp, vmap (over the logits, or probability
        targets) and forward-mode AD the loss is computed in plain torch ops instead
        (``celib.torch_ops.functional``), with the same values.

    Raises
    ------
    TypeError
        Non-tensor or non-float logits or weight; non-integer class indices.
    ValueError
        Mismatched shapes (both named), unknown reduction or backend, label_smoothing
        outside [0, 1], ignore_index >= 0 with probabilities, tensors on different devices,
        ``inplace_backward`` on logits whose rows are not a view.
    IndexError
        A class index outside [0, C) that is not ignore_index (first value and position named).
    NotImplementedError
        vmap over class-index targets (the transform is named).
    RuntimeError
        ``weight`` requires grad while grad mode is on (not differentiable in it, as torch).
    """
    spec = Spec(logits, target, weight, ignore_index, reduction, label_smoothing)
    chosen = triton_backend.resolve_backend(backend, logits)
    if inplace_backward and chosen != "triton":
        raise ValueError("inplace_backward=True needs backend='triton' (or 'auto' on CUDA)")
    if functional.needs_composite(logits, target):
        if inplace_backward:
            raise ValueError(
                f"inplace_backward=True cannot run under {active_transform() or 'forward-mode AD'}"
            )
        return functional.composite_cross_entropy(logits, target, weight, spec)
    if chosen == "triton" and triton_backend.handles(spec, logits):
        return triton_backend.cross_entropy(logits, target, weight, spec, inplace_backward)
    if inplace_backward:
        raise ValueError(
            "inplace_backward=True supports class-index targets and 16/32-bit "
            "logits only (the other cases run on the torch backend)"
        )
    return CrossEntropyTorch.apply(logits, target, weight, spec)
