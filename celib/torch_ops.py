"""celib's torch path: cross-entropy as an autograd Function, and chunked linear cross-entropy.

Imported only on request (``import celib.torch_ops``): ``import celib`` works without torch.

Everything here follows the NumPy reference (``celib.reference``), whose
one idea carries every option: for each element n (a row of the logits after
moving the class axis last) an *effective target* a_n over the C classes and a
*scale* s_n (upstream gradient over the reduction's denominator), with

    loss_n  = sum_c a_nc * (lse_n - x_nc)
    dL/dx_n = s_n * (p_n * A_n - a_n),        A_n = sum_c a_nc.

For class-index targets a_n is kept sparse: a one-hot coefficient
alpha_n = (1 - eps) w[y_n] and a spread coefficient beta_n = eps / C (times w),
both 0 for an ignored target (``_IndexRows``); probability targets carry the
full a_n = ((1 - eps) q_n + eps / C) w, rebuilt a chunk of rows at a time
(``_ProbRows``). The forward saves one log-sum-exp per row; the backward
rebuilds p_n = exp(x_n - lse_n) chunk by chunk straight into the gradient.

Backends: ``"torch"`` (torch ops, any device), ``"triton"`` (the fused kernel of
``celib.triton_kernels``, imported lazily: only when that backend is
chosen), ``"auto"`` (Triton on CUDA when triton is installed, else torch).
"""

from __future__ import annotations

import importlib.util
import math

import numpy as np

try:
    import torch
except ImportError as exc:  # the NumPy reference works without torch; this module does not
    raise ImportError(
        "celib.torch_ops needs PyTorch, which is not installed: pip install 'celib[torch]' "
        "(or install torch itself, https://pytorch.org); import celib works without it"
    ) from exc

from . import _checks

__all__ = ["cross_entropy", "linear_cross_entropy"]

_FLOAT_DTYPES = (torch.float16, torch.bfloat16, torch.float32, torch.float64)
BACKENDS = ("auto", "torch", "triton")

# Rows per chunk: about this many elements of logits at a time, so the
# temporaries of one chunk stay in cache on a CPU and the loop stays short on a GPU.
_CHUNK_ELEMENTS = {"cpu": 1 << 20, "cuda": 1 << 26}


# ---------------------------------------------------------------------------
# checks: the shared helpers of celib._checks on zero-size summaries
# ---------------------------------------------------------------------------

def _numpy_dtype(dtype):
    """A NumPy dtype of the same kind (bfloat16 reads as float32: it only passes float checks)."""
    if dtype == torch.bfloat16:
        return np.dtype(np.float32)
    return torch.empty((), dtype=dtype).numpy().dtype


def _summary(t):
    """A read-only, zero-stride NumPy array with ``t``'s shape and dtype kind.

    The checks in celib._checks look at shapes and dtypes only; this gives them
    both without copying the tensor (it may live on a GPU).
    """
    return np.broadcast_to(np.zeros((), _numpy_dtype(t.dtype)), tuple(t.shape))


def _check_tensor(t, name):
    if not isinstance(t, torch.Tensor):
        raise TypeError(f"{name} must be a torch.Tensor, got {type(t).__name__}")


def _check_float_tensor(t, name):
    _check_tensor(t, name)
    if t.dtype not in _FLOAT_DTYPES:
        raise TypeError(
            f"{name} must hold floating-point numbers (float16, bfloat16, float32 or "
            f"float64), got dtype {t.dtype}"
        )


def _check_class_indices(target, num_classes, ignore_index):
    """IndexError naming the first index outside [0, C) that is not ignore_index (vectorised)."""
    bad = (target != ignore_index) & ((target < 0) | (target >= num_classes))
    if bool(bad.any()):
        flat = int(torch.nonzero(bad.reshape(-1))[0, 0])
        position = tuple(int(i) for i in np.unravel_index(flat, tuple(target.shape)))
        value = int(target.reshape(-1)[flat])
        valid = f"0 to {num_classes - 1}, or " if num_classes else "none but "
        raise IndexError(   # the message of celib._checks.check_class_indices
            f"target {value} at position {position} is out of bounds for {num_classes} "
            f"classes (valid: {valid}ignore_index={ignore_index})"
        )


