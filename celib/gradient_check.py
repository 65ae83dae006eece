"""Gradient checking: central finite differences and a comparison report.

Used by the book's chapter on checking gradients and by celib's own tests.
Its functions are also exported by ``celib`` itself (``celib.numerical_grad``,
``celib.relative_error``, ``celib.compare``). The module was called
``celib.gradcheck``; that name is kept as an alias module (so
``celib.gradcheck.compare`` still works) whose call raises a TypeError that
names these functions, since ``torch.autograd.gradcheck`` is a *function* and
``celib.gradcheck(...)`` read like one.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

__all__ = ["numerical_grad", "relative_error", "compare", "Comparison"]


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
    TypeError
        If ``eps`` is not a real number, or f returns something that is not a number.
    ValueError
        If ``eps`` is not positive and finite, if it is too small to move an
        entry of x (x + eps == x in float64: the difference would be 0), or if
        f does not return a scalar.
    """
    if isinstance(eps, (bool, np.bool_)) or not isinstance(
        eps, (int, float, np.integer, np.floating)
    ):
        raise TypeError(f"eps must be a real number, got {eps!r}")
    if not (np.isfinite(eps) and eps > 0):
        raise ValueError(f"eps must be a positive finite step, got {eps!r}")
    point = np.array(x, dtype=np.float64)  # a copy
    grad = np.empty_like(point)
    for i in np.ndindex(point.shape):
        saved = point[i]
        if saved + eps == saved or saved - eps == saved:
            raise ValueError(
                f"eps={eps!r} is below the resolution of x at index {i} "
                f"(x = {saved!r}): x + eps == x in float64"
            )
        point[i] = saved + eps
        f_plus = _scalar(f(point.copy()))
        point[i] = saved - eps
        f_minus = _scalar(f(point.copy()))
        point[i] = saved
        grad[i] = (f_plus - f_minus) / (2 * eps)
    return grad


def _scalar(value):
    try:
        arr = np.asarray(value, dtype=np.float64)
    except (TypeError, ValueError):
        raise TypeError(f"f must return a real scalar, got {value!r}") from None
    if value is None:
        raise TypeError("f must return a real scalar, got None")
    if arr.shape != ():
        raise ValueError(f"f must return a scalar, got an array of shape {arr.shape}")
    return float(arr)


# ---------------------------------------------------------------------------
# comparing two arrays: relative error and a small report
# ---------------------------------------------------------------------------


def relative_error(actual, expected):
    """Largest absolute difference over the largest magnitude: a scale-free error.

    ``max_i |a_i - e_i| / max(max_i |a_i|, max_i |e_i|)``, computed in float64.
    Normalising by the largest entry (an infinity-norm relative error) rather
    than entry by entry keeps near-zero entries of a gradient from inflating
    the error; the thresholds of the book's chapter 6 (about 1e-7 or less for a
    correct float64 gradient against central differences) refer to it.

    Parameters
    ----------
    actual, expected : array_like of real numbers, the same shape

    Returns
    -------
    float
        0.0 when both are all zeros (or empty); NaN if either holds a NaN; inf
        where an infinity differs.

    Raises
    ------
    ValueError
        If the shapes differ (both named).
    """
    a, e = _pair(actual, expected)
    if a.size == 0:
        return 0.0
    with np.errstate(invalid="ignore", divide="ignore"):
        diff = np.max(np.abs(a - e))
        scale = max(np.max(np.abs(a)), np.max(np.abs(e)))
        if np.isnan(diff) or np.isnan(scale):
            return float("nan")
        if diff == 0:
            return 0.0
        return float(diff / scale)


