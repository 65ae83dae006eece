"""Linear cross-entropy: the loss of ``input @ linear_weight.T + linear_bias``, a chunk of rows
at a time, without the N x V logits.
"""

from __future__ import annotations

import numpy as np
import torch

from . import functional, triton_backend
from . import rows as R
from .checks import Spec, check_float_tensor, compute_dtype
from .torch_backend import make_target


def _graph_kept():
    """True inside a backward that keeps the graph (retain_graph=True, gradcheck): then a
    Function that hands over a buffer computed in the forward must copy it instead."""
    get = getattr(torch._C._autograd, "_get_current_graph_task_keep_graph", None)
    # without the query (older torch) hand over: a second backward then raises clearly
    return False if get is None else bool(get())


def _refuse_create_graph(what):
    """RuntimeError in a backward with create_graph=True, for a Function whose gradient
    is not differentiable (torch.autograd.function.once_differentiable would instead
    return a gradient without a graph, and a second-order term would silently be 0)."""
    if torch.is_grad_enabled():
        raise RuntimeError(
            f"{what} is not twice differentiable: backward with "
            "create_graph=True (double backward, Hessian-vector products) "
            "is not supported; use celib.torch_ops.cross_entropy with "
            "backend='torch' on the logits"
        )


def _linear_chunk_rows(N, V, device):
    """Rows per chunk: about 2^27 logits on a GPU (1 GiB in float32 at most), 2^22 on a CPU
    (16 MiB: fewer, larger matmuls; at 2^20 their overhead tripled the time under no_grad)."""
    per = (1 << 27) if device.type == "cuda" else (1 << 22)
    return max(1, min(max(N, 1), per // max(V, 1)))


def _linear_pass(x, W, b, tgt, spec, s_all, lse_out, loss_out, want, chunk):
    """One sweep over chunks of rows: logits, loss, and (if ``want``) the gradients.

    For a chunk c of rows: z_c = x_c W^T + b in the parameters' dtype; lse and loss
    in the compute dtype; then g_c = s (p A - a) in place of the logits and
    dL/dx_c = g_c W, dL/dW += g_c^T x_c, dL/db += sum_rows g_c, the last two
    accumulated in the compute dtype (float32 for 16-bit parameters) and rounded once
    at the end. ``want`` is a 4-tuple of booleans (input, weight, bias, probability
    target); s_all as from :func:`rows.scale`, or None when no gradient is wanted.
    Memory: one chunk of logits plus the gradients.
    """
    N, V = spec.M, spec.C
    cdt = spec.cdt
    acc = compute_dtype(W.dtype)  # accumulation dtype of dW and db
    want_x, want_w, want_b, want_q = want
    any_grad = s_all is not None and any(want)
    gx = torch.empty_like(x) if any_grad and want_x else None
    gw = torch.zeros(W.shape, dtype=acc, device=W.device) if any_grad and want_w else None
    gb = torch.zeros(V, dtype=acc, device=x.device) if any_grad and want_b else None
    gq = (
        torch.empty(tgt.q.shape, dtype=tgt.q.dtype, device=x.device)
        if any_grad and want_q
        else None
    )
    use_triton = triton_backend.linear_uses_triton(x, tgt)
    for lo in range(0, N, chunk):
        hi = min(N, lo + chunk)
        z = x[lo:hi] @ W.T if b is None else torch.addmm(b, x[lo:hi], W.T)
        if use_triton:
            loss, lse, g = triton_backend.linear_chunk(z, tgt, spec, s_all, lo, hi, any_grad)
        else:
            zc = z.to(cdt)
            lse = torch.empty(hi - lo, dtype=cdt, device=zc.device)
            m, log_S = R.lse_parts(zc, lse)
            loss = tgt.loss(zc, m, log_S, lo, hi)
            g = None
            if any_grad:
                s = s_all if s_all.dim() == 0 else s_all[lo:hi]
                if gq is not None:
                    gq[lo:hi] = tgt.grad_target(zc, m, log_S, s, lo, hi).to(gq.dtype)
                g = R.grad_rows_(zc, lse, tgt, s, lo, hi)  # compute dtype
            del z
        if lse_out is not None:
            lse_out[lo:hi] = lse
        if loss_out is not None:
            loss_out[lo:hi] = loss
        if any_grad:
            if want_x:
                torch.mm(g.to(x.dtype), W, out=gx[lo:hi])
            if want_w:
                gw.addmm_(g.T.to(acc), x[lo:hi].to(acc))
            if want_b:
                gb += g.sum(dim=0, dtype=acc)
        del g
    return (
        gx,
        None if gw is None else gw.to(W.dtype),
        None if gb is None else gb.to(W.dtype),
        None if gq is None else gq.reshape(spec.shape),
    )


class _LinearCrossEntropy(torch.autograd.Function):
    """'mean' and 'sum': gradients computed during the forward, scaled in backward.
    'none': the forward computes the loss only; the backward recomputes each chunk's
    logits and applies the per-row upstream gradient (one more matmul per chunk).
    x, W and b are saved in either case, so that autograd's version counter refuses
    a change of them in place between forward and backward (as torch).
    """

    @staticmethod
    def forward(ctx, x, W, b, target, weight, spec, chunk, grad_enabled):
        cdt = spec.cdt
        N = spec.M
        tgt = make_target(target, spec, weight)
        denom = tgt.mean_denominator(N, x.device)
        # under torch.no_grad nothing will call backward: compute the loss only
        want = tuple(bool(w) and grad_enabled for w in ctx.needs_input_grad[:4])
        loss = torch.empty(N, dtype=cdt, device=x.device)
        lse = torch.empty(N, dtype=cdt, device=x.device)
        precompute = spec.reduction != "none" and any(want)
        s = (
            R.scale(spec, denom, torch.ones((), dtype=cdt, device=x.device), cdt)
            if precompute
            else None
        )
        grads = _linear_pass(x, W, b, tgt, spec, s, lse, loss, want, chunk)
        ctx.spec, ctx.tgt, ctx.denom, ctx.chunk, ctx.want = spec, tgt, denom, chunk, want
        ctx.grads = grads if precompute else None
        ctx.save_for_backward(x, W, b)
        return R.reduce(spec, loss, denom).to(spec.loss_dtype)

    @staticmethod
    def backward(ctx, grad_output):
        _refuse_create_graph("celib's linear_cross_entropy")
        with torch.no_grad():
            return _LinearCrossEntropy._backward(ctx, grad_output)

    @staticmethod
    def _backward(ctx, grad_output):
        spec = ctx.spec
        x, W, b = ctx.saved_tensors  # raises if any was modified in place since the forward
        if spec.reduction != "none":
            if ctx.grads is None:
                raise RuntimeError(
                    "celib's linear_cross_entropy computes its gradients in the forward and "
                    "hands them over in backward; backward through it a second time is not "
                    "supported"
                )
            grads = ctx.grads
            if _graph_kept():  # the graph may be run again: leave the stored gradients intact
                grads = tuple(None if g is None else g * grad_output.to(g.dtype) for g in grads)
            else:  # hand the buffers over, scaled in place
                ctx.grads = None
                if not bool(grad_output == 1):  # one host sync; skips a pass for the usual 1
                    grads = tuple(
                        None if g is None else g.mul_(grad_output.to(g.dtype)) for g in grads
                    )
        else:
            s = R.scale(spec, ctx.denom, grad_output, spec.cdt)
            grads = _linear_pass(x, W, b, ctx.tgt, spec, s, None, None, ctx.want, ctx.chunk)
        gx, gw, gb, gq = grads
        return gx, gw, gb, gq, None, None, None, None


def linear_cross_entropy(
    input,
    linear_weight,
    target,
    *,
    linear_bias=None,
    weight=None,
    reduction="mean",
    ignore_index=-100,
    label_smoothing=0.0,
    chunk_size=None,
):
    """Cross-entropy of ``input @ linear_weight.T + linear_bias`` without the N x V logits.

    Same result as ``cross_entropy(F.linear(input, linear_weight, linear_bias), target,
    ...)`` and as ``torch.nn.functional.linear_cross_entropy`` (torch >= 2.13), but
    the rows are processed ``chunk_size`` at a time: each chunk's logits are formed,
    turned into loss and into their gradient g = s (p A - a) in place, and consumed
    at once by the gradients dL/dinput = g W, dL/dW += g^T input, dL/db += sum g.
    Peak memory: one chunk of logits (float32 on the torch path; the parameters'
    dtype with the Triton kernel on CUDA) plus the three gradients.

    Parameters
    ----------
    input : torch.Tensor, float, shape (H,) or (N, H)
    linear_weight : torch.Tensor, shape (V, H), same dtype as ``input``
        (torch's K-dimensional (V, d1, ..., dk, H) form is not supported.)
    target : torch.Tensor
        Class indices, shape () or (N,); or probabilities of the logits' shape (V,) or (N, V).
    linear_bias : torch.Tensor, shape (V,), optional
    weight, reduction, label_smoothing
        As in :func:`cross_entropy`.
    ignore_index : int or None, default -100
        None means -100, as in torch.nn.functional.linear_cross_entropy (which raises
        for a non-None ignore_index with probability targets; celib, like
        :func:`cross_entropy`, only refuses a non-negative one).
    chunk_size : int, optional
        Rows per chunk (a Python or NumPy integer, at least 1); default about 2^27 / V
        rows on CUDA and 2^22 / V on a CPU.

    Returns
    -------
    torch.Tensor of ``input``'s dtype: shape () for 'mean' and 'sum', (N,) or () for 'none'.

    Notes
    -----
    For 'mean' and 'sum' the gradients are computed during the forward (the
    'mean' denominator, which depends on all rows, is computed before the
    chunk loop) and scaled by the upstream gradient in the backward, so backward
    can run once per forward. For 'none' the upstream gradient differs per row and
    is known only in backward, so the forward computes the loss alone and the
    backward recomputes each chunk's logits (one more matmul per chunk). The
    gradients of 16-bit parameters are accumulated across chunks in float32 and
    rounded once (Liger Kernel's ``accum_dtype``), so their error does not grow with
    the number of chunks. A probability target that requires grad gets its gradient
    s (1 - eps) w (lse - z). Under torch.no_grad only the loss is computed. Under a
    torch.func transform the logits are formed whole (F.linear) and the loss computed
    in plain torch ops. Not twice differentiable: a
    backward with create_graph=True raises RuntimeError.

    Raises
    ------
    ValueError, TypeError, IndexError, RuntimeError
        As :func:`cross_entropy`; also ValueError for shapes of input, linear_weight
        and linear_bias that do not fit (shapes named), a non-positive chunk_size, or
        tensors on a device other than input's; TypeError for a chunk_size that is
        not an integer, or dtypes that differ.
    """
    for t, name in ((input, "input"), (linear_weight, "linear_weight")):
        check_float_tensor(t, name)
    if input.dim() not in (1, 2):
        raise ValueError(f"input must have shape (H,) or (N, H), got shape {tuple(input.shape)}")
    if linear_weight.dim() != 2:
        raise ValueError(
            "linear_weight must have shape (V, H), got shape "
            f"{tuple(linear_weight.shape)} (K-dimensional weights are not supported)"
        )
    V, H = linear_weight.shape
    if input.shape[-1] != H:
        raise ValueError(
            f"input of shape {tuple(input.shape)} does not match linear_weight of "
            f"shape {tuple(linear_weight.shape)}: expected last dimension {H}"
        )
    if linear_bias is not None:
        check_float_tensor(linear_bias, "linear_bias")
        if tuple(linear_bias.shape) != (V,):
            raise ValueError(
                f"linear_bias of shape {tuple(linear_bias.shape)} does not match "
                f"linear_weight of shape {tuple(linear_weight.shape)}: expected ({V},)"
            )
    for t, name in ((linear_weight, "linear_weight"), (linear_bias, "linear_bias")):
        if t is not None and t.dtype != input.dtype:
            raise TypeError(f"{name} has dtype {t.dtype} but input has dtype {input.dtype}")
    if ignore_index is None:
        ignore_index = -100
    logits_meta = torch.empty(tuple(input.shape[:-1]) + (V,), dtype=input.dtype, device="meta")
    spec = Spec(logits_meta, target, weight, ignore_index, reduction, label_smoothing)
    for t, name in (
        (target, "target"),
        (linear_weight, "linear_weight"),
        (linear_bias, "linear_bias"),
        (weight, "weight"),
    ):
        if t is not None and t.device != input.device:
            raise ValueError(f"{name} is on {t.device} but input on {input.device}")
    if chunk_size is None:
        chunk_size = _linear_chunk_rows(spec.M, V, input.device)
    elif isinstance(chunk_size, (bool, np.bool_)) or not isinstance(chunk_size, (int, np.integer)):
        raise TypeError(f"chunk_size must be an integer number of rows, got {chunk_size!r}")
    elif chunk_size < 1:
        raise ValueError(f"chunk_size must be a positive number of rows, got {chunk_size!r}")
    if functional.needs_composite(input, linear_weight, linear_bias, target):
        logits = torch.nn.functional.linear(input, linear_weight, linear_bias)
        return functional.composite_cross_entropy(logits, target, weight, spec)
    x = input.reshape(spec.M, H)
    if x.stride(-1) != 1:
        x = x.contiguous()
    return _LinearCrossEntropy.apply(
        x,
        linear_weight,
        linear_bias,
        target,
        weight,
        spec,
        int(chunk_size),
        torch.is_grad_enabled(),
    )
