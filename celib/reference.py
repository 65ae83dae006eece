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

def _shifted_exp(x, axis):
    """Return e = exp(x - m) and S = sum(e) along ``axis`` (S in float64).

    m is the maximum along ``axis``, so every exponent is <= 0 and nothing
    overflows; a slice whose maximum is not finite (all -inf, or +inf) is
    shifted by 0 instead, which keeps torch's conventions: all -inf gives
    lse = -inf, a +inf gives lse = +inf.
    """
    m = np.max(x, axis=axis, keepdims=True)
    m = np.where(np.isfinite(m), m, 0).astype(x.dtype)
    with np.errstate(over="ignore"):  # x - m below -max float is -inf, and exp(-inf) = 0
        e = np.subtract(x, m)      # a new array: the caller's x is never written
    np.exp(e, out=e)
    S = np.sum(e, axis=axis, keepdims=True, dtype=np.float64)
    return m, e, S


def logsumexp(x, axis=-1):
    """Numerically stable ``log(sum(exp(x), axis))``.

    Parameters
    ----------
    x : array_like of float16, float32 or float64, any shape
    axis : int, default -1

    Returns
    -------
    ndarray, shape of ``x`` without ``axis``, dtype of ``x``
        Computed as m + log(sum(exp(x - m))) with m the maximum, in float32 for
        float16 inputs and with the sum accumulated in float64, so it is exact
        to rounding for any finite input, 1e4, 1e8 and values near the float32
        maximum included. A slice of all -inf gives -inf; a +inf gives +inf.

    Raises
    ------
    TypeError
        If ``x`` is not floating point.
    """
    x = _checks.check_float_array(x, "x")
    xc = x.astype(_checks.compute_dtype(x.dtype), copy=False)
    m, _, S = _shifted_exp(xc, axis)
    with np.errstate(divide="ignore"):  # log(0) = -inf for an all -inf slice
        lse = m + np.log(S)
    return np.squeeze(lse, axis=axis).astype(x.dtype)


def log_softmax(x, axis=-1):
    """Log-probabilities ``(x - m) - log(sum(exp(x - m)))`` along ``axis``.

    Same shape and dtype as ``x``; the shift by the maximum m keeps every
    intermediate finite for finite input. Raises TypeError for non-float input.
    """
    x = _checks.check_float_array(x, "x")
    xc = x.astype(_checks.compute_dtype(x.dtype), copy=False)
    m, _, S = _shifted_exp(xc, axis)
    with np.errstate(divide="ignore", invalid="ignore", over="ignore"):
        out = (xc - m) - np.log(S)   # below -max float: -inf, the correctly rounded value
        return out.astype(x.dtype)


def softmax(x, axis=-1):
    """Probabilities ``exp(x - m) / sum(exp(x - m))`` along ``axis``.

    Same shape and dtype as ``x``. Finite input never overflows; a slice of all
    -inf gives NaN, as in torch. Raises TypeError for non-float input.
    """
    x = _checks.check_float_array(x, "x")
    xc = x.astype(_checks.compute_dtype(x.dtype), copy=False)
    _, e, S = _shifted_exp(xc, axis)
    with np.errstate(divide="ignore", invalid="ignore"):
        out = e / S
    return out.astype(x.dtype)


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
    The sparse form (a coefficient for the one-hot, one for the spread) keeps
    memory at O(N) instead of an N x C array.
    """

    def __init__(self, y, C, weight, ignore_index, eps, dtype):
        self.keep = y != ignore_index
        self.y = np.where(self.keep, y, 0)  # a harmless index for ignored rows
        self.w = np.ones(C, np.float64) if weight is None else weight.astype(np.float64)
        self.w_y = np.where(self.keep, self.w[self.y], 0.0)
        self.onehot_coef = (1.0 - eps) * self.w_y   # alpha_n
        self.spread_coef = np.where(self.keep, eps / C, 0.0)  # beta_n
        self.rows = np.arange(len(y))

    def mass(self):
        """A_n = sum_c a_nc."""
        return self.onehot_coef + self.spread_coef * self.w.sum()

    def at_target(self):
        """a_{n, y_n}."""
        return self.onehot_coef + self.spread_coef * self.w_y

    def loss(self, x, m, log_S):
        """sum_c a_nc (lse_n - x_nc), skipping classes with zero target."""
        x_y = x[self.rows, self.y].astype(np.float64)
        loss = _times(self.onehot_coef, log_S - (x_y - m))
        if np.any(self.spread_coef):
            lse = m + log_S
            spread = np.where(self.w != 0, lse[:, None] - x, 0.0) @ self.w
            loss = loss + _times(self.spread_coef, spread)
        return np.where(self.keep, loss, 0.0)

    def subtract_from(self, grad, scale):
        """grad -= scale * a, in place."""
        if np.any(self.spread_coef):
            grad -= ((scale * self.spread_coef)[:, None] * self.w).astype(grad.dtype)
        grad[self.rows, self.y] -= (scale * self.onehot_coef).astype(grad.dtype)

    def mean_denominator(self):
        """Sum of the true classes' weights over kept targets (the count without weights)."""
        return self.w_y.sum()