def _compute_dtype(dtype):
    """float32 for float16, bfloat16 and float32; float64 for float64."""
    return torch.float64 if dtype == torch.float64 else torch.float32


class _Spec:
    """Checked options and the shape bookkeeping of one call, shared by the backends."""

    def __init__(self, logits, target, weight, ignore_index, reduction, label_smoothing):
        _check_float_tensor(logits, "logits")
        _check_tensor(target, "target")
        _checks.check_reduction(reduction)
        self.eps = _checks.check_label_smoothing(label_smoothing)
        class_axis, C = _checks.split_class_axis(logits)
        self.kind = _checks.target_kind(_summary(logits), _summary(target))
        if weight is not None:
            _check_float_tensor(weight, "weight")
            _checks.check_weight(_summary(weight), C)
            if weight.requires_grad and torch.is_grad_enabled():
                # torch raises too (nll_loss is not differentiable in weight); a silent
                # None gradient would leave a trained weight unchanged
                raise RuntimeError("weight requires grad, but the loss is not differentiable "
                                   "with respect to the class weights (as in torch); pass "
                                   "weight.detach()")
            if weight.device != logits.device and logits.device.type != "meta":
                raise ValueError(f"weight is on {weight.device} but logits on {logits.device}")
        if target.device != logits.device and logits.device.type != "meta":
            raise ValueError(f"target is on {target.device} but logits on {logits.device}")
        self.ignore_index = _checks.check_ignore_index(ignore_index)
        if self.kind == "indices":
            _check_class_indices(target, C, self.ignore_index)
        else:
            _checks.check_probability_options(self.ignore_index)
        self.reduction = reduction
        self.class_axis = class_axis
        self.C = C
        self.shape = tuple(logits.shape)
        self.loss_shape = self.shape[:class_axis] + self.shape[class_axis + 1:]
        self.moved_shape = self.loss_shape + (C,)
        self.M = math.prod(self.loss_shape)

    def rows(self, t):
        """(..., C, ...) -> (M, C): the class axis last, everything else flattened (a view when possible)."""
        return t.movedim(self.class_axis, -1).reshape(self.M, self.C)

    def unrows(self, t):
        """Inverse of :meth:`rows` (a view)."""
        return t.reshape(self.moved_shape).movedim(-1, self.class_axis)


# ---------------------------------------------------------------------------
# the effective target a_n
# ---------------------------------------------------------------------------

class _IndexRows:
    """a_n = alpha_n onehot(y_n) + beta_n w, for class indices (sparse, O(M) memory).

    alpha_n = (1 - eps) w[y_n] and beta_n = eps / C for a kept target, both 0 for
    an ignored one (ATen's cross_entropy_loss_label_smoothing). w is all ones
    without class weights (then it is not materialised: ``w is None``).
    """

    def __init__(self, y, C, weight, ignore_index, eps, dtype):
        self.keep = y != ignore_index
        # int64 for indexing: a uint8 tensor would index as a boolean mask
        self.y = torch.where(self.keep, y, torch.zeros((), dtype=y.dtype, device=y.device)).long()
        self.w = None if weight is None else weight.to(dtype)
        w_y = self.keep.to(dtype) if self.w is None or C == 0 else torch.where(
            self.keep, self.w[self.y], torch.zeros((), dtype=dtype, device=y.device))
        self.w_y = w_y
        self.alpha = (1.0 - eps) * w_y
        self.eps = eps
        self.beta = self.keep.to(dtype) * (eps / C) if eps and C else None
        self.sum_w = float(C) if self.w is None else self.w.sum()
        self.C = C

    def mass(self):
        """A_n = sum_c a_nc = alpha_n + beta_n sum(w)."""
        return self.alpha if self.beta is None else self.alpha + self.beta * self.sum_w

    def at_target(self):
        """a_{n, y_n} = alpha_n + beta_n w[y_n]."""
        return self.alpha if self.beta is None else self.alpha + self.beta * self.w_y

    def mean_denominator(self):
        """sum of w[y_n] over kept targets (their count without weights)."""
        return self.w_y.sum()

    def loss(self, x, lse, lo, hi):
        """loss_n for rows lo:hi of x (compute dtype), terms with a_nc = 0 skipped."""
        if self.C == 0:   # no classes: every target is ignored (checked), no loss
            return x.new_zeros(hi - lo)
        rows = torch.arange(hi - lo, device=x.device)
        y = self.y[lo:hi]
        alpha = self.alpha[lo:hi]
        x_y = x[rows, y]
        loss = _times(alpha, lse - x_y)
        if self.beta is not None:
            if self.w is None:   # sum_c (lse - x_c) over all C classes
                spread = lse * self.C - x.sum(dim=1)
            else:                # sum_c w_c (lse - x_c), classes with w_c = 0 skipped
                spread = torch.where(self.w != 0, lse[:, None] - x, 0.0) @ self.w
            loss = loss + _times(self.beta[lo:hi], spread)
        return torch.where(self.keep[lo:hi], loss, 0.0)

    def subtract_from(self, g, s, lo, hi):
        """g -= s * a for rows lo:hi, except the true class (set by the caller)."""
        if self.beta is not None:
            sb = (s * self.beta[lo:hi])[:, None]
            if self.w is None:
                g.sub_(sb)
            else:
                g.sub_(sb * self.w)