@dataclass(frozen=True)
class Comparison:
    """What :func:`compare` found: equality, closeness and the largest differences.

    Attributes
    ----------
    equal : bool
        Every entry is exactly equal (NaNs in the same places count as equal).
    close : bool
        ``|actual - expected| <= atol + rtol * |expected|`` everywhere, the rule
        of ``numpy.isclose`` and ``torch.testing.assert_close`` (NaN matches NaN).
    rtol, atol : float
        The tolerances used.
    shape : tuple of int
    mismatched : int
        How many entries are not close.
    max_abs_diff : float
        The largest ``|actual - expected|`` (0.0 for empty arrays).
    max_abs_index : tuple of int or None
        Where it occurs (None for empty arrays or when equal).
    max_rel_diff : float
        The largest ``|actual - expected| / |expected|`` (inf where expected is
        0 and actual is not).
    max_rel_index : tuple of int or None
        Where it occurs.

    ``bool(report)`` is ``report.close``, so ``assert compare(a, b)`` works.
    """

    equal: bool
    close: bool
    rtol: float
    atol: float
    shape: tuple
    mismatched: int
    max_abs_diff: float
    max_abs_index: tuple | None
    max_rel_diff: float
    max_rel_index: tuple | None

    def __bool__(self):
        return self.close

    def __str__(self):
        if self.equal:
            verdict = "exactly equal"
        elif self.close:
            verdict = f"close (rtol={self.rtol:g}, atol={self.atol:g}), not exactly equal"
        else:
            verdict = (
                f"NOT close (rtol={self.rtol:g}, atol={self.atol:g}): "
                f"{self.mismatched} of {int(np.prod(self.shape))} entries differ"
            )
        lines = [f"{verdict}; shape {self.shape}"]
        if not self.equal:
            lines.append(
                f"  largest |actual - expected|:              {self.max_abs_diff:.3g}"
                f" at index {self.max_abs_index}"
            )
            lines.append(
                f"  largest |actual - expected| / |expected|: {self.max_rel_diff:.3g}"
                f" at index {self.max_rel_index}"
            )
        return "\n".join(lines)

    def __repr__(self):
        return (
            f"Comparison(equal={self.equal}, close={self.close}, rtol={self.rtol:g}, "
            f"atol={self.atol:g}, shape={self.shape}, mismatched={self.mismatched}, "
            f"max_abs_diff={self.max_abs_diff:.3g}, max_abs_index={self.max_abs_index}, "
            f"max_rel_diff={self.max_rel_diff:.3g}, max_rel_index={self.max_rel_index})"
        )


def compare(actual, expected, *, rtol=1e-7, atol=0.0):
    """Compare two arrays entry by entry and report how far apart they are.

    Parameters
    ----------
    actual, expected : array_like of real numbers (NumPy arrays, CPU torch
        tensors, lists or scalars), the same shape
        Converted to float64 before comparing; neither is modified.
    rtol, atol : float, default 1e-7 and 0.0
        Relative and absolute tolerances, non-negative: an entry is close when
        ``|actual - expected| <= atol + rtol * |expected|`` (as
        ``numpy.isclose``; the tolerance is relative to ``expected``).

    Returns
    -------
    Comparison
        ``equal``, ``close``, the number of mismatched entries and the largest
        absolute and relative differences with their indices; a readable
        ``str`` and ``repr``; truthy when close.

    Raises
    ------
    ValueError
        If the shapes differ (both named), or a tolerance is negative or NaN.

    Examples
    --------
    >>> r = compare([1.0, 2.0], [1.0, 2.0 + 1e-9], rtol=1e-6)
    >>> r.close, r.equal, r.max_abs_index
    (True, False, (1,))
    """
    if not (rtol >= 0 and atol >= 0):
        raise ValueError(f"rtol and atol must be non-negative, got rtol={rtol!r}, atol={atol!r}")
    a, e = _pair(actual, expected)
    shape = tuple(a.shape)
    both_nan = np.isnan(a) & np.isnan(e)
    with np.errstate(invalid="ignore", divide="ignore"):
        same = (a == e) | both_nan
        abs_diff = np.where(same, 0.0, np.abs(a - e))
        abs_diff = np.where(np.isnan(abs_diff), np.inf, abs_diff)  # NaN against a number
        rel_diff = np.where(same, 0.0, abs_diff / np.abs(e))
        rel_diff = np.where(np.isnan(rel_diff), np.inf, rel_diff)  # inf or NaN expected
        close = same | (np.isfinite(abs_diff) & (abs_diff <= atol + rtol * np.abs(e)))
    equal = bool(np.all(same))
    if a.size == 0 or equal:
        return Comparison(equal, True, float(rtol), float(atol), shape, 0, 0.0, None, 0.0, None)
    i_abs = np.unravel_index(np.argmax(abs_diff), shape)
    i_rel = np.unravel_index(np.argmax(rel_diff), shape)
    return Comparison(
        equal=False,
        close=bool(np.all(close)),
        rtol=float(rtol),
        atol=float(atol),
        shape=shape,
        mismatched=int(np.count_nonzero(~close)),
        max_abs_diff=float(abs_diff[i_abs]),
        max_abs_index=tuple(int(i) for i in i_abs),
        max_rel_diff=float(rel_diff[i_rel]),
        max_rel_index=tuple(int(i) for i in i_rel),
    )


def _as_float64(x):
    if hasattr(x, "detach"):  # a torch tensor, without importing torch
        x = x.detach().cpu().double().numpy()
    return np.array(x, dtype=np.float64)  # a copy: the caller's data is never touched


def _pair(actual, expected):
    a = _as_float64(actual)
    e = _as_float64(expected)
    if a.shape != e.shape:
        raise ValueError(
            f"actual of shape {a.shape} and expected of shape {e.shape} differ in shape"
        )
    return a, e
