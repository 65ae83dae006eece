"""celib's NumPy reference: softmax, cross-entropy and its gradient.

This module is the ground truth every chapter, exercise and backend is checked
against. It imports NumPy only and follows the semantics of
``torch.nn.functional.cross_entropy`` (PyTorch documentation, "CrossEntropyLoss";
ATen's ``cross_entropy_loss`` in ``aten/src/ATen/native/LossNLL.cpp``).

One idea carries every option (see the book, chapters 3 and 4). For each
element n (a row, or a position of a K-dimensional map) PyTorch's options
reduce to

* an *effective target* vector a_n over the C classes: the one-hot of y_n or
  the probability target, after label smoothing, times the class weights, and
  zero for an ignored target; and
* a *scale* s_n: the upstream gradient divided by the reduction's denominator.

Then, with lse_n = log sum_c exp(x_nc) and p_n = softmax(x_n),

    loss_n   = sum_c a_nc * (lse_n - x_nc)
    dL/dx_n  = s_n * (p_n * sum_c a_nc - a_n)

A class whose effective target is exactly zero contributes exactly zero to the
loss, even where its logit is -inf (PyTorch computes 0 * inf = NaN there; see
the book's page of deliberate deviations).
"""

from __future__ import annotations

import functools
import os
from concurrent.futures import ThreadPoolExecutor

import numpy as np

from . import _checks

__all__ = [
    "logsumexp",
    "softmax",
    "log_softmax",
    "softmax_jacobian",
    "cross_entropy",
    "cross_entropy_grad",
    "cross_entropy_and_grad",
]


# ---------------------------------------------------------------------------
# softmax and log-sum-exp
# ---------------------------------------------------------------------------


def _shifted_exp(x, axis, out=None):
    """Return m, e = exp(x - m) and S = sum(e) along ``axis`` (S in float64).

    m is the maximum along ``axis``, so every exponent is <= 0 and nothing
    overflows. Two kinds of slice have no finite maximum, and keep torch's
    conventions:

    * all -inf, or empty (no classes): shifted by 0 instead, so S = 0 and
      lse = log 0 = -inf, and the softmax 0 / 0 = NaN;
    * holding +inf: shifted by m = +inf, so exp(inf - inf) = NaN makes S NaN
      and the slice's softmax and log-softmax NaN throughout (torch's; the
      limit would depend on how many entries are +inf). :func:`logsumexp`
      returns +inf for it, as torch.
    A NaN anywhere in a slice makes m, and so everything, NaN.

    e is written into ``out`` when given, else into a new array: the caller's
    x is never written.
    """
    if out is None and x.ndim == 2 and axis in (1, -1) and x.size >= _PARALLEL_MIN_ELEMENTS:
        return _shifted_exp_rows_in_parallel(x)  # the same, one block of rows per core
    m = np.max(x, axis=axis, keepdims=True, initial=-np.inf)
    m = np.where(np.isneginf(m), 0, m).astype(x.dtype)
    with np.errstate(over="ignore", invalid="ignore"):  # x - m below -max float is -inf,
        e = np.subtract(x, m, out=out)  # and exp(-inf) = 0; inf - inf is NaN (see above).
    np.exp(e, out=e)
    S = np.sum(e, axis=axis, keepdims=True, dtype=np.float64)
    return m, e, S


# Below this many logits one thread does it all (starting the others would cost more).
_PARALLEL_MIN_ELEMENTS = 1 << 22


_WORKERS = min(os.cpu_count() or 1, 8)


@functools.lru_cache(maxsize=1)
def _threads():
    return ThreadPoolExecutor(max_workers=_WORKERS)


def _shifted_exp_rows_in_parallel(x):
    """:func:`_shifted_exp` of a large (M, C) array along its rows, one block of rows per core.

    Rows are independent and NumPy releases the GIL inside its loops, so the blocks
    run at the same time; exp is most of celib's time on large logits. Each row's
    m, e and S are bit-identical to the one-thread computation.
    """
    M = len(x)
    e = np.empty_like(x)
    m = np.empty((M, 1), x.dtype)
    S = np.empty((M, 1), np.float64)
    edges = np.linspace(0, M, _WORKERS + 1).astype(int)

    def block(k):
        rows = slice(edges[k], edges[k + 1])
        m[rows], _, S[rows] = _shifted_exp(x[rows], 1, out=e[rows])

    list(_threads().map(block, range(len(edges) - 1)))
    return m, e, S


