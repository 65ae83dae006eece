"""The torch backend: cross-entropy as an autograd Function that saves one lse per row.

Forward: lse_n and loss_n by chunks of rows. Backward: s_n (p_n A_n - a_n) in
closed form, p_n rebuilt chunk by chunk straight into the gradient (see
:mod:`celib.torch_ops.rows` for the formulas).
"""

from __future__ import annotations

import math

import torch

from . import rows as R


class CrossEntropyTorch(torch.autograd.Function):
    """Saves the logits (a reference, not a copy), lse (M numbers), and, by reference,
    a probability target and the weight (so that changing them in place before the
    backward is refused, as in torch). Under create_graph=True the backward is written
    in differentiable torch ops instead (double backward).
    """

    @staticmethod
    def forward(ctx, logits, target, weight, spec):
        cdt = spec.cdt
        x_all = spec.rows(logits)
        M, C = spec.M, spec.C
        tgt = make_target(target, spec, weight)
        denom = tgt.mean_denominator(M, logits.device)
        lse = torch.empty(M, dtype=cdt, device=logits.device)
        loss = torch.empty(M, dtype=cdt, device=logits.device)
        step = R.chunk_rows(M, C, logits.device)
        for lo in range(0, M, step):
            hi = min(M, lo + step)
            x = x_all[lo:hi].to(cdt)
            m, log_S = R.lse_parts(x, lse[lo:hi])
            loss[lo:hi] = tgt.loss(x, m, log_S, lo, hi)
        out = R.reduce(spec, loss, denom)
        ctx.spec, ctx.tgt, ctx.denom = spec, tgt, denom
        # the probability target and the weight are read again in backward: saved, so that
        # autograd's version counter refuses them if modified in place meanwhile (as torch)
        ctx.save_for_backward(logits, lse, target if spec.kind != "indices" else None, weight)
        return out.to(spec.loss_dtype)

    @staticmethod
    def backward(ctx, grad_output):
        logits, lse, target, _ = ctx.saved_tensors
        spec, tgt = ctx.spec, ctx.tgt
        if torch.is_grad_enabled():  # create_graph=True: a backward autograd can differentiate
            return _grad_differentiable(
                logits, target, spec, tgt, ctx.denom, grad_output, ctx.needs_input_grad[:2]
            ) + (None, None)
        grad_logits = grad_target = None
        if ctx.needs_input_grad[0]:
            grad_logits = _grad_logits(logits, lse, spec, tgt, ctx.denom, grad_output)
        if ctx.needs_input_grad[1]:  # probability targets only (indices are integers)
            grad_target = _grad_target(logits, lse, spec, tgt, ctx.denom, grad_output)
        return grad_logits, grad_target, None, None


def make_target(target, spec, weight):
    """The effective target of each row: :class:`rows.IndexRows` or :class:`rows.ProbRows`."""
    if spec.kind == "indices":
        return R.IndexRows(
            target.reshape(spec.M), spec.C, weight, spec.ignore_index, spec.eps, spec.cdt
        )
    return R.ProbRows(spec.rows(target), spec.C, weight, spec.eps, spec.cdt)


def _grad_logits(logits, lse, spec, tgt, denom, grad_output):
    """dL/dx = s_n (p_n A_n - a_n), written chunk by chunk into one new tensor."""
    cdt = spec.cdt
    M, C = spec.M, spec.C
    s_all = R.scale(spec, denom, grad_output, cdt)
    x_all = spec.rows(logits)
    grad = torch.empty((M, C), dtype=logits.dtype, device=logits.device)
    direct = logits.dtype == cdt  # compute in place in grad (no float32 staging)
    step = R.chunk_rows(M, C, logits.device)
    for lo in range(0, M, step):
        hi = min(M, lo + step)
        s = s_all if s_all.dim() == 0 else s_all[lo:hi]
        out = grad[lo:hi] if direct else torch.empty((hi - lo, C), dtype=cdt, device=grad.device)
        torch.sub(x_all[lo:hi].to(cdt), lse[lo:hi, None], out=out)
        R.grad_rows_(out, None, tgt, s, lo, hi)
        if not direct:
            grad[lo:hi].copy_(out)
    return spec.unrows(grad)


def _grad_target(logits, lse, spec, tgt, denom, grad_output):
    """dL/dq_nc = s_n (1 - eps) w_c (lse_n - x_nc) for probability targets q."""
    s = R.scale(spec, denom, grad_output, spec.cdt)
    x = spec.rows(logits).to(spec.cdt)
    g = tgt.grad_target(x, torch.zeros_like(lse), lse, s, 0, spec.M)
    return spec.unrows(g.to(tgt.q.dtype))


def _grad_differentiable(logits, target, spec, tgt, denom, grad_output, want):
    """The gradients of :func:`_grad_logits` and :func:`_grad_target` in differentiable
    torch ops, for a backward with create_graph=True (double backward, Hessian-vector
    products). Unchunked, M x C temporaries; the true class's gradient is formed as
    p_y A - a_y (without the confident-row rewriting).
    """
    cdt = spec.cdt
    x = spec.rows(logits).to(cdt)
    s = R.scale(spec, denom, grad_output, cdt)
    s = s[:, None] if s.dim() else s
    lse = torch.logsumexp(x, dim=1, keepdim=True)
    lse = torch.where(lse == math.inf, math.nan, lse)  # as rows.lse_parts
    w = 1.0 if tgt.w is None else tgt.w
    if isinstance(tgt, R.IndexRows):
        a, keep = tgt.dense(0, spec.M), tgt.keep[:, None]
    else:
        a, keep = tgt.a(0, spec.M, spec.rows(target)), None
    grad_logits = grad_target = None
    if want[0]:
        s_kept = s if keep is None else torch.where(keep, s, 0.0)  # no 0 * NaN in a double backward
        g = s_kept * (torch.exp(x - lse) * a.sum(dim=1, keepdim=True) - a)
        if keep is not None:  # ignored rows: exactly 0
            g = torch.where(keep, g, 0.0)
        grad_logits = spec.unrows(g.to(logits.dtype))
    if want[1]:
        grad_target = spec.unrows(((lse - x) * (s * (1.0 - tgt.eps)) * w).to(target.dtype))
    return grad_logits, grad_target
