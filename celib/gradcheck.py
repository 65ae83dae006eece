"""Gradient checking: central finite differences and a comparison report.

Used by the book's chapter on checking gradients and by celib's own tests.
"""

from __future__ import annotations

import numpy as np

__all__ = ["numerical_grad"]


def numerical_grad(f, x, eps=1e-6):
    """Central finite differences of a scalar function, in float64.

    (f(x + eps e_i) - f(x - eps e_i)) / (2 eps) for every entry i of x; the
    truncation error is O(eps^2) and the rounding error O(u / eps) with
    u = 2^-53, so eps near 1e-6 balances them for well-scaled f (Nocedal and
    Wright, "Numerical Optimization", 2nd ed., sec. 8.1).

    Parameters
    ----------
    f : callable
        Takes an ndarray shaped like ``x`` (float64) and returns a real scalar.
    x : array_like of float, any shape
        The point; it is copied to float64 and never modified.
    eps : float, default 1e-6
        The step, in the units of x; must be positive.

    Returns
    -------
    ndarray of float64, shape of ``x``

    Raises
    ------
    ValueError
        If ``eps`` is not positive and finite, or f does not return a scalar.
    """
    if not (np.isfinite(eps) and eps > 0):
        raise ValueError(f"eps must be a positive finite step, got {eps!r}")
    point = np.array(x, dtype=np.float64)  # a copy
    grad = np.empty_like(point)
    for i in np.ndindex(point.shape):
        saved = point[i]
        point[i] = saved + eps
        f_plus = _scalar(f(point.copy()))
        point[i] = saved - eps
        f_minus = _scalar(f(point.copy()))
        point[i] = saved
        grad[i] = (f_plus - f_minus) / (2 * eps)
    return grad


def _scalar(value):
    arr = np.asarray(value, dtype=np.float64)
    if arr.shape != ():
        raise ValueError(f"f must return a scalar, got an array of shape {arr.shape}")
    return float(arr)