def _slices(x, axis, name):
    """``x`` as a float array of at least one dimension, in the dtype celib computes in.

    A 0-d ``x`` is one slice of one element (torch accepts axis 0 or -1 for it);
    the caller reshapes the result back to (). Raises numpy's AxisError (an
    IndexError and a ValueError) for an axis out of range.
    """
    x = _checks.check_float_array(x, name)
    if x.ndim == 0:
        if axis not in (0, -1):
            raise np.exceptions.AxisError(axis, 0)
        axis = 0
    xc = np.atleast_1d(x).astype(_checks.compute_dtype(x.dtype), copy=False)
    return x, xc, axis


def logsumexp(x, axis=-1):
    """Numerically stable ``log(sum(exp(x), axis))``.

    Parameters
    ----------
    x : array_like of float16, float32 or float64, any shape (0-d: ``axis`` 0 or -1)
    axis : int, default -1

    Returns
    -------
    ndarray, shape of ``x`` without ``axis``, dtype of ``x``
        Computed as m + log(sum(exp(x - m))) with m the maximum, in float32 for
        float16 inputs and with the sum accumulated in float64, so it is exact
        to rounding for any finite input, 1e4, 1e8 and values near the float32
        maximum included. A slice of all -inf, or an empty one, gives -inf; a
        +inf gives +inf; a NaN gives NaN (torch's conventions).

    Raises
    ------
    TypeError
        If ``x`` is not floating point.
    """
    x, xc, axis = _slices(x, axis, "x")
    m, _, S = _shifted_exp(xc, axis)
    with np.errstate(divide="ignore"):  # log(0) = -inf for an all -inf or empty slice
        lse = np.where(np.isposinf(m), m, m + np.log(S))  # +inf: S is NaN (inf - inf)
    return np.squeeze(lse, axis=axis).astype(x.dtype)  # () for a 0-d x


def log_softmax(x, axis=-1):
    """Log-probabilities ``(x - m) - log(sum(exp(x - m)))`` along ``axis``.

    Same shape and dtype as ``x``; the shift by the maximum m keeps every
    intermediate finite for finite input. A slice holding +inf or NaN gives NaN,
    as torch. Raises TypeError for non-float input.
    """
    x, xc, axis = _slices(x, axis, "x")
    m, _, S = _shifted_exp(xc, axis)
    with np.errstate(divide="ignore", invalid="ignore", over="ignore"):
        out = (xc - m) - np.log(S)  # below -max float: -inf, the correctly rounded value
        return out.astype(x.dtype).reshape(x.shape)


def softmax(x, axis=-1):
    """Probabilities ``exp(x - m) / sum(exp(x - m))`` along ``axis``.

    Same shape and dtype as ``x``. Finite input never overflows; a slice of all
    -inf, or holding +inf or NaN, gives NaN, as in torch. Raises TypeError for
    non-float input.
    """
    x, xc, axis = _slices(x, axis, "x")
    _, e, S = _shifted_exp(xc, axis)
    with np.errstate(divide="ignore", invalid="ignore"):
        out = e / S
    return out.astype(x.dtype).reshape(x.shape)


def softmax_jacobian(x):
    """The C x C Jacobian of softmax at a vector: ``diag(p) - p p^T``.

    Parameters
    ----------
    x : array_like, shape (C,), float

    Returns
    -------
    ndarray, shape (C, C), dtype of ``x``: entry (i, j) is dp_i / dx_j.

    Raises
    ------
    ValueError
        If ``x`` is not one-dimensional.
    """
    x = _checks.check_float_array(x, "x")
    if x.ndim != 1:
        raise ValueError(f"softmax_jacobian takes a vector of shape (C,), got shape {x.shape}")
    p = softmax(x)
    return np.diag(p) - np.outer(p, p)


# ---------------------------------------------------------------------------
# the effective target a_n, one class per kind of target
# ---------------------------------------------------------------------------


