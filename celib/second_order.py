"""Second order: Hessian-vector products of cross-entropy with respect to the logits.

NumPy only, built on the reference's effective target (:mod:`celib.reference`).
With the effective target a_n, its mass A_n = sum_c a_nc and the scale s_n of
the reference, the gradient of element n is s_n (p_n A_n - a_n). a_n and s_n
do not depend on the logits, and dp_n/dx_n = diag(p_n) - p_n p_n^T (the softmax
Jacobian), so the Hessian block of element n is

    H_n = s_n A_n (diag(p_n) - p_n p_n^T)

and the blocks of different elements do not mix. Every option of
``torch.nn.functional.cross_entropy`` (weights, ignore_index, label smoothing,
probability targets, each reduction) enters through A_n and s_n only (the book,
chapter 11).
"""

from __future__ import annotations

import numpy as np

from . import _checks
from .reference import _Problem, _product, _shifted_exp

__all__ = ["cross_entropy_hvp"]


def cross_entropy_hvp(
    logits,
    target,
    v,
    *,
    weight=None,
    ignore_index=-100,
    reduction="mean",
    label_smoothing=0.0,
    grad_output=None,
):
    """The Hessian of :func:`celib.cross_entropy` with respect to the logits, times ``v``.

    For each element n (a row of (N, C) logits, or a position of (N, C, d1, ..., dk) ones)

        (H v)_n = s_n A_n (p_n * v_n - p_n (p_n . v_n))

    with p_n the softmax, A_n = sum_c a_nc the mass of the effective target and s_n
    the upstream gradient over the reduction's denominator, exactly as in
    :func:`celib.cross_entropy_grad` (whose gradient is s_n (p_n A_n - a_n)). The
    factor diag(p) - p p^T is the softmax Jacobian (Bishop, *Pattern Recognition and
    Machine Learning*, 2006, eq. 4.106; the Hessian of softmax regression, eq. 4.110);
    the derivation for every option is in the book, chapter 11. O(C) per element: the
    C x C Hessian block is never formed.

    Because H_n 1 = 0, v_n may be shifted by any constant; it is shifted by its entry
    at the most probable class j, v_n - v_nj, and the product is evaluated as
    p_n * (u_n - p_n . u_n) with u = v - v_j. In a confident row (p_j near 1) the entry
    at j, -p_j sum_{c != j} p_c u_c, then keeps its relative accuracy, where the naive
    v_j - p . v cancels (as torch's double backward does).

    Parameters
    ----------
    logits, target, weight, ignore_index, reduction, label_smoothing
        As in :func:`celib.cross_entropy`.
    v : array_like of float, shape of ``logits``
        The direction. Read in the dtype the reference computes in (float32 for
        float16 and float32 logits, float64 for float64); any float dtype is accepted.
    grad_output : array_like of float, optional
        The upstream gradient, as in :func:`celib.cross_entropy_grad`: a scalar for
        'mean' and 'sum', the loss's shape for 'none', default 1. The Hessian is
        that of sum(grad_output * loss) (for 'none') or grad_output * loss.

    Returns
    -------
    ndarray, shape and dtype of ``logits``
        H v. Ignored elements get exactly 0. An element without a softmax (all its
        logits -inf, or one +inf, or a NaN) gets NaN, as does every element of a
        'mean' whose denominator is 0 (NaN loss), as in :func:`celib.cross_entropy_grad`.
        A -inf logit has probability 0 and gets 0 (NaN where its v is inf or NaN).
        Finite wherever the product is representable, even where s_n A_n alone
        overflows (huge class weights or grad_output; torch returns NaN there).

    Raises
    ------
    TypeError
        As :func:`celib.cross_entropy_grad`; also when ``v`` is not floating point.
    ValueError
        As :func:`celib.cross_entropy_grad`; also when ``v``'s shape is not logits'
        shape (both shapes named).
    IndexError
        As :func:`celib.cross_entropy_grad`.
    """
    problem = _Problem(logits, target, weight, ignore_index, reduction, label_smoothing)
    v = _checks.check_float_array(v, "v")
    if v.shape != problem.shape:
        raise ValueError(
            f"v of shape {v.shape} does not match logits of shape {problem.shape}: "
            "the direction must have the logits' shape"
        )
    s = problem.scale(grad_output)  # s_n, float64 (checks grad_output)
    x = problem.x  # (M, C) rows, compute dtype
    M, C = x.shape
    # v's rows, the same flattening as the logits' (class axis last), in the compute dtype
    u = np.moveaxis(v, problem.class_axis, -1).reshape(M, C).astype(x.dtype)  # a new array
    if C == 0:
        return problem.unflatten(u).astype(problem.dtype)
    a = problem.target
    _, e, S = _shifted_exp(x, axis=1)  # e = exp(x - m), S = sum(e)
    with np.errstate(divide="ignore", invalid="ignore", over="ignore"):
        p = e / S.astype(x.dtype)  # NaN for a row without a softmax
        # u = v - v_j, j the most probable class (x_j the maximum): H 1 = 0
        j = np.argmax(np.where(np.isnan(x), np.inf, x), axis=1)[:, None]
        u -= np.take_along_axis(u, j, axis=1)
        # p . u; v_j's own term is 0 (except v_j inf or NaN: then NaN, as it should)
        pu = np.sum(p * u, axis=1, keepdims=True, dtype=np.float64).astype(x.dtype)
        A = a.mass()
        coef = (s * A).astype(x.dtype)[:, None]  # s_n A_n
        h = p * (u - pu)
        hv = coef * h
        # s_n A_n beyond the compute dtype's range while s_n and A_n are finite (huge class
        # weights, a large grad_output): the product with h (|h| <= max |v|) may still be
        # representable, so form it from the mantissas and exponents of s_n and A_n
        big = np.flatnonzero(np.isinf(coef[:, 0]) & np.isfinite(s) & np.isfinite(A))
        if big.size:
            hv[big] = _product(s[big], A[big], h[big]).astype(x.dtype)
    hv[~a.keep] = 0  # ignored: exactly zero
    return problem.unflatten(hv).astype(problem.dtype, copy=False)
