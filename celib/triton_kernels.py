"""The fused cross-entropy kernel: loss and gradient of a row in one launch (Triton).

One kernel, one thin autograd Function around it (in the spirit of Liger-Kernel's
``ops/cross_entropy.py``). Imported by :mod:`celib.torch_ops` only when the
Triton backend is chosen; with ``TRITON_INTERPRET=1`` set before triton is first
imported it runs on CPU tensors (celib's tests do that).

Notation (the NumPy reference's): row n of the logits x_n (C classes), its
class index y_n, class weights w (all ones without weights), smoothing eps,

    alpha_n = (1 - eps) w[y_n],  beta_n = eps / C    (both 0 for an ignored row)
    a_n     = alpha_n onehot(y_n) + beta_n w,  A_n = alpha_n + beta_n sum(w)
    loss_n  = alpha_n (lse_n - x_ny) + beta_n sum_{c: w_c != 0} w_c (lse_n - x_nc)
    dL/dx_n = s_n (p_n A_n - a_n)

with s_n = 1 / (the 'mean' denominator), 1 for 'sum', and 1 for 'none' (the
upstream gradient is applied in backward, row by row). Every sum accumulates in
float32 whatever the input dtype (float16, bfloat16, float32). No libdevice calls.

Probability targets and float64 logits are not handled here: celib.torch_ops
sends them to the torch backend.
"""

from __future__ import annotations

import torch
import triton
import triton.language as tl

__all__ = ["cross_entropy_triton", "cross_entropy_forward"]


@triton.jit
def _cross_entropy_kernel(
    X, stride_x,            # logits, (M, C) with unit class stride; row stride in elements
    Y,                      # class indices, (M,), contiguous
    W,                      # class weights, (C,) (unused unless HAS_WEIGHT)
    SUM_W,                  # sum(w), a float32 scalar in memory (unused unless HAS_SMOOTHING)
    SCALE,                  # s (1 / denominator or 1), a float32 scalar in memory
    LOSS, LSE,              # per-row loss (unscaled) and lse, float32 (M,)
    G, stride_g,            # gradient, (M, C), may be X itself (in-place); unused unless HAS_GRAD
    C, ignore_index, eps,
    BLOCK: tl.constexpr,
    HAS_WEIGHT: tl.constexpr, HAS_SMOOTHING: tl.constexpr, HAS_GRAD: tl.constexpr,
):
    # One program per row. 64-bit row offsets: M * C may exceed 2^31.
    row = tl.program_id(0).to(tl.int64)
    x_row = X + row * stride_x
    g_row = G + row * stride_g
    y = tl.load(Y + row).to(tl.int64)
    offs = tl.arange(0, BLOCK)

    if y == ignore_index:
        # An ignored row: loss 0, gradient exactly 0 (even where p would be NaN).
        tl.store(LOSS + row, 0.0)
        tl.store(LSE + row, 0.0)
        if HAS_GRAD:
            for start in range(0, C, BLOCK):
                cols = start + offs
                tl.store(g_row + cols, tl.zeros([BLOCK], dtype=tl.float32).to(G.dtype.element_ty),
                         mask=cols < C)
        return

    # ---- pass 1: online softmax -------------------------------------------------
    # Running maximum m and sums d = sum_c exp(x_c - shift(m)), d_other = the same
    # without the true class, where shift(m) = m if m is finite, else 0 (the
    # reference's convention: an all -inf row gives lse = -inf, +inf gives +inf).
    # A new block rescales both sums by exp(shift(m_old) - shift(m_new)).
    m = -float("inf")
    d = 0.0
    d_other = 0.0
    for start in range(0, C, BLOCK):
        cols = start + offs
        x = tl.load(x_row + cols, mask=cols < C, other=-float("inf")).to(tl.float32)
        m_new = tl.maximum(m, tl.max(x, axis=0))
        shift_old = tl.where(tl.abs(m) < float("inf"), m, 0.0)
        shift_new = tl.where(tl.abs(m_new) < float("inf"), m_new, 0.0)
        e = tl.exp(x - shift_new)                       # masked lanes: exp(-inf) = 0
        rescale = tl.exp(shift_old - shift_new)
        # while d is 0 (no finite logit yet) skip the rescale: 0 * inf would be NaN
        d = tl.where(d == 0.0, 0.0, d * rescale) + tl.sum(e, axis=0)
        d_other = tl.where(d_other == 0.0, 0.0, d_other * rescale) + \
            tl.sum(tl.where(cols == y, 0.0, e), axis=0)
        m = m_new
    shift = tl.where(tl.abs(m) < float("inf"), m, 0.0)
    lse = shift + tl.log(d)
    # A row holding +inf has no softmax: its log-probabilities, loss and gradient are
    # NaN (the reference's and torch's), not the +inf and 0 that log d = inf would give.
    no_softmax = m == float("inf")
    log_d = tl.where(no_softmax, float("nan"), tl.log(d))

    # ---- the effective target's coefficients -------------------------------------
    if HAS_WEIGHT:
        w_y = tl.load(W + y).to(tl.float32)
    else:
        w_y = 1.0
    alpha = (1.0 - eps) * w_y                            # one-hot coefficient
    if HAS_SMOOTHING:
        beta = eps / C                                   # spread coefficient (times w_c)
        A = alpha + beta * tl.load(SUM_W)                # A_n = sum_c a_nc
        a_y = alpha + beta * w_y
    else:
        beta = 0.0
        A = alpha
        a_y = alpha

    # loss_n, true-class part: alpha (lse - x_y) = alpha ((shift - x_y) + log d), and
    # exactly 0 where alpha is 0 (even at x_y = -inf).
    x_y = tl.load(x_row + y).to(tl.float32)
    loss = tl.where(alpha != 0.0, alpha * ((shift - x_y) + log_d), 0.0)

    # ---- pass 2: gradient (and the smoothing part of the loss) ------------------
    # p_c = exp(x_c - shift) / d;  g_c = s (p_c A - beta w_c) for c != y, and for the
    # true class, without cancellation when p_y is within rounding of 1,
    #   g_y = s (A (p_y - 1) + (A - a_y)),  p_y - 1 = -d_other / d.
    if HAS_GRAD or HAS_SMOOTHING:
        s = tl.load(SCALE)
        inv_d = tl.where(no_softmax, float("nan"), 1.0 / d)
        g_y = s * (A * (-(d_other * inv_d)) + (A - a_y))
        smooth = 0.0
        for start in range(0, C, BLOCK):
            cols = start + offs
            mask = cols < C
            x = tl.load(x_row + cols, mask=mask, other=0.0).to(tl.float32)
            if HAS_WEIGHT:
                w = tl.load(W + cols, mask=mask, other=0.0).to(tl.float32)
            else:
                w = tl.where(mask, 1.0, 0.0)
            if HAS_SMOOTHING:
                # sum_c w_c (lse - x_c) over classes with w_c != 0
                smooth += tl.sum(tl.where(w != 0.0, w * ((shift - x) + log_d), 0.0), axis=0)
            if HAS_GRAD:
                p = tl.exp(x - shift) * inv_d
                g = s * (p * A - beta * w)
                g = tl.where(cols == y, g_y, g)
                tl.store(g_row + cols, g.to(G.dtype.element_ty), mask=mask)
        if HAS_SMOOTHING:
            loss += tl.where(beta != 0.0, beta * smooth, 0.0)

    tl.store(LOSS + row, loss)
    tl.store(LSE + row, lse)