class _IndexTarget:
    """a_n = (1 - eps) w[y_n] onehot(y_n) + (eps / C) w, and 0 where y_n is ignored.

    This is ATen's ``cross_entropy_loss_label_smoothing``: the weighted NLL of
    the true class times (1 - eps), plus eps / C times the weighted sum of all
    classes' negative log-probabilities. w is all ones without class weights.
    The sparse form (a coefficient for the one-hot, one spread vector shared by
    every kept row) keeps memory at O(N + C) instead of an N x C array.
    """

    def __init__(self, y, C, weight, ignore_index, eps, dtype):
        self.keep = y != ignore_index
        self.y = np.where(self.keep, y, 0)  # a harmless index for ignored rows
        self.w = np.ones(C, np.float64) if weight is None else weight.astype(np.float64)
        # w[y_n] of kept rows (with no classes every row is ignored: nothing to look up)
        self.w_y = np.where(self.keep, self.w[self.y], 0.0) if C else np.zeros(len(y))
        self.onehot_coef = (1.0 - eps) * self.w_y  # alpha_n
        # the spread (eps / C) w of every kept row; exactly 0 without smoothing, even for a
        # class of weight NaN or inf that no row targets (0 * inf would poison every row)
        self.spread = _times(eps / C if C else 0.0, self.w)
        with np.errstate(over="ignore"):
            self.spread_total = self.spread.sum()
        self.rows = np.arange(len(y))

    def mass(self):
        """A_n = sum_c a_nc."""
        return self.onehot_coef + np.where(self.keep, self.spread_total, 0.0)

    def off_target(self):
        """A_n - a_{n, y_n} = the spread over the other classes, without cancellation."""
        return np.where(self.keep, self.spread_total - self.spread[self.y], 0.0)

    def loss(self, x, m, log_S):
        """sum_c a_nc (lse_n - x_nc), skipping classes with zero target.

        lse_n - x_nc is formed as log S_n - (x_nc - m_n): m_n + log S_n would round
        away log S_n when |m_n| is large (logits near the float maximum).
        """
        x_y = x[self.rows, self.y].astype(np.float64)
        loss = _times(self.onehot_coef, log_S - (x_y - m))
        if np.any(self.spread):
            with np.errstate(over="ignore", invalid="ignore"):
                minus_log_p = log_S[:, None] - (x - m[:, None])
                spread = np.where(self.spread != 0, minus_log_p, 0.0) @ self.spread
            loss = loss + np.where(self.keep, spread, 0.0)
        return np.where(self.keep, loss, 0.0)

    def subtract_from(self, grad, scale):
        """grad -= scale * a, in place (ignored rows are zeroed afterwards)."""
        if np.any(self.spread):
            grad -= (scale[:, None] * self.spread).astype(grad.dtype)
        grad[self.rows, self.y] -= (scale * self.onehot_coef).astype(grad.dtype)

    def dense(self, rows):
        """The effective target a_n of the given rows, as a (len(rows), C) float64 array."""
        out = np.where(self.keep[rows, None], self.spread, 0.0)
        out[np.arange(len(rows)), self.y[rows]] += self.onehot_coef[rows]
        return out

    def mean_denominator(self):
        """Sum of the true classes' weights over kept targets (the count without weights)."""
        with np.errstate(over="ignore"):  # weights near the float maximum: inf
            return self.w_y.sum()


class _ProbabilityTarget:
    """a_n = ((1 - eps) q_n + eps / C) * w for a target distribution q_n.

    ATen's ``cross_entropy_loss_prob_target``; q_n need not sum to 1.
    """

    def __init__(self, q, C, weight, eps):
        w = 1.0 if weight is None else weight.astype(np.float64)
        self.a = ((1.0 - eps) * q.astype(np.float64) + (eps / C if C else 0.0)) * w
        self.keep = np.ones(len(q), bool)  # no ignore_index for probabilities

    def mass(self):
        with np.errstate(over="ignore"):
            return self.a.sum(axis=1)

    def loss(self, x, m, log_S):
        """sum_c a_nc (log S_n - (x_nc - m_n)), skipping classes with zero target."""
        with np.errstate(over="ignore", invalid="ignore"):
            terms = np.where(self.a != 0, self.a * (log_S[:, None] - (x - m[:, None])), 0.0)
            return terms.sum(axis=1)

    def subtract_from(self, grad, scale):
        grad -= (scale[:, None] * self.a).astype(grad.dtype)

    def dense(self, rows):
        return self.a[rows]

    def mean_denominator(self):
        """The number of elements N * d1 * ... * dk, whatever the weights.

        With no classes (C = 0) there is no distribution to average: 0, so the mean
        is NaN, as torch (which returns NaN for the mean of an empty input).
        """
        return float(self.a.shape[0]) if self.a.shape[1] else 0.0


