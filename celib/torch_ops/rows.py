"""The effective target a_n of each row, and the row-wise formulas both torch paths share.

For class indices a_n is kept sparse (:class:`IndexRows`): a one-hot coefficient
alpha_n = (1 - eps) w[y_n] and a spread coefficient beta_n = eps / C (times w),
both 0 for an ignored target; probability targets carry the full
a_n = ((1 - eps) q_n + eps / C) w, rebuilt a chunk of rows at a time
(:class:`ProbRows`). With lse_n = m_n + log S_n (m_n the row's maximum),

    loss_n  = sum_c a_nc (log S_n - (x_nc - m_n))
    dL/dx_n = s_n (p_n A_n - a_n),        A_n = sum_c a_nc,

the loss formed from the shifted logits x - m, so that a large common offset of
the logits cancels exactly (as in the reference).
"""

from __future__ import annotations

import math

import torch

# Rows per chunk: about this many elements of logits at a time, so the
# temporaries of one chunk stay in cache on a CPU and the loop stays short on a GPU.
_CHUNK_ELEMENTS = {"cpu": 1 << 20, "cuda": 1 << 26}


def times(coef, value):
    """coef * value, but exactly 0 where coef is 0 (even where value is inf)."""
    return torch.where(coef != 0, coef * value, 0.0)


# Exponents at or below these give results under the dtype's smallest normal number
# (float32: 1.2e-38): they are flushed to 0 instead. A CPU computes with subnormal
# numbers 10 to 100 times more slowly (a confident row, whose other classes sit 100
# below the true one, ran 27x slower than torch); the values lost are below 1.2e-38.
_EXP_FLOOR = {torch.float32: -87.33, torch.float64: -708.39}


_EXP_AT_FLOOR = {dtype: math.exp(floor) for dtype, floor in _EXP_FLOOR.items()}


def exp_flushed_(t):
    """exp of ``t`` in place, results below the smallest normal number flushed to 0 (NaN kept).

    Clamped to the floor first, so that exp only ever returns normal numbers (exp of
    -inf or of -200 is slow too), then every result at exp(floor) is set to 0.
    """
    floor = _EXP_FLOOR.get(t.dtype)
    if floor is None:
        return t.exp_()
    t.clamp_(min=floor).exp_()
    return torch.nn.functional.threshold_(t, _EXP_AT_FLOOR[t.dtype], 0.0)  # t <= th -> 0


def no_softmax_is_nan(loss, log_S):
    """NaN for a row with no softmax (a NaN or +inf logit, or all -inf), as torch and the
    reference, even where its effective target carries no mass."""
    return torch.where(torch.isfinite(log_S), loss, math.nan)


class IndexRows:
    """a_n = alpha_n onehot(y_n) + beta_n w, for class indices (sparse, O(M) memory).

    alpha_n = (1 - eps) w[y_n] and beta_n = eps / C for a kept target, both 0 for
    an ignored one (ATen's cross_entropy_loss_label_smoothing). w is all ones
    without class weights (then it is not materialised: ``w is None``).
    """

    def __init__(self, y, C, weight, ignore_index, eps, dtype):
        y = y.long()  # int64: a uint8 target would wrap ignore_index and index as a mask
        self.keep = y != ignore_index
        self.y = torch.where(self.keep, y, 0)
        self.w = None if weight is None else weight.to(dtype)
        w_y = (
            self.keep.to(dtype)
            if self.w is None or C == 0
            else torch.where(
                self.keep, self.w[self.y], torch.zeros((), dtype=dtype, device=y.device)
            )
        )
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

    def mean_denominator(self, M=None, device=None):
        """sum of w[y_n] over kept targets (their count without weights)."""
        return self.w_y.sum()

    def loss(self, x, m, log_S, lo, hi):
        """loss_n for rows lo:hi of x (compute dtype), terms with a_nc = 0 skipped."""
        if self.C == 0:  # no classes: every target is ignored (checked), no loss
            return x.new_zeros(hi - lo)
        rows = torch.arange(hi - lo, device=x.device)
        y = self.y[lo:hi]
        loss = times(self.alpha[lo:hi], log_S - (x[rows, y] - m))
        if self.beta is not None:
            shifted = x - m[:, None]
            if self.w is None:  # sum_c (log S - (x_c - m)) over all C classes
                spread = log_S * self.C - shifted.sum(dim=1)
            else:  # sum_c w_c (...), classes with w_c = 0 skipped
                spread = torch.where(self.w != 0, log_S[:, None] - shifted, 0.0) @ self.w
            loss = loss + times(self.beta[lo:hi], spread)
        return torch.where(self.keep[lo:hi], no_softmax_is_nan(loss, log_S), 0.0)

    def subtract_from(self, g, s, lo, hi):
        """g -= s * a for rows lo:hi, except the true class (set by the caller)."""
        if self.beta is not None:
            sb = (s * self.beta[lo:hi])[:, None]
            g.sub_(sb if self.w is None else sb * self.w)

    def dense(self, lo, hi):
        """a for rows lo:hi as an (hi - lo, C) tensor (differentiable paths)."""
        n = hi - lo
        a = torch.zeros((n, self.C), dtype=self.alpha.dtype, device=self.alpha.device)
        a = a.scatter(1, self.y[lo:hi, None], self.alpha[lo:hi, None])
        if self.beta is not None:
            a = a + self.beta[lo:hi, None] * (1.0 if self.w is None else self.w)
        return a