def _launch_config(C, interpret):
    """Block size and warps: whole rows up to 8192 classes per block on a GPU."""
    block = min(triton.next_power_of_2(max(C, 1)), 65536 if interpret else 8192)
    num_warps = 4 if block <= 1024 else (8 if block <= 4096 else 16)
    return block, num_warps


def _interpreting():
    try:
        from triton import knobs
        return bool(knobs.runtime.interpret)
    except (ImportError, AttributeError):   # older triton: the environment variable itself
        import os
        return os.environ.get("TRITON_INTERPRET", "0") == "1"


def cross_entropy_forward(x, y, weight, ignore_index, label_smoothing, scale, grad_out):
    """Launch the kernel on rows x (M, C) with unit class stride.

    ``scale`` is a float32 0-d tensor (s); ``grad_out`` is None (no gradient), a new
    (M, C) tensor, or x itself (in place). Returns per-row loss and lse (float32, (M,)).
    """
    M, C = x.shape
    loss = torch.empty(M, dtype=torch.float32, device=x.device)
    lse = torch.empty(M, dtype=torch.float32, device=x.device)
    if M == 0:
        return loss, lse
    has_weight = weight is not None
    w = weight.to(torch.float32).contiguous() if has_weight else loss  # a dummy pointer
    # torch.full launches a fill kernel; torch.tensor(..., device=cuda) would copy from host
    # memory and wait for the stream
    sum_w = w.sum() if has_weight else torch.full((), float(C), device=x.device)
    sum_w = sum_w.to(torch.float32)
    g = grad_out if grad_out is not None else x
    block, num_warps = _launch_config(C, _interpreting())
    _cross_entropy_kernel[(M,)](
        x, x.stride(0), y, w, sum_w, scale, loss, lse, g, g.stride(0),
        C, ignore_index, float(label_smoothing),
        BLOCK=block, HAS_WEIGHT=has_weight, HAS_SMOOTHING=label_smoothing > 0,
        HAS_GRAD=grad_out is not None, num_warps=num_warps,
    )
    return loss, lse


def _graph_kept():
    """True inside a backward that keeps the graph (retain_graph=True, gradcheck)."""
    get = getattr(torch._C._autograd, "_get_current_graph_task_keep_graph", None)
    # without the query (older torch) hand over: a second backward then raises clearly
    return False if get is None else bool(get())