def _cast(a, dtype):
    """``a.astype(dtype)``, bit for bit, but fast for float32 values that are float16 subnormals.

    NumPy converts such values (|v| < 2^-14, e.g. the gradient entries of a float16
    'mean' over a few thousand rows) about 40 times more slowly than others. A float16
    subnormal is k * 2^-24 with k = rint(|v| * 2^24) <= 1024 (round half to even, as the
    cast; the multiplication by a power of 2 is exact), and its bit pattern is k with
    the sign bit: those are written directly.
    """
    if a.dtype != np.float32 or np.dtype(dtype) != np.float16:
        return a.astype(dtype, copy=False)
    magnitude = np.abs(a)
    tiny = magnitude < np.float32(2.0**-14)  # False for NaN
    n_tiny = np.count_nonzero(tiny)
    if not n_tiny:
        return a.astype(np.float16)
    with np.errstate(invalid="ignore", over="ignore"):  # (large values: not selected below)
        bits = np.rint(magnitude * np.float32(2.0**24), out=magnitude).astype(np.uint16)
    bits |= np.signbit(a).view(np.uint8).astype(np.uint16) << 15
    if 2 * n_tiny > a.size:  # mostly subnormal: NumPy casts only the others
        out = bits.view(np.float16)
        normal = ~tiny
        out[normal] = a[normal].astype(np.float16)
        return out
    out = np.where(tiny, np.float32(0), a).astype(np.float16)
    np.copyto(out.view(np.uint16), bits, where=tiny)
    return out


def _times(coef, value):
    """coef * value, but exactly 0 where coef is 0 (even if value is inf); inf beyond the range."""
    with np.errstate(invalid="ignore", over="ignore"):
        return np.where(coef != 0, coef * value, 0.0)


def _product(s, A, h, shift=0):
    """s_n A_n h_n 2^shift row by row, float64, without forming s_n A_n (beyond the range).

    s, A: (K,) finite float64; h: (K, C). The product of the mantissas of s_n and A_n
    (np.frexp, in [1/4, 1)) times h_n, scaled by 2 to the sum of their exponents and
    ``shift`` (np.ldexp): inf only where the result itself lies beyond float64's range.
    """
    ms, es = np.frexp(s)
    ma, ea = np.frexp(A)
    return np.ldexp((ms * ma)[:, None] * h.astype(np.float64), (es + ea + shift)[:, None])


# ---------------------------------------------------------------------------
# shared set-up: checks, flattening to rows, the effective target
# ---------------------------------------------------------------------------