class _ProbabilityTarget:
    """a_n = ((1 - eps) q_n + eps / C) * w for a target distribution q_n.

    ATen's ``cross_entropy_loss_prob_target``; q_n need not sum to 1.
    """

    def __init__(self, q, C, weight, eps):
        w = 1.0 if weight is None else weight.astype(np.float64)
        self.a = ((1.0 - eps) * q.astype(np.float64) + eps / C) * w
        self.keep = np.ones(len(q), bool)  # no ignore_index for probabilities

    def mass(self):
        return self.a.sum(axis=1)

    def loss(self, x, m, log_S):
        lse = m + log_S
        terms = np.where(self.a != 0, self.a * (lse[:, None] - x), 0.0)
        return terms.sum(axis=1)

    def subtract_from(self, grad, scale):
        grad -= (scale[:, None] * self.a).astype(grad.dtype)

    def mean_denominator(self):
        """The number of elements N * d1 * ... * dk, whatever the weights."""
        return float(len(self.a))


def _times(coef, value):
    """coef * value, but exactly 0 where coef is 0 (even if value is inf)."""
    with np.errstate(invalid="ignore"):
        return np.where(coef != 0, coef * value, 0.0)


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
        kind = _checks.target_kind(logits, target)
        target = np.asarray(target)
        weight = _checks.check_weight(weight, C)

        self.dtype = logits.dtype
        self.reduction = reduction
        self.class_axis = class_axis
        self.shape = logits.shape
        self.loss_shape = logits.shape[:class_axis] + logits.shape[class_axis + 1:]
        # rows: move the class axis last and flatten everything else
        rows = np.moveaxis(logits, class_axis, -1)
        self.moved_shape = rows.shape
        self.x = rows.reshape(-1, C).astype(_checks.compute_dtype(self.dtype), copy=False)

        if kind == "indices":
            _checks.check_class_indices(target, C, ignore_index)
            self.target = _IndexTarget(target.reshape(-1), C, weight, ignore_index, eps, self.dtype)
        else:
            _checks.check_probability_options(ignore_index)
            q = np.moveaxis(target, class_axis, -1).reshape(-1, C)
            self.target = _ProbabilityTarget(q, C, weight, eps)

    def reduce(self, loss):
        """Apply the reduction to per-row losses (float64) and cast to the input dtype."""
        if self.reduction == "none":
            out = loss.reshape(self.loss_shape)
        elif self.reduction == "sum":
            out = loss.sum()
        else:
            # mean. A zero denominator (an empty batch, every target ignored, or every kept
            # target of weight 0) leaves the mean undefined: NaN, as in torch, even where
            # label smoothing makes the sum positive (torch adds the NLL's 0 / 0 to it).
            denominator = self.target.mean_denominator()
            out = loss.sum() / denominator if denominator != 0 else np.nan
        with np.errstate(over="ignore"):   # beyond the dtype's range: inf, as torch
            return np.asarray(out).astype(self.dtype)

    def scale(self, grad_output):
        """s_n = the upstream gradient divided by the reduction's denominator (float64)."""
        g = _checks.check_grad_output(grad_output, self.reduction, self.loss_shape)
        g = np.float64(1.0) if g is None else g.astype(np.float64)
        M = self.x.shape[0]
        if self.reduction == "none":
            return np.broadcast_to(g, self.loss_shape).reshape(M)
        if self.reduction == "sum":
            return np.full(M, g)
        # mean: NaN for a zero denominator, as the loss (ignored elements still get 0)
        denominator = self.target.mean_denominator()
        return np.full(M, g / denominator if denominator != 0 else np.nan)

    def unflatten(self, rows):
        """Inverse of the flattening: (M, C) back to logits' shape."""
        return np.moveaxis(rows.reshape(self.moved_shape), -1, self.class_axis)