class _CrossEntropyTriton(torch.autograd.Function):
    """Forward: loss and (when the logits need it) the gradient, in one launch.

    The gradient is scaled by s in the forward; the backward multiplies it by the
    upstream gradient (per row for 'none') in place in celib's buffer and hands
    the buffer over; under retain_graph=True it returns a scaled copy instead, so
    the graph can run again (except with inplace_backward, whose buffer is the logits).
    Not twice differentiable: a backward with create_graph=True raises RuntimeError.
    """

    @staticmethod
    def forward(ctx, logits, target, weight, spec, inplace):
        M, C = spec.M, spec.C
        if inplace:   # the rows must be a view of the logits (reshape may copy)
            moved = logits.movedim(spec.class_axis, -1)
            try:
                x = moved.view(M, C)
            except RuntimeError:
                x = None
            if x is None or x.stride(-1) != 1:
                raise ValueError("inplace_backward=True needs logits whose rows (classes "
                                 "last) are a view of their memory with contiguous classes, "
                                 "e.g. shape (N, C), (C,) or a channels-last (N, C, d1, d2); "
                                 f"got shape {tuple(logits.shape)} with strides "
                                 f"{tuple(logits.stride())}")
        else:
            x = spec.rows(logits)
            if x.stride(-1) != 1:
                x = x.contiguous()
        # int64 and contiguous: the kernel reads Y + row (a strided or expanded target would
        # be misread), and a uint8 tensor would index as a boolean mask
        y = target.reshape(M).long().contiguous()
        needs_grad = ctx.needs_input_grad[0]
        keep = y != spec.ignore_index
        if spec.reduction == "mean":
            w_y = keep.to(torch.float32) if weight is None else torch.where(
                keep, weight.to(torch.float32)[torch.where(keep, y, 0)], 0.0)
            denom = w_y.sum()
            # NaN for a zero denominator: the mean and every kept row's gradient, as torch
            scale = torch.where(denom != 0, 1.0 / denom, torch.full_like(denom, float("nan")))
        else:
            denom = None
            scale = torch.ones((), dtype=torch.float32, device=logits.device)
        grad = None
        if needs_grad:
            grad = x if inplace else torch.empty((M, C), dtype=logits.dtype, device=logits.device)
        loss, _ = cross_entropy_forward(x, y, weight, spec.ignore_index, spec.eps,
                                        scale.to(torch.float32), grad)
        if spec.reduction == "none":
            out = loss.reshape(spec.loss_shape)
        elif spec.reduction == "sum":
            out = loss.sum()
        else:
            out = torch.where(denom != 0, loss.sum() / denom, torch.full_like(denom, float("nan")))
        ctx.spec = spec
        ctx.grad = grad
        ctx.grad_is_view_of_logits = inplace
        if inplace and needs_grad:
            # the logits now hold the gradient: bump their version counter (a view's is its
            # base's), so that any backward that saved them raises instead of reading it
            torch.autograd.graph.increment_version(logits)
        return out.to(logits.dtype)

    @staticmethod
    def backward(ctx, grad_output):
        if torch.is_grad_enabled():
            # once_differentiable would return a gradient without a graph: a second-order
            # term through it would silently be 0
            raise RuntimeError("celib's Triton cross-entropy is not twice differentiable: "
                               "backward with create_graph=True (double backward, "
                               "Hessian-vector products) is not supported; use "
                               "backend='torch'")
        spec, grad = ctx.spec, ctx.grad
        if grad is None:
            if ctx.needs_input_grad[0]:
                raise RuntimeError(
                    "celib's Triton cross-entropy keeps one gradient buffer and hands it over "
                    "in backward; backward through it a second time is not supported")
            return None, None, None, None, None
        g = grad_output.reshape(spec.M, 1) if spec.reduction == "none" else grad_output
        if _graph_kept() and not ctx.grad_is_view_of_logits:
            # retain_graph=True (or gradcheck): the graph may run again, keep the buffer intact
            return spec.unrows(grad * g), None, None, None, None
        ctx.grad = None        # hand the buffer over, scaled in place
        if spec.reduction == "none" or not bool(grad_output == 1):  # one host sync for 'mean'/'sum'
            grad.mul_(g)
        return spec.unrows(grad), None, None, None, None


def cross_entropy_triton(logits, target, weight, spec, *, inplace_backward=False):
    """Run the fused kernel through its autograd Function (checks done by celib.torch_ops)."""
    if inplace_backward and logits.requires_grad and logits.is_leaf:
        raise RuntimeError("inplace_backward=True overwrites the logits, which a leaf tensor "
                           "that requires grad cannot allow; pass the output of an operation")
    return _CrossEntropyTriton.apply(logits, target, weight, spec, bool(inplace_backward))