class _Problem:
    """Logits as an (M, C) array of rows plus the effective target of each row."""

    def __init__(self, logits, target, weight, ignore_index, reduction, label_smoothing):
        logits = _checks.check_float_array(logits, "logits")
        _checks.check_reduction(reduction)
        eps = _checks.check_label_smoothing(label_smoothing)
        class_axis, C = _checks.split_class_axis(logits)
        target = np.asarray(_checks.from_torch(target, "target"))
        kind = _checks.target_kind(logits, target)
        weight = _checks.check_weight(weight, C)
        ignore_index = _checks.check_ignore_index(ignore_index)

        self.grad_dtype = logits.dtype  # dL/dlogits: the logits' dtype
        self.dtype = _checks.loss_dtype(logits.dtype, target.dtype, kind)  # the loss's
        self.reduction = reduction
        self.class_axis = class_axis
        self.shape = logits.shape
        self.loss_shape = logits.shape[:class_axis] + logits.shape[class_axis + 1 :]
        # rows: move the class axis last and flatten everything else into M rows
        # (M given explicitly: reshape(-1, 0) cannot infer it when C = 0)
        M = int(np.prod(self.loss_shape))
        rows = np.moveaxis(logits, class_axis, -1)
        self.moved_shape = rows.shape
        self.x = rows.reshape(M, C).astype(_checks.compute_dtype(self.dtype), copy=False)

        if kind == "indices":
            _checks.check_class_indices(target, C, ignore_index)
            self.target = _IndexTarget(target.reshape(M), C, weight, ignore_index, eps, self.dtype)
        else:
            _checks.check_probability_options(ignore_index)
            q = np.moveaxis(target, class_axis, -1).reshape(M, C)
            self.target = _ProbabilityTarget(q, C, weight, eps)

    def reduce(self, loss):
        """Apply the reduction to per-row losses (float64) and cast to the input dtype."""
        if self.reduction == "none":
            out = loss.reshape(self.loss_shape)
        elif self.reduction == "sum":
            with np.errstate(over="ignore", invalid="ignore"):  # inf, or inf - inf = NaN
                out = loss.sum()
        else:
            # mean. A zero denominator (an empty batch, every target ignored, or every kept
            # target of weight 0) leaves the mean undefined: NaN, as in torch, even where
            # label smoothing makes the sum positive (torch adds the NLL's 0 / 0 to it).
            denominator = self.target.mean_denominator()
            with np.errstate(over="ignore", invalid="ignore"):  # inf / inf = NaN, as torch
                out = loss.sum() / denominator if denominator != 0 else np.nan
        with np.errstate(over="ignore"):  # beyond the dtype's range: inf, as torch
            return np.asarray(out).astype(self.dtype)

    def scale(self, grad_output):
        """s_n = the upstream gradient divided by the reduction's denominator (float64)."""
        s, shift = self.scale_parts(grad_output)
        with np.errstate(over="ignore"):  # 1 / a subnormal total: inf
            return np.ldexp(s, shift) if shift else s

    def scale_parts(self, grad_output):
        """s_n as r_n 2^shift: shift is 0 but for a subnormal 'mean' denominator (then 64).

        1 / d overflows for a subnormal d, while r_n = g_n / (d 2^64) is finite (and
        r_n 2^64 is g_n / d exactly, rounded once).
        """
        g = _checks.check_grad_output(grad_output, self.reduction, self.loss_shape)
        g = np.float64(1.0) if g is None else g.astype(np.float64)
        M = self.x.shape[0]
        if self.reduction == "none":
            return np.broadcast_to(g, self.loss_shape).reshape(M), 0
        if self.reduction == "sum":
            return np.full(M, g), 0
        # mean: NaN for a zero denominator, as the loss (ignored elements still get 0)
        denominator, shift = self.target.mean_denominator(), 0
        if 0 < abs(denominator) < np.finfo(np.float64).tiny:
            denominator, shift = np.ldexp(denominator, 64), 64
        with np.errstate(over="ignore", invalid="ignore"):  # an infinite total
            return np.full(M, g / denominator if denominator != 0 else np.nan), shift

    def unflatten(self, rows):
        """Inverse of the flattening: (M, C) back to logits' shape."""
        return np.moveaxis(rows.reshape(self.moved_shape), -1, self.class_axis)


# ---------------------------------------------------------------------------
# the loss and its gradient
# ---------------------------------------------------------------------------


def cross_entropy(
    logits, target, weight=None, *, ignore_index=-100, reduction="mean", label_smoothing=0.0
):
    """Cross-entropy between logits and a target, with PyTorch's semantics.

    Mirrors ``torch.nn.functional.cross_entropy`` (PyTorch documentation,
    ``torch.nn.CrossEntropyLoss``): loss_n = sum_c a_nc (lse_n - x_nc) with the
    effective target a_n described in the module docstring; label smoothing as
    in Szegedy et al., "Rethinking the Inception Architecture" (2016), sec. 7.

    Parameters
    ----------
    logits : array_like, float16/float32/float64, shape (C,), (N, C) or (N, C, d1, ..., dk)
        Unnormalised scores (nats). The class axis is 0 for a 1-D input, else 1.
    target : array_like
        Either class indices, integer, of shape (), (N,) or (N, d1, ..., dk), each in
        [0, C) or equal to ``ignore_index``; or class probabilities, float, of the
        same shape as ``logits`` (they need not sum to 1).
    weight : array_like, float, shape (C,), optional
        A rescaling weight per class; the third positional argument, as in
        ``F.cross_entropy(input, target, weight)`` (the options after it are
        keyword-only).
    ignore_index : int, default -100
        A class-index target equal to it contributes no loss and no gradient, and
        is left out of the 'mean' denominator. Must be negative for probability
        targets.
    reduction : {'mean', 'sum', 'none'}, default 'mean'
        'mean' divides the sum by the sum of w[y_n] over non-ignored targets (by
        their count without weights) for class indices, and by N * d1 * ... * dk
        for probabilities; NaN when that denominator is 0 (empty or all ignored).
    label_smoothing : float in [0, 1], default 0.0
        Mixes the target with the uniform distribution: (1 - eps) q + eps / C.

    Returns
    -------
    ndarray of the dtype of ``logits``
        Shape () for 'mean' and 'sum'; the target's shape (class indices) or
        logits' shape without the class axis (probabilities) for 'none'.
        Computed in float32 (float16 input) or the input's precision, with
        log-sum-exp sums and the reduction accumulated in float64.

    Raises
    ------
    TypeError
        Non-float logits or weight; non-integer class indices; non-float probabilities.
    ValueError
        Mismatched shapes of logits, target and weight (both shapes named); an
        unknown reduction; label_smoothing outside [0, 1]; ignore_index >= 0 with
        probability targets.
    IndexError
        A class index outside [0, C) that is not ``ignore_index`` (value and
        position named).
    """
    problem = _Problem(logits, target, weight, ignore_index, reduction, label_smoothing)
    loss, _ = _loss_and_grad(problem, with_grad=False)
    return loss