class ProbRows:
    """a_n = ((1 - eps) q_n + eps / C) w for probability targets, built per chunk of rows."""

    def __init__(self, q_rows, C, weight, eps, dtype):
        self.q = q_rows
        self.w = None if weight is None else weight.to(dtype)
        self.eps = eps
        self.C = C
        self.dtype = dtype

    def a(self, lo, hi, q=None):
        a = (self.q if q is None else q)[lo:hi].to(self.dtype)
        if self.eps and self.C:
            a = (1.0 - self.eps) * a + self.eps / self.C
        if self.w is not None:
            a = a * self.w
        return a

    dense = a

    def mean_denominator(self, M, device):
        """The number of elements M, whatever the weights; 0 without classes (a NaN mean)."""
        return torch.tensor(float(M) if self.C else 0.0, dtype=self.dtype, device=device)

    def loss(self, x, m, log_S, lo, hi):
        a = self.a(lo, hi)
        loss = torch.where(a != 0, a * (log_S[:, None] - (x - m[:, None])), 0.0).sum(dim=1)
        return no_softmax_is_nan(loss, log_S) if self.C else loss

    def grad_target(self, x, m, log_S, s, lo, hi):
        """dL/dq_nc = s_n (1 - eps) w_c (lse_n - x_nc) for rows lo:hi."""
        s = s[:, None] if s.dim() else s
        g = (log_S[:, None] - (x - m[:, None])) * (s * (1.0 - self.eps))
        return g if self.w is None else g * self.w


def lse_parts(x, lse_out=None):
    """m_n (the row maximum, 0 for a row of all -inf) and log S_n = log sum_c exp(x_nc - m_n).

    lse = m + log S is written into ``lse_out`` when given: NaN (not torch's +inf) for a
    row holding +inf, which has no softmax; -inf for a row of all -inf or no classes.
    """
    M, C = x.shape
    if C == 0:
        m = x.new_zeros(M)
        log_S = x.new_full((M,), -math.inf)
    else:
        m = x.amax(dim=1)
        m = torch.where(m == -math.inf, 0.0, m)
        log_S = exp_flushed_(x - m[:, None]).sum(dim=1).log_()  # +inf row: NaN
    if lse_out is not None:
        torch.add(m, log_S, out=lse_out)
        lse_out.masked_fill_(lse_out == math.inf, math.nan)
    return m, log_S


def chunk_rows(M, C, device):
    per = _CHUNK_ELEMENTS.get(device.type, 1 << 22)
    return max(1, min(M, per // max(C, 1))) if M else 1


def mean(total, denom):
    """total / denom, NaN where denom is 0 (the reference's and torch's 'mean' of nothing)."""
    return torch.where(denom != 0, total / denom, torch.full_like(total, float("nan")))


def scale(spec, denom, grad_output, cdt):
    """s_n as an (M,) tensor (or a 0-d tensor for 'mean' and 'sum')."""
    g = grad_output.to(cdt)
    if spec.reduction == "none":
        return g.reshape(spec.M)
    if spec.reduction == "sum":
        return g
    return mean(g, denom)  # NaN for a zero denominator, like the loss


def reduce(spec, loss, denom):
    """The loss of each row reduced as ``spec.reduction`` asks (NaN for a 'mean' of nothing)."""
    if spec.reduction == "none":
        return loss.reshape(spec.loss_shape)
    if spec.reduction == "sum":
        return loss.sum()
    return mean(loss.sum(), denom)


def grad_rows_(out, lse, tgt, s, lo, hi):
    """Rows lo:hi: ``out`` holds the logits x (compute dtype) and is overwritten with s (p A - a).

    s is a 0-d tensor or one value per row; lse one value per row, or None when
    ``out`` already holds x - lse.
    """
    if lse is not None:
        out.sub_(lse[:, None])
    exp_flushed_(out)  # p = exp(x - lse)
    if out.shape[1] == 0:  # no classes, no gradient
        return out
    if isinstance(tgt, IndexRows):
        rows = torch.arange(hi - lo, device=out.device)
        y = tgt.y[lo:hi]
        A = tgt.mass()[lo:hi]
        # the true class without cancellation (the reference's confident-row trick):
        # p_y A - a_y = A (p_y - 1) + (A - a_y), with 1 - p_y = the sum of the other p_c
        p_y = out[rows, y]
        out.scatter_(1, y[:, None], 0.0)
        # a row without softmax has p_y NaN: so has its true class (even for C = 1, where
        # the other classes' sum is empty)
        others = torch.where(torch.isnan(p_y), p_y, out.sum(dim=1))
        g_y = s * (A * (-others) + (A - tgt.at_target()[lo:hi]))
        out.mul_((s * A)[:, None])  # s p A
        tgt.subtract_from(out, s, lo, hi)  # - s beta w
        out[rows, y] = g_y.to(out.dtype)
        keep = tgt.keep[lo:hi]
        if out.device.type != "cpu" or not bool(keep.all()):  # (no sync on a GPU)
            out.masked_fill_(~keep[:, None], 0.0)  # ignored: exactly zero, even if p is NaN
    else:
        a = tgt.a(lo, hi)
        A = a.sum(dim=1)
        sv = s if s.dim() == 0 else s[:, None]
        out.mul_(A[:, None]).sub_(a).mul_(sv)
    return out
