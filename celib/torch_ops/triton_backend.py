"""Where the torch path calls the Triton kernel: every call site of ``celib.triton_kernels``.

The kernel module is imported lazily, only when the Triton backend is chosen
(importing triton is costly and sensitive to the environment).
"""

from __future__ import annotations

import importlib.util

import torch

from .rows import IndexRows

BACKENDS = ("auto", "torch", "triton")


def triton_available():
    return importlib.util.find_spec("triton") is not None


def resolve_backend(backend, logits):
    """'torch' or 'triton' for the ``backend`` argument ('auto': Triton on CUDA if installed)."""
    if backend not in BACKENDS:
        raise ValueError(f"backend must be one of {BACKENDS}, got {backend!r}")
    if backend == "auto":
        return "triton" if logits.is_cuda and triton_available() else "torch"
    if backend == "triton" and not triton_available():
        raise RuntimeError("backend='triton' needs the triton package, which is not installed")
    return backend


def handles(spec, logits):
    """The kernel takes class-index targets and 16/32-bit logits (the rest: torch backend)."""
    return spec.kind == "indices" and logits.dtype != torch.float64


def cross_entropy(logits, target, weight, spec, inplace_backward):
    """The fused kernel through its autograd Function (the checks are done)."""
    from .. import triton_kernels

    return triton_kernels.cross_entropy_triton(
        logits, target.long(), weight, spec, inplace_backward=inplace_backward
    )


def linear_uses_triton(x, tgt):
    """The fused kernel for each chunk of linear cross-entropy: CUDA, class indices, 16/32-bit."""
    return (
        x.is_cuda and isinstance(tgt, IndexRows) and x.dtype != torch.float64 and triton_available()
    )


def linear_chunk(z, tgt, spec, s, lo, hi, want_grad):
    """Loss, lse and (if ``want_grad``) the gradient s (p A - a) of one chunk of logits z,
    written in place of z (multiplied by the per-row upstream gradient for 'none')."""
    from .. import triton_kernels

    one = torch.ones((), dtype=torch.float32, device=z.device)
    s = s if s is None or s.dim() == 0 else s[lo:hi]
    scale = one if s is None or s.dim() else s.to(torch.float32)
    loss, lse = triton_kernels.cross_entropy_forward(
        z,
        torch.where(tgt.keep[lo:hi], tgt.y[lo:hi], spec.ignore_index),  # int64, contiguous
        tgt.w,
        spec.ignore_index,
        spec.eps,
        scale,
        z if want_grad else None,
    )
    if want_grad and s is not None and s.dim():
        z.mul_(s[:, None].to(z.dtype))  # per-row upstream gradient ('none')
    return loss, lse, z