def cross_entropy_grad(
    logits,
    target,
    weight=None,
    *,
    ignore_index=-100,
    reduction="mean",
    label_smoothing=0.0,
    grad_output=None,
):
    """dL/dlogits of :func:`cross_entropy`, in closed form.

    dL/dx_n = s_n * (p_n * sum_c a_nc - a_n): the softmax times the target
    mass, minus the effective target, scaled by the upstream gradient over the
    reduction's denominator (derived in the book, chapters 2 to 4). Never
    autodiff, never finite differences.

    Parameters
    ----------
    logits, target, weight, ignore_index, reduction, label_smoothing
        As in :func:`cross_entropy`.
    grad_output : array_like of float, optional
        The upstream gradient dJ/dL: a scalar for 'mean' and 'sum', an array of
        the unreduced loss's shape for 'none'. Default 1.

    Returns
    -------
    ndarray, shape and dtype of ``logits``
        Ignored elements get exactly 0. For a confident row (p_y within
        rounding of 1) the true class's entry p_y * A - a_y is formed as
        A * (p_y - 1) + (A - a_y) with p_y - 1 = -(sum of the other classes'
        exponentials) / S, that sum taken on its own, so the entry keeps the
        relative accuracy of the input's precision at any margin, where the
        naive p_y - 1 (torch's) cancels to 0 once 1 - p_y is below rounding.

    Raises
    ------
    TypeError, ValueError, IndexError
        As in :func:`cross_entropy`; also ValueError when ``grad_output`` does
        not have the loss's shape (both shapes named).
    """
    problem = _Problem(logits, target, weight, ignore_index, reduction, label_smoothing)
    _, grad = _loss_and_grad(problem, grad_output)
    return grad


def cross_entropy_and_grad(
    logits,
    target,
    weight=None,
    *,
    ignore_index=-100,
    reduction="mean",
    label_smoothing=0.0,
    grad_output=None,
):
    """The loss and its gradient together, sharing one softmax pass.

    Equal to ``(cross_entropy(...), cross_entropy_grad(...))`` to the last bit,
    at about half the cost: what a training loop that needs both should call
    (like ``jax.value_and_grad``).

    Parameters
    ----------
    logits, target, weight, ignore_index, reduction, label_smoothing, grad_output
        As in :func:`cross_entropy_grad`.

    Returns
    -------
    loss : ndarray
        As returned by :func:`cross_entropy`.
    grad : ndarray
        As returned by :func:`cross_entropy_grad`.

    Raises
    ------
    TypeError, ValueError, IndexError
        As in :func:`cross_entropy_grad`.
    """
    problem = _Problem(logits, target, weight, ignore_index, reduction, label_smoothing)
    return _loss_and_grad(problem, grad_output)