# ---------------------------------------------------------------------------
# the loss and its gradient
# ---------------------------------------------------------------------------

def cross_entropy(logits, target, *, weight=None, ignore_index=-100, reduction="mean",
                  label_smoothing=0.0):
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
        A rescaling weight per class.
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


def cross_entropy_grad(logits, target, *, weight=None, ignore_index=-100, reduction="mean",
                       label_smoothing=0.0, grad_output=None):
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
        exponentials) / S, so it keeps float32's relative accuracy where the
        naive p_y - 1 would cancel to 0. (S is accumulated in float64, so this
        holds for 1 - p_y down to about 1e-8; for float64 logits the relative
        error is about 1e-16 / (1 - p_y), as in torch.)

    Raises
    ------
    TypeError, ValueError, IndexError
        As in :func:`cross_entropy`; also ValueError when ``grad_output`` does
        not have the loss's shape (both shapes named).
    """
    problem = _Problem(logits, target, weight, ignore_index, reduction, label_smoothing)
    _, grad = _loss_and_grad(problem, grad_output)
    return grad


def cross_entropy_and_grad(logits, target, *, weight=None, ignore_index=-100, reduction="mean",
                           label_smoothing=0.0, grad_output=None):
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
    m, e, S = _shifted_exp(x, axis=1)                   # e = exp(x - m), one N x C buffer
    m, S = m[:, 0].astype(np.float64), S[:, 0]
    with np.errstate(divide="ignore", invalid="ignore"):
        # lse_n = m_n + log S_n, kept as its two parts: the true class's term is formed
        # as log S_n - (x_ny - m_n), so a confident row's loss (near 0) keeps its digits,
        # which m_n + log S_n would round away in float64 when |m_n| is large
        log_S = np.log(S)
        loss = a.loss(x, m, log_S)
    # a row of logits that are all -inf has no softmax: NaN, as in torch, unless ignored
    # (even where its effective target is all zero)
    loss = np.where(np.isneginf(log_S) & a.keep, np.nan, loss)
    if not with_grad:
        return problem.reduce(loss), None

    # dL/dx_n = s_n (p_n A_n - a_n), written into e's buffer
    s = problem.scale(grad_output)                      # s_n, float64
    A = a.mass()                                        # A_n = sum_c a_nc, float64
    grad = e
    if isinstance(a, _IndexTarget):
        e_y = grad[a.rows, a.y].astype(np.float64)
    with np.errstate(divide="ignore", invalid="ignore"):
        grad *= (s * A / S).astype(grad.dtype)[:, None]  # s * p * A
        a.subtract_from(grad, s)                         # - s * a
        if isinstance(a, _IndexTarget):
            # the true class without cancellation: p_y A - a_y = A (p_y - 1) + (A - a_y)
            grad[a.rows, a.y] = s * (A * (e_y - S) / S + (A - a.at_target()))
    grad[~a.keep] = 0                                    # ignored: exactly zero
    return problem.reduce(loss), problem.unflatten(grad).astype(problem.dtype, copy=False)