class _ProbRows:
    """a_n = ((1 - eps) q_n + eps / C) w for probability targets, built per chunk of rows."""

    def __init__(self, q_rows, C, weight, eps, dtype):
        self.q = q_rows
        self.w = None if weight is None else weight.to(dtype)
        self.eps = eps
        self.C = C
        self.dtype = dtype

    def a(self, lo, hi):
        a = self.q[lo:hi].to(self.dtype)
        if self.eps and self.C:
            a = (1.0 - self.eps) * a + self.eps / self.C
        if self.w is not None:
            a = a * self.w
        return a

    def mean_denominator(self, M, device):
        """The number of elements M, whatever the weights; 0 without classes (a NaN mean)."""
        return torch.tensor(float(M) if self.C else 0.0, dtype=self.dtype, device=device)

    def loss(self, x, lse, lo, hi):
        a = self.a(lo, hi)
        return torch.where(a != 0, a * (lse[:, None] - x), 0.0).sum(dim=1)


def _logsumexp_(x, out):
    """lse of each row of x into ``out``; NaN (not torch's +inf) for a row holding +inf.

    Such a row has no softmax: the reference's log-probabilities, loss and gradient
    are NaN there, as torch's; lse = +inf would give a loss of +inf instead.
    """
    torch.logsumexp(x, dim=1, out=out)
    return out.masked_fill_(out == math.inf, math.nan)


def _times(coef, value):
    """coef * value, but exactly 0 where coef is 0 (even where value is inf)."""
    return torch.where(coef != 0, coef * value, 0.0)