def _loss_and_grad(problem, grad_output=None, with_grad=True):
    """The loss (reduced) and, if asked, dL/dlogits of a prepared problem."""
    x, a = problem.x, problem.target
    if x.shape[1] == 0:
        # no classes: every loss is an empty sum, 0 (a class index could only be ignored),
        # and the gradient is empty; 'mean' divides by 0 and gives NaN, as torch
        problem.scale(grad_output)  # still check grad_output's shape
        return problem.reduce(np.zeros(len(x))), problem.unflatten(x.copy()) if with_grad else None
    m, e, S = _shifted_exp(x, axis=1)  # e = exp(x - m), one N x C buffer
    m, S = m[:, 0].astype(np.float64), S[:, 0]
    with np.errstate(divide="ignore", invalid="ignore", over="ignore"):  # beyond max float: inf
        # lse_n = m_n + log S_n, kept as its two parts: the true class's term is formed
        # as log S_n - (x_ny - m_n), so a confident row's loss (near 0) keeps its digits,
        # which m_n + log S_n would round away in float64 when |m_n| is large
        log_S = np.log(S)
        loss = a.loss(x, m, log_S)
    # a row with no softmax (all -inf logits: S = 0; a +inf or a NaN: S is NaN) gets NaN,
    # as in torch, unless ignored (even where its effective target is all zero). A row of
    # no classes (C = 0) is an empty sum instead: 0, as torch.
    if x.shape[1]:
        loss = np.where(~np.isfinite(log_S) & a.keep, np.nan, loss)
    if not with_grad:
        return problem.reduce(loss), None

    # dL/dx_n = s_n (p_n A_n - a_n), written into e's buffer
    s = problem.scale(grad_output)  # s_n, float64
    A = a.mass()  # A_n = sum_c a_nc, float64
    grad = e
    # rows whose s_n A_n / S_n lies beyond the range (huge class weights, a large grad_output,
    # a subnormal 'mean' denominator) while their gradient need not: redone at the end
    with np.errstate(divide="ignore", invalid="ignore", over="ignore"):
        big = np.flatnonzero(np.isinf((s * A / S).astype(grad.dtype)) & np.isfinite(A) & (S >= 1))
    e_big = grad[big].astype(np.float64) if big.size else None
    if isinstance(a, _IndexTarget):
        # p_y - 1 = -(sum of the other classes' e) / S. S - e_y gives that sum exactly
        # enough while p_y <= 1/2; in a confident row (p_y near 1) it would cancel and lose
        # every digit, so there the other classes are summed on their own
        e_y = grad[a.rows, a.y].astype(np.float64)
        others = S - e_y
        confident = np.flatnonzero(e_y > 0.5 * S)
        if confident.size:
            rows = grad[confident]  # a copy of the confident rows
            rows[np.arange(confident.size), a.y[confident]] = 0
            others[confident] = np.sum(rows, axis=1, dtype=np.float64)
    with np.errstate(divide="ignore", invalid="ignore", over="ignore"):
        grad *= (s * A / S).astype(grad.dtype)[:, None]  # s * p * A
        a.subtract_from(grad, s)  # - s * a
        if isinstance(a, _IndexTarget):
            # the true class without cancellation: p_y A - a_y = A (p_y - 1) + (A - a_y),
            # with A - a_y the spread over the other classes
            grad[a.rows, a.y] = s * (A * (-others / S) + a.off_target())
        if big.size:
            _redo_rows_beyond_range(grad, problem, grad_output, big, e_big, S, A, others)
        grad[~a.keep] = 0  # ignored: exactly zero
        return problem.reduce(loss), _cast(problem.unflatten(grad), problem.grad_dtype)


def _redo_rows_beyond_range(grad, problem, grad_output, big, e_big, S, A, others):
    """grad_n = s_n A_n (p_n - a_n / A_n), in place, for the rows ``big`` whose s_n A_n overflows.

    Only s_n A_n is beyond the range; its product with p_n - a_n / A_n (|.| <= 1 + |a_n| / |A_n|)
    is formed from mantissas and exponents (:func:`_product`), inf only where the true value is.
    The true class as in the usual path: p_y - a_y / A = -others / S + (A - a_y) / A. Rows
    with an infinite or NaN grad_output keep the usual result.
    """
    a = problem.target
    r, shift = problem.scale_parts(grad_output)
    finite = np.isfinite(r[big])
    big, e_big = big[finite], e_big[finite]
    S, A = S[big].astype(np.float64), A[big]
    h = e_big / S[:, None] - a.dense(big) / A[:, None]
    if isinstance(a, _IndexTarget):
        h[np.arange(big.size), a.y[big]] = -others[big] / S + a.off_target()[big] / A
    grad[big] = _product(r[big], A, h, shift).astype(grad.dtype)