def _chunk_rows(M, C, device):
    per = _CHUNK_ELEMENTS.get(device.type, 1 << 22)
    return max(1, min(M, per // max(C, 1))) if M else 1


# ---------------------------------------------------------------------------
# the torch backend: an autograd Function saving one lse per row
# ---------------------------------------------------------------------------

class _CrossEntropyTorch(torch.autograd.Function):
    """Forward: lse_n and loss_n by chunks of rows. Backward: s_n (p_n A_n - a_n), in closed form.

    Saves the logits (a reference, not a copy), lse (M numbers), and, by reference,
    a probability target and the weight (so that changing them in place before the
    backward is refused, as in torch). Under create_graph=True the backward is written
    in differentiable torch ops instead (double backward).
    """

    @staticmethod
    def forward(ctx, logits, target, weight, spec):
        cdt = _compute_dtype(logits.dtype)
        x_all = spec.rows(logits)
        M, C = spec.M, spec.C
        if spec.kind == "indices":
            tgt = _IndexRows(target.reshape(M), C, weight, spec.ignore_index, spec.eps, cdt)
            denom = tgt.mean_denominator()
        else:
            tgt = _ProbRows(spec.rows(target), C, weight, spec.eps, cdt)
            denom = tgt.mean_denominator(M, logits.device)
        lse = torch.empty(M, dtype=cdt, device=logits.device)
        loss = torch.empty(M, dtype=cdt, device=logits.device)
        step = _chunk_rows(M, C, logits.device)
        for lo in range(0, M, step):
            hi = min(M, lo + step)
            x = x_all[lo:hi].to(cdt)
            _logsumexp_(x, lse[lo:hi])
            loss[lo:hi] = tgt.loss(x, lse[lo:hi], lo, hi)

        if spec.reduction == "none":
            out = loss.reshape(spec.loss_shape)
        elif spec.reduction == "sum":
            out = loss.sum()
        else:  # a zero denominator (empty, all ignored, all kept of weight 0): NaN, as torch
            out = _mean(loss.sum(), denom)
        ctx.spec, ctx.tgt, ctx.denom = spec, tgt, denom
        # the probability target and the weight are read again in backward: saved, so that
        # autograd's version counter refuses them if modified in place meanwhile (as torch)
        ctx.save_for_backward(logits, lse, target if spec.kind != "indices" else None, weight)
        return out.to(logits.dtype)

    @staticmethod
    def backward(ctx, grad_output):
        logits, lse, target, _ = ctx.saved_tensors
        spec, tgt = ctx.spec, ctx.tgt
        if torch.is_grad_enabled():   # create_graph=True: a backward autograd can differentiate
            return _grad_differentiable(logits, target, spec, tgt, ctx.denom, grad_output,
                                        ctx.needs_input_grad[:2]) + (None, None)
        grad_logits = grad_target = None
        if ctx.needs_input_grad[0]:
            grad_logits = _grad_torch(logits, lse, spec, tgt, ctx.denom, grad_output)
        if ctx.needs_input_grad[1]:  # probability targets only (indices are integers)
            grad_target = _grad_target_torch(logits, lse, spec, tgt, ctx.denom, grad_output)
        return grad_logits, grad_target, None, None


def _scale(spec, denom, grad_output, cdt):
    """s_n as an (M,) tensor (or a 0-d tensor for 'mean' and 'sum')."""
    g = grad_output.to(cdt)
    if spec.reduction == "none":
        return g.reshape(spec.M)
    if spec.reduction == "sum":
        return g
    return _mean(g, denom)   # NaN for a zero denominator, like the loss


def _mean(total, denom):
    """total / denom, NaN where denom is 0 (the reference's and torch's 'mean' of nothing)."""
    return torch.where(denom != 0, total / denom, torch.full_like(total, float("nan")))


def _grad_torch(logits, lse, spec, tgt, denom, grad_output):
    """dL/dx = s_n (p_n A_n - a_n), written chunk by chunk into one new tensor."""
    cdt = _compute_dtype(logits.dtype)
    M, C = spec.M, spec.C
    s_all = _scale(spec, denom, grad_output, cdt)
    x_all = spec.rows(logits)
    grad = torch.empty((M, C), dtype=logits.dtype, device=logits.device)
    direct = logits.dtype == cdt   # compute in place in grad (no float32 staging)
    step = _chunk_rows(M, C, logits.device)
    for lo in range(0, M, step):
        hi = min(M, lo + step)
        s = s_all if s_all.dim() == 0 else s_all[lo:hi]
        out = grad[lo:hi] if direct else torch.empty((hi - lo, C), dtype=cdt, device=grad.device)
        torch.sub(x_all[lo:hi].to(cdt), lse[lo:hi, None], out=out)
        _grad_rows_(out, None, tgt, s, lo, hi)
        if not direct:
            grad[lo:hi].copy_(out)
    return spec.unrows(grad)


def _grad_differentiable(logits, target, spec, tgt, denom, grad_output, want):
    """The gradients of :func:`_grad_torch` and :func:`_grad_target_torch` in differentiable
    torch ops, for a backward with create_graph=True (double backward, Hessian-vector
    products). Unchunked, M x C temporaries; the true class's gradient is formed as
    p_y A - a_y (without the confident-row rewriting).
    """
    cdt = _compute_dtype(logits.dtype)
    x = spec.rows(logits).to(cdt)
    s = _scale(spec, denom, grad_output, cdt)
    s = s[:, None] if s.dim() else s
    lse = torch.logsumexp(x, dim=1, keepdim=True)
    lse = torch.where(lse == math.inf, math.nan, lse)       # as _logsumexp_
    w = 1.0 if tgt.w is None else tgt.w
    if isinstance(tgt, _IndexRows):
        a = torch.zeros_like(x).scatter_(1, tgt.y[:, None], tgt.alpha[:, None])
        if tgt.beta is not None:
            a = a + tgt.beta[:, None] * w
        keep = tgt.keep[:, None]
    else:
        a = spec.rows(target).to(cdt)
        if tgt.eps and tgt.C:
            a = (1.0 - tgt.eps) * a + tgt.eps / tgt.C
        a = a * w
        keep = None
    grad_logits = grad_target = None
    if want[0]:
        g = s * (torch.exp(x - lse) * a.sum(dim=1, keepdim=True) - a)
        if keep is not None:   # ignored rows: exactly 0
            g = torch.where(keep, g, 0.0)
        grad_logits = spec.unrows(g.to(logits.dtype))
    if want[1]:
        grad_target = spec.unrows(((lse - x) * (s * (1.0 - tgt.eps)) * w).to(target.dtype))
    return grad_logits, grad_target


def _grad_rows_(out, lse, tgt, s, lo, hi):
    """Rows lo:hi: ``out`` holds the logits x (compute dtype) and is overwritten with s (p A - a).

    s is a 0-d tensor or one value per row; lse one value per row, or None when
    ``out`` already holds x - lse.
    """
    if lse is not None:
        out.sub_(lse[:, None])
    out.exp_()                                          # p = exp(x - lse)
    if out.shape[1] == 0:                               # no classes, no gradient
        return out
    if isinstance(tgt, _IndexRows):
        rows = torch.arange(hi - lo, device=out.device)
        y = tgt.y[lo:hi]
        A = tgt.mass()[lo:hi]
        # the true class without cancellation (the reference's confident-row trick):
        # p_y A - a_y = A (p_y - 1) + (A - a_y), with 1 - p_y = the sum of the other p_c
        out.scatter_(1, y[:, None], 0.0)
        others = out.sum(dim=1)
        g_y = s * (A * (-others) + (A - tgt.at_target()[lo:hi]))
        out.mul_((s * A)[:, None])                      # s p A
        tgt.subtract_from(out, s, lo, hi)               # - s beta w
        out[rows, y] = g_y.to(out.dtype)
        keep = tgt.keep[lo:hi]
        if out.device.type != "cpu" or not bool(keep.all()):   # (no sync on a GPU)
            out.masked_fill_(~keep[:, None], 0.0)  # ignored: exactly zero, even if p is NaN
    else:
        a = tgt.a(lo, hi)
        A = a.sum(dim=1)
        sv = s if s.dim() == 0 else s[:, None]
        out.mul_(A[:, None]).sub_(a).mul_(sv)
    return out


def _grad_target_torch(logits, lse, spec, tgt, denom, grad_output):
    """dL/dq_nc = s_n (1 - eps) w_c (lse_n - x_nc) for probability targets q."""
    cdt = _compute_dtype(logits.dtype)
    s_all = _scale(spec, denom, grad_output, cdt)
    s = s_all[:, None] if s_all.dim() else s_all
    g = (lse[:, None] - spec.rows(logits).to(cdt)) * (s * (1.0 - tgt.eps))
    if tgt.w is not None:
        g = g * tgt.w
    return spec.unrows(g.to(tgt.q.dtype))


# ---------------------------------------------------------------------------
# the public function
# ---------------------------------------------------------------------------

def _triton_available():
    return importlib.util.find_spec("triton") is not None


def _resolve_backend(backend, logits):
    if backend not in BACKENDS:
        raise ValueError(f"backend must be one of {BACKENDS}, got {backend!r}")
    if backend == "auto":
        return "triton" if logits.is_cuda and _triton_available() else "torch"
    if backend == "triton" and not _triton_available():
        raise RuntimeError("backend='triton' needs the triton package, which is not installed")
    return backend


def cross_entropy(logits, target, *, weight=None, ignore_index=-100, reduction="mean",
                  label_smoothing=0.0, backend="auto", inplace_backward=False):
    """Cross-entropy with PyTorch's semantics and a closed-form backward.

    Same options, shapes and results as ``torch.nn.functional.cross_entropy``
    and :func:`celib.cross_entropy` (with the reference's deliberate
    deviation: a class whose effective target is exactly 0 contributes exactly 0
    loss, even at a -inf logit). The backward is dL/dx_n = s_n (p_n A_n - a_n);
    the forward saves one log-sum-exp per row, never the M x C log-probabilities.

    Parameters
    ----------
    logits : torch.Tensor, float16/bfloat16/float32/float64, shape (C,), (N, C) or (N, C, d1, ..., dk)
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
    torch.Tensor of logits' dtype
        Shape () for 'mean' and 'sum'; the loss shape (logits' shape without the
        class axis) for 'none'. A row holding a +inf logit has no softmax: its loss
        and gradient are NaN (unless the row is ignored). The torch backend is twice
        differentiable (create_graph=True); the Triton backend raises there.

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
    RuntimeError
        ``weight`` requires grad while grad mode is on (not differentiable in it, as torch).
    """
    spec = _Spec(logits, target, weight, ignore_index, reduction, label_smoothing)
    chosen = _resolve_backend(backend, logits)
    if inplace_backward and chosen != "triton":
        raise ValueError("inplace_backward=True needs backend='triton' (or 'auto' on CUDA)")
    if chosen == "triton" and spec.kind == "indices" and logits.dtype != torch.float64:
        from . import triton_kernels  # lazily: importing triton is costly and env-sensitive
        return triton_kernels.cross_entropy_triton(logits, target, weight, spec,
                                                   inplace_backward=inplace_backward)
    if inplace_backward:
        raise ValueError("inplace_backward=True supports class-index targets and 16/32-bit "
                         "logits only (the other cases run on the torch backend)")
    return _CrossEntropyTorch.apply(logits, target, weight, spec)


# ---------------------------------------------------------------------------
# linear cross-entropy: input @ linear_weight.T + linear_bias, a chunk of rows at a time
# ---------------------------------------------------------------------------

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
        raise RuntimeError(f"{what} is not twice differentiable: backward with "
                           "create_graph=True (double backward, Hessian-vector products) "
                           "is not supported; use celib.torch_ops.cross_entropy with "
                           "backend='torch' on the logits")


def _linear_chunk_rows(N, V, device):
    """Rows per chunk: about 2^27 logits on a GPU (1 GiB in float32 at most), 2^20 on a CPU."""
    per = (1 << 27) if device.type == "cuda" else (1 << 20)
    return max(1, min(max(N, 1), per // max(V, 1)))


def _linear_pass(x, W, b, tgt, spec, s_all, lse_out, loss_out, want, chunk):
    """One sweep over chunks of rows: logits, loss, and (if ``want``) the gradients.

    For a chunk c of rows: z_c = x_c W^T + b in the parameters' dtype; lse and loss
    in the compute dtype; then g_c = s (p A - a) in place of the logits and
    dL/dx_c = g_c W, dL/dW += g_c^T x_c, dL/db += sum_rows g_c. ``want`` is a
    triple of booleans (input, weight, bias); s_all as from :func:`_scale`, or None
    when no gradient is wanted. Memory: one chunk of logits plus the gradients.
    """
    N, V = spec.M, spec.C
    cdt = _compute_dtype(x.dtype)
    want_x, want_w, want_b = want
    gx = torch.empty_like(x) if want_x else None
    gw = torch.zeros_like(W) if want_w else None
    gb = torch.zeros(V, dtype=cdt, device=x.device) if want_b else None
    any_grad = s_all is not None and (want_x or want_w or want_b)
    use_triton = _linear_uses_triton(x, tgt)
    for lo in range(0, N, chunk):
        hi = min(N, lo + chunk)
        z = x[lo:hi] @ W.T if b is None else torch.addmm(b, x[lo:hi], W.T)
        if use_triton:
            from . import triton_kernels
            s = s_all if s_all is None or s_all.dim() == 0 else s_all[lo:hi]
            one = torch.ones((), dtype=torch.float32, device=x.device)
            scale = one if s is None or s.dim() else s.to(torch.float32)
            loss, lse = triton_kernels.cross_entropy_forward(
                z, tgt.y_raw[lo:hi], tgt.w, spec.ignore_index, spec.eps, scale,
                z if any_grad else None)
            if any_grad and s is not None and s.dim():
                z.mul_(s[:, None].to(z.dtype))          # per-row upstream gradient ('none')
            g = z
        else:
            zc = z.to(cdt)
            lse = _logsumexp_(zc, torch.empty(hi - lo, dtype=cdt, device=zc.device))
            loss = tgt.loss(zc, lse, lo, hi)
            g = None
            if any_grad:
                s = s_all if s_all.dim() == 0 else s_all[lo:hi]
                g = _grad_rows_(zc, lse, tgt, s, lo, hi).to(x.dtype)
            del z
        if lse_out is not None:
            lse_out[lo:hi] = lse
        if loss_out is not None:
            loss_out[lo:hi] = loss
        if any_grad:
            if want_x:
                torch.mm(g, W, out=gx[lo:hi])
            if want_w:
                gw.addmm_(g.T, x[lo:hi])
            if want_b:
                gb += g.sum(dim=0, dtype=cdt)
        del g
    return gx, gw, (None if gb is None else gb.to(W.dtype))


def _linear_uses_triton(x, tgt):
    """The fused kernel for each chunk on CUDA (class indices, 16/32-bit); torch ops otherwise."""
    return (x.is_cuda and isinstance(tgt, _IndexRows) and x.dtype != torch.float64
            and _triton_available())


class _LinearCrossEntropy(torch.autograd.Function):
    """'mean' and 'sum': gradients computed during the forward, scaled in backward.
    'none': the forward computes the loss only; the backward recomputes each chunk's
    logits and applies the per-row upstream gradient (one more matmul per chunk).
    """

    @staticmethod
    def forward(ctx, x, W, b, target, weight, spec, chunk):
        cdt = _compute_dtype(x.dtype)
        N = spec.M
        tgt = _linear_target(target, spec, weight, cdt)
        denom = (tgt.mean_denominator() if isinstance(tgt, _IndexRows)
                 else tgt.mean_denominator(N, x.device))
        want = tuple(ctx.needs_input_grad[:3])
        loss = torch.empty(N, dtype=cdt, device=x.device)
        lse = torch.empty(N, dtype=cdt, device=x.device)
        precompute = spec.reduction != "none" and any(want)
        s = _scale(spec, denom, torch.ones((), dtype=cdt, device=x.device), cdt) \
            if precompute else None
        grads = _linear_pass(x, W, b, tgt, spec, s, lse, loss, want, chunk)
        if spec.reduction == "none":
            out = loss.reshape(spec.loss_shape)
        elif spec.reduction == "sum":
            out = loss.sum()
        else:
            out = _mean(loss.sum(), denom)
        ctx.spec, ctx.tgt, ctx.denom, ctx.chunk, ctx.want = spec, tgt, denom, chunk, want
        if precompute:
            ctx.grads = grads
        else:
            ctx.grads = None
            ctx.save_for_backward(x, W, b, lse)
        return out.to(x.dtype)

    @staticmethod
    def backward(ctx, grad_output):
        _refuse_create_graph("celib's linear_cross_entropy")
        with torch.no_grad():
            return _LinearCrossEntropy._backward(ctx, grad_output)

    @staticmethod
    def _backward(ctx, grad_output):
        spec = ctx.spec
        if spec.reduction != "none":
            if ctx.grads is None:
                raise RuntimeError(
                    "celib's linear_cross_entropy computes its gradients in the forward and "
                    "hands them over in backward; backward through it a second time is not "
                    "supported")
            grads = ctx.grads
            if _graph_kept():  # the graph may be run again: leave the stored gradients intact
                grads = tuple(None if g is None else g * grad_output.to(g.dtype) for g in grads)
            else:              # hand the buffers over, scaled in place
                ctx.grads = None
                if not bool(grad_output == 1):  # one host sync; skips a pass for the usual 1
                    grads = tuple(None if g is None else g.mul_(grad_output.to(g.dtype))
                                  for g in grads)
        else:
            x, W, b, _ = ctx.saved_tensors
            s = _scale(spec, ctx.denom, grad_output, _compute_dtype(x.dtype))
            grads = _linear_pass(x, W, b, ctx.tgt, spec, s, None, None, ctx.want, ctx.chunk)
        gx, gw, gb = grads
        return gx, gw, gb, None, None, None, None


def _linear_target(target, spec, weight, cdt):
    if spec.kind == "indices":
        y = target.reshape(spec.M)
        tgt = _IndexRows(y, spec.C, weight, spec.ignore_index, spec.eps, cdt)
        tgt.y_raw = y.contiguous()   # the kernel reads the indices with unit stride
        return tgt
    return _ProbRows(target.reshape(spec.M, spec.C), spec.C, weight, spec.eps, cdt)


def linear_cross_entropy(input, linear_weight, target, *, linear_bias=None, weight=None,
                         reduction="mean", ignore_index=-100, label_smoothing=0.0,
                         chunk_size=None):
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
        Rows per chunk (a Python or NumPy integer, at least 1); default about 2^27 / V rows on CUDA and 2^20 / V on a CPU.

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
    backward recomputes each chunk's logits (one more matmul per chunk). 16-bit
    parameter gradients are accumulated across chunks in their own dtype (the
    matmuls accumulate in float32 within a chunk). Not twice differentiable: a
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
        _check_float_tensor(t, name)
    if input.dim() not in (1, 2):
        raise ValueError(f"input must have shape (H,) or (N, H), got shape {tuple(input.shape)}")
    if linear_weight.dim() != 2:
        raise ValueError("linear_weight must have shape (V, H), got shape "
                         f"{tuple(linear_weight.shape)} (K-dimensional weights are not supported)")
    V, H = linear_weight.shape
    if input.shape[-1] != H:
        raise ValueError(f"input of shape {tuple(input.shape)} does not match linear_weight of "
                         f"shape {tuple(linear_weight.shape)}: expected last dimension {H}")
    if linear_bias is not None:
        _check_float_tensor(linear_bias, "linear_bias")
        if tuple(linear_bias.shape) != (V,):
            raise ValueError(f"linear_bias of shape {tuple(linear_bias.shape)} does not match "
                             f"linear_weight of shape {tuple(linear_weight.shape)}: expected ({V},)")
    for t, name in ((linear_weight, "linear_weight"), (linear_bias, "linear_bias")):
        if t is not None and t.dtype != input.dtype:
            raise TypeError(f"{name} has dtype {t.dtype} but input has dtype {input.dtype}")
    if ignore_index is None:
        ignore_index = -100
    logits_meta = torch.empty(tuple(input.shape[:-1]) + (V,), dtype=input.dtype, device="meta")
    spec = _Spec(logits_meta, target, weight, ignore_index, reduction, label_smoothing)
    for t, name in ((target, "target"), (linear_weight, "linear_weight"),
                    (linear_bias, "linear_bias"), (weight, "weight")):
        if t is not None and t.device != input.device:
            raise ValueError(f"{name} is on {t.device} but input on {input.device}")
    if chunk_size is None:
        chunk_size = _linear_chunk_rows(spec.M, V, input.device)
    elif isinstance(chunk_size, (bool, np.bool_)) or not isinstance(chunk_size, (int, np.integer)):
        raise TypeError(f"chunk_size must be an integer number of rows, got {chunk_size!r}")
    elif chunk_size < 1:
        raise ValueError(f"chunk_size must be a positive number of rows, got {chunk_size!r}")
    x = input.reshape(spec.M, H)
    if x.stride(-1) != 1:
        x = x.contiguous()
    return _LinearCrossEntropy.apply(x, linear_weight, linear_bias, target, weight, spec,
                                     int(chunk_size))
