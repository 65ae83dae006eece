"""Losses related to softmax cross-entropy, each with its closed-form gradient.

NumPy only, like :mod:`celib.reference`. Every loss comes as a pair: a forward
function and a ``*_grad`` function that returns dL/dlogits in closed form (the
derivations are in the book, chapter 10). Each pair is checked against central
finite differences (:func:`celib.numerical_grad`) and, where PyTorch has the
loss, against PyTorch, in ``tests/test_losses.py``.

* :func:`binary_cross_entropy_with_logits`: the two-class case of softmax
  cross-entropy, one logit per element; gradient ``w * (sigmoid(x) - y)``.
* :func:`focal_loss`: ``-alpha_t (1 - p_t)^gamma log p_t`` on softmax
  probabilities (Lin et al., 2017).
* :func:`z_loss`: ``coef * lse^2``, which keeps the log-partition function near
  zero (PaLM, Chowdhery et al., 2022); gradient ``2 coef lse p``.
* :func:`softcap`: ``cap * tanh(x / cap)`` applied to logits (Gemma 2, 2024);
  derivative ``1 - tanh^2(x / cap)``.
* :func:`apply_temperature`: ``x / T``; derivative ``1 / T``.

Conventions shared with :func:`celib.cross_entropy`: the class axis is 0 for a
1-D input and 1 otherwise; float16 input is computed in float32; sums over the
batch are accumulated in float64; results have the dtype of ``logits``; the
caller's arrays are never modified.
"""

from __future__ import annotations

import numpy as np

from . import _checks

__all__ = [
    "binary_cross_entropy_with_logits",
    "binary_cross_entropy_with_logits_grad",
    "focal_loss",
    "focal_loss_grad",
    "z_loss",
    "z_loss_grad",
    "softcap",
    "softcap_grad",
    "apply_temperature",
    "apply_temperature_grad",
]


# ---------------------------------------------------------------------------
# small helpers
# ---------------------------------------------------------------------------


def _float_input(x, name):
    """x as an ndarray of its float dtype, and a float32/float64 view to compute in."""
    x = _checks.check_float_array(x, name)
    return x, x.astype(_checks.compute_dtype(x.dtype), copy=False)


def _broadcast(value, shape, name, against="logits"):
    """A float array broadcast to ``shape``, or a clear ValueError naming both shapes."""
    arr = _checks.check_float_array(value, name)
    try:
        return np.broadcast_to(arr, shape)
    except ValueError:
        raise ValueError(
            f"{name} of shape {arr.shape} cannot be broadcast to {against} of shape {shape}"
        ) from None


def _real(value, name, what):
    """float(value) for a real number (not a string), or a TypeError naming the value."""
    if isinstance(value, (str, bytes)):
        raise TypeError(f"{name} must be {what}, got {value!r}")
    try:
        return float(value)
    except (TypeError, ValueError):
        raise TypeError(f"{name} must be {what}, got {value!r}") from None


def _positive_finite(value, name):
    """A positive finite real number, or an error naming the value."""
    v = _real(value, name, "a positive real number")
    if not (np.isfinite(v) and v > 0):  # also rejects NaN
        raise ValueError(f"{name} must be positive and finite, got {value!r}")
    return v


def _reduce(loss, reduction, count, dtype):
    """'none': the per-element losses; 'sum': their float64 sum; 'mean': the sum / count."""
    if reduction == "none":
        out = loss
    elif reduction == "sum":
        out = np.sum(loss, dtype=np.float64)
    else:  # mean of nothing is NaN, as in torch
        with np.errstate(invalid="ignore", divide="ignore"):
            out = np.sum(loss, dtype=np.float64) / count
    return np.asarray(out).astype(dtype)


def _scale(grad_output, reduction, loss_shape, count):
    """The upstream gradient divided by the reduction's denominator, float64, broadcastable."""
    g = _checks.check_grad_output(grad_output, reduction, loss_shape)
    g = np.float64(1.0) if g is None else g.astype(np.float64)
    if reduction == "mean":
        with np.errstate(invalid="ignore", divide="ignore"):
            g = g / count
    return g


def _softplus(x):
    """log(1 + exp(x)) = max(x, 0) + log1p(exp(-|x|)): never overflows, exact for large |x|."""
    return np.maximum(x, 0) + np.log1p(np.exp(-np.abs(x)))


def _sigmoid_pair(x):
    """(sigmoid(x), sigmoid(x) - 1), both to full relative accuracy.

    With z = exp(-|x|) <= 1: sigmoid(x) = 1 / (1 + z) for x >= 0 and z / (1 + z)
    for x < 0, and sigmoid(x) - 1 = -sigmoid(-x). Forming 1 - sigmoid(x) by
    subtraction would cancel to 0 for x above about 17 (float64).
    """
    z = np.exp(-np.abs(x))
    big = 1 / (1 + z)
    small = z / (1 + z)
    pos = x >= 0
    return np.where(pos, big, small), -np.where(pos, small, big)


def _rows(logits, name="logits"):
    """Logits as (M, C) rows with the class axis last; returns (orig, rows, unflatten)."""
    logits, xc = _float_input(logits, name)
    class_axis, C = _checks.split_class_axis(logits)
    moved = np.moveaxis(xc, class_axis, -1)
    rows = moved.reshape(int(np.prod(moved.shape[:-1])), C)  # -1 cannot be inferred if C = 0
    loss_shape = logits.shape[:class_axis] + logits.shape[class_axis + 1 :]

    def unflatten(r):
        return np.moveaxis(r.reshape(moved.shape), -1, class_axis)

    return logits, rows, loss_shape, unflatten


def _log_softmax_rows(x):
    """log p for (M, C) rows; lse in float64. Returns (log_p, lse)."""
    m = np.max(x, axis=1, keepdims=True, initial=-np.inf)  # no classes: lse = log 0 = -inf
    m = np.where(np.isfinite(m), m, 0).astype(x.dtype)
    S = np.sum(np.exp(x - m), axis=1, keepdims=True, dtype=np.float64)
    with np.errstate(divide="ignore"):
        lse = m.astype(np.float64) + np.log(S)
    with np.errstate(invalid="ignore"):
        log_p = x - lse.astype(x.dtype)
    return log_p, lse[:, 0]


# ---------------------------------------------------------------------------
# binary cross-entropy with logits
# ---------------------------------------------------------------------------


def _bce_setup(logits, target, weight, pos_weight, reduction):
    logits, x = _float_input(logits, "logits")
    _checks.check_reduction(reduction)
    target = _checks.check_float_array(target, "target")
    if target.shape != logits.shape:
        raise ValueError(
            f"target of shape {target.shape} does not match logits of shape {logits.shape}: "
            "binary cross-entropy needs one target per logit (same shape)"
        )
    y = target.astype(x.dtype, copy=False)
    w = None if weight is None else _broadcast(weight, logits.shape, "weight").astype(x.dtype)
    pw = (
        None
        if pos_weight is None
        else _broadcast(pos_weight, logits.shape, "pos_weight").astype(x.dtype)
    )
    return logits, x, y, w, pw


def binary_cross_entropy_with_logits(
    logits, target, *, weight=None, pos_weight=None, reduction="mean"
):
    """Binary cross-entropy on logits, with PyTorch's semantics.

    Mirrors ``torch.nn.functional.binary_cross_entropy_with_logits`` (PyTorch
    documentation, ``torch.nn.BCEWithLogitsLoss``). With sigma the logistic
    sigmoid, w the weight and p_c the positive weight, each element's loss is::

        l = -w * (p_c * y * log sigma(x) + (1 - y) * log(1 - sigma(x)))
          =  w * (p_c * y * softplus(-x) + (1 - y) * softplus(x)),

    and ``softplus(x) = max(x, 0) + log1p(exp(-|x|))`` never overflows. It is
    softmax cross-entropy on the two logits [x, 0] (book, chapter 10).

    Parameters
    ----------
    logits : array_like, float16/float32/float64, any shape
        One unnormalised score x per element (the log-odds of the positive class).
    target : array_like, float, same shape as ``logits``
        The probability y of the positive class, usually 0 or 1. Values are not
        range-checked, as in torch.
    weight : array_like, float, broadcastable to ``logits``' shape, optional
        A rescaling weight w per element. It does not change the 'mean'
        denominator.
    pos_weight : array_like, float, broadcastable to ``logits``' shape, optional
        The weight p_c of the positive term; torch's usual shape is (C,), one per
        class along the last axis (BCEWithLogitsLoss documentation).
    reduction : {'mean', 'sum', 'none'}, default 'mean'
        'mean' divides the sum by the number of elements (NaN for none).

    Returns
    -------
    ndarray of the dtype of ``logits``
        Shape () for 'mean' and 'sum', ``logits``' shape for 'none'.

    Raises
    ------
    TypeError
        Non-float logits, target, weight or pos_weight.
    ValueError
        ``target``'s shape differs from ``logits``'; ``weight`` or ``pos_weight``
        does not broadcast to it (both shapes named); an unknown reduction.
    """
    logits, x, y, w, pw = _bce_setup(logits, target, weight, pos_weight, reduction)
    with np.errstate(invalid="ignore"):
        positive = y * _softplus(-x)
        if pw is not None:
            positive = pw * positive
        loss = positive + (1 - y) * _softplus(x)
        if w is not None:
            loss = w * loss
    return _reduce(loss, reduction, loss.size, logits.dtype)


def binary_cross_entropy_with_logits_grad(
    logits, target, *, weight=None, pos_weight=None, reduction="mean", grad_output=None
):
    """dL/dlogits of :func:`binary_cross_entropy_with_logits`, in closed form.

    Since d softplus(x)/dx = sigma(x) and d softplus(-x)/dx = sigma(x) - 1::

        dl/dx = w * (p_c * y * (sigma(x) - 1) + (1 - y) * sigma(x)),

    which is ``w * (sigma(x) - y)`` without ``pos_weight``: the softmax
    cross-entropy gradient p - y of the two-class case. sigma(x) - 1 is formed
    as -sigma(-x), so a confident logit keeps its relative accuracy.

    Parameters
    ----------
    logits, target, weight, pos_weight, reduction
        As in :func:`binary_cross_entropy_with_logits`.
    grad_output : array_like of float, optional
        The upstream gradient dJ/dL: a scalar for 'mean' and 'sum', an array of
        ``logits``' shape for 'none'. Default 1.

    Returns
    -------
    ndarray, shape and dtype of ``logits``

    Raises
    ------
    TypeError, ValueError
        As in :func:`binary_cross_entropy_with_logits`; also ValueError when
        ``grad_output`` does not have the loss's shape (both shapes named).
    """
    logits, x, y, w, pw = _bce_setup(logits, target, weight, pos_weight, reduction)
    s = _scale(grad_output, reduction, logits.shape, x.size)
    sig, sig_minus_1 = _sigmoid_pair(x)
    positive = y * sig_minus_1
    if pw is not None:
        positive = pw * positive
    grad = positive + (1 - y) * sig
    if w is not None:
        grad = w * grad
    return (s * grad).astype(logits.dtype)


# ---------------------------------------------------------------------------
# focal loss
# ---------------------------------------------------------------------------


def _focal_setup(logits, target, gamma, alpha, reduction):
    _checks.check_reduction(reduction)
    gamma = _real(gamma, "gamma", "a real number >= 0")
    if not (np.isfinite(gamma) and gamma >= 0):
        raise ValueError(f"gamma must be finite and >= 0, got {gamma!r}")
    logits, x, loss_shape, unflatten = _rows(logits)
    C = x.shape[1]
    target = np.asarray(target)
    if target.shape != loss_shape:
        raise ValueError(
            f"target of shape {target.shape} does not match logits of shape {logits.shape}: "
            f"expected class indices of shape {loss_shape}"
        )
    if target.dtype == np.bool_ or not np.issubdtype(target.dtype, np.integer):
        raise TypeError(f"class-index targets must be integers, got dtype {target.dtype}")
    bad = (target < 0) | (target >= C)
    if bad.any():
        position = tuple(int(i) for i in np.argwhere(bad)[0])
        raise IndexError(
            f"target {int(target[position])} at position {position} is out of bounds for "
            f"{C} classes (valid: 0 to {C - 1})"
        )
    y = target.reshape(-1)
    if alpha is None:
        alpha_t = np.ones(len(y))
    else:
        a = _checks.check_float_array(alpha, "alpha")
        if a.shape not in ((), (C,)):
            raise ValueError(
                f"alpha of shape {a.shape} does not match logits with {C} classes: "
                f"expected a scalar or shape ({C},)"
            )
        if np.any(a < 0) or not np.all(np.isfinite(a)):
            bad = float(a[(a < 0) | ~np.isfinite(a)].flat[0])
            raise ValueError(f"alpha must be finite and >= 0, got {bad}")
        alpha_t = np.broadcast_to(a.astype(np.float64), (C,))[y]
    return logits, x, y, gamma, alpha_t, loss_shape, unflatten


def _focal_parts(x, y, gamma):
    """log-softmax of the rows, log p_t, q = 1 - p_t and q^gamma.

    q is summed from the other classes' probabilities rather than formed as
    1 - p_t, so it keeps its relative accuracy when p_t rounds to 1; there
    log p_t = log1p(-q) too, instead of x_t - lse, which would cancel.
    """
    log_p, lse = _log_softmax_rows(x)
    rows = np.arange(len(y))
    log_pt = log_p[rows, y].astype(np.float64)
    others = np.exp(log_p)
    others[rows, y] = 0
    q = np.sum(others, axis=1, dtype=np.float64)  # 1 - p_t as a sum of positives: no cancellation
    # near p_t = 1, x_t - lse cancels; log1p(-q) keeps log p_t's relative accuracy there
    log_pt = np.where(q < 0.5, np.log1p(-np.minimum(q, 0.5)), log_pt)
    q_gamma = q**gamma  # 0 ** 0 = 1: gamma = 0 is cross-entropy
    return log_p, log_pt, q, q_gamma


def focal_loss(logits, target, *, gamma=2.0, alpha=None, reduction="mean"):
    """Softmax focal loss ``-alpha_t (1 - p_t)^gamma log p_t`` on class indices.

    Lin, Goyal, Girshick, He and Dollár, "Focal Loss for Dense Object
    Detection", ICCV 2017, eq. (5), with p_t = softmax(x)[y] (the paper's
    multi-class extension) computed through log-softmax: log p_t = x_t - lse,
    and 1 - p_t as the sum of the other classes' probabilities, so confident
    rows neither overflow nor cancel.
    gamma = 0 and no alpha give :func:`celib.cross_entropy`.

    Parameters
    ----------
    logits : array_like, float16/float32/float64, shape (C,), (N, C) or (N, C, d1, ..., dk)
        Unnormalised scores; the class axis is 0 for a 1-D input, else 1.
    target : array_like of int, shape (), (N,) or (N, d1, ..., dk)
        Class indices in [0, C).
    gamma : float >= 0, default 2.0
        The focusing parameter (the paper's best value is 2).
    alpha : float or array_like of float, shape (C,), optional
        A weight per class, alpha_t = alpha[y]; a scalar scales every element.
        Default: no weighting.
    reduction : {'mean', 'sum', 'none'}, default 'mean'
        'mean' divides the sum by the number of elements N * d1 * ... * dk
        (not by the sum of alpha_t).

    Returns
    -------
    ndarray of the dtype of ``logits``
        Shape () for 'mean' and 'sum', the target's shape for 'none'.

    Raises
    ------
    TypeError
        Non-float logits or alpha; non-integer targets; a non-numeric gamma.
    ValueError
        Mismatched shapes (both named); gamma negative or not finite; a negative
        or non-finite alpha (value named); an unknown reduction.
    IndexError
        A class index outside [0, C) (value and position named).
    """
    logits, x, y, gamma, alpha_t, loss_shape, _ = _focal_setup(
        logits, target, gamma, alpha, reduction
    )
    _, log_pt, _, q_gamma = _focal_parts(x, y, gamma)
    with np.errstate(invalid="ignore"):
        loss = np.where(alpha_t != 0, -alpha_t * q_gamma * log_pt, 0.0) + 0.0  # no -0.0
    return _reduce(loss.reshape(loss_shape), reduction, loss.size, logits.dtype)


def focal_loss_grad(logits, target, *, gamma=2.0, alpha=None, reduction="mean", grad_output=None):
    """dL/dlogits of :func:`focal_loss`, in closed form.

    With q = 1 - p_t and the cross-entropy gradient p - onehot(y), each row's
    gradient is that gradient times one number per row (book, chapter 10)::

        dFL/dx = alpha_t * g_t * (p - onehot(y)),
        g_t    = q^gamma - gamma * p_t * q^(gamma - 1) * log p_t
               = q^gamma * (1 - gamma * p_t * log(p_t) / q).

    The second form is used: log(p_t) / q tends to -1 as p_t -> 1, so g_t stays
    finite for 0 < gamma < 1, where q^(gamma - 1) alone would be infinite.

    Parameters
    ----------
    logits, target, gamma, alpha, reduction
        As in :func:`focal_loss`.
    grad_output : array_like of float, optional
        The upstream gradient: a scalar for 'mean' and 'sum', an array of the
        target's shape for 'none'. Default 1.

    Returns
    -------
    ndarray, shape and dtype of ``logits``

    Raises
    ------
    TypeError, ValueError, IndexError
        As in :func:`focal_loss`; also ValueError when ``grad_output`` does not
        have the loss's shape (both shapes named).
    """
    logits, x, y, gamma, alpha_t, loss_shape, unflatten = _focal_setup(
        logits, target, gamma, alpha, reduction
    )
    M = x.shape[0]
    s = np.broadcast_to(_scale(grad_output, reduction, loss_shape, M), loss_shape).reshape(M)
    log_p, log_pt, q, q_gamma = _focal_parts(x, y, gamma)
    p_t = np.exp(log_pt)
    with np.errstate(invalid="ignore", divide="ignore"):
        ratio = np.where(q > 0, log_pt / q, -1.0)  # log(p_t) / (1 - p_t) -> -1
    g = q_gamma * (1 - gamma * p_t * ratio)
    coef = s * alpha_t * g  # one number per row, float64
    p = np.exp(log_p)
    grad = coef[:, None].astype(x.dtype) * p
    rows = np.arange(M)
    # the true class: coef * (p_t - 1) = -coef * q, without cancellation
    grad[rows, y] = -coef * q
    return unflatten(grad).astype(logits.dtype)


# ---------------------------------------------------------------------------
# z-loss
# ---------------------------------------------------------------------------


def _z_setup(logits, coef, reduction):
    _checks.check_reduction(reduction)
    coef = _real(coef, "coef", "a real number >= 0")
    if not (np.isfinite(coef) and coef >= 0):
        raise ValueError(f"coef must be finite and >= 0, got {coef!r}")
    logits, x, loss_shape, unflatten = _rows(logits)
    return logits, x, coef, loss_shape, unflatten


def z_loss(logits, *, coef=1e-4, reduction="mean"):
    """The auxiliary z-loss ``coef * lse(x)^2`` of each row.

    Chowdhery et al., "PaLM: Scaling Language Modeling with Pathways" (2022),
    sec. 5: an auxiliary loss 10^-4 * log^2 Z "to encourage the softmax
    normalizer log(Z) to be close to 0", which they found improves training
    stability. lse = log sum_c exp(x_c) is computed with the maximum shifted
    out, as in :func:`celib.logsumexp`.

    Parameters
    ----------
    logits : array_like, float16/float32/float64, shape (C,), (N, C) or (N, C, d1, ..., dk)
        The class axis is 0 for a 1-D input, else 1.
    coef : float >= 0, default 1e-4
        PaLM's coefficient.
    reduction : {'mean', 'sum', 'none'}, default 'mean'
        'mean' divides by the number of rows N * d1 * ... * dk.

    Returns
    -------
    ndarray of the dtype of ``logits``
        Shape () for 'mean' and 'sum'; ``logits``' shape without the class axis
        for 'none'.

    Raises
    ------
    TypeError
        Non-float logits; a non-numeric coef.
    ValueError
        A negative or non-finite coef (value named); an unknown reduction.
    """
    logits, x, coef, loss_shape, _ = _z_setup(logits, coef, reduction)
    _, lse = _log_softmax_rows(x)
    loss = coef * lse**2
    return _reduce(loss.reshape(loss_shape), reduction, loss.size, logits.dtype)


def z_loss_grad(logits, *, coef=1e-4, reduction="mean", grad_output=None):
    """dL/dlogits of :func:`z_loss`: ``2 * coef * lse * softmax(x)`` per row.

    d lse / dx = softmax(x) (book, chapter 2), so by the chain rule
    d(coef * lse^2)/dx = 2 * coef * lse * p. The gradient vanishes when lse = 0,
    the point the loss pulls the rows toward.

    Parameters
    ----------
    logits, coef, reduction
        As in :func:`z_loss`.
    grad_output : array_like of float, optional
        A scalar for 'mean' and 'sum', an array of the loss's shape for 'none'.
        Default 1.

    Returns
    -------
    ndarray, shape and dtype of ``logits``

    Raises
    ------
    TypeError, ValueError
        As in :func:`z_loss`; also ValueError when ``grad_output`` does not have
        the loss's shape (both shapes named).
    """
    logits, x, coef, loss_shape, unflatten = _z_setup(logits, coef, reduction)
    M = x.shape[0]
    s = np.broadcast_to(_scale(grad_output, reduction, loss_shape, M), loss_shape).reshape(M)
    log_p, lse = _log_softmax_rows(x)
    grad = (2 * coef * s * lse)[:, None].astype(x.dtype) * np.exp(log_p)
    return unflatten(grad).astype(logits.dtype)


# ---------------------------------------------------------------------------
# soft-capping and temperature: elementwise maps applied to logits
# ---------------------------------------------------------------------------


def _elementwise_grad_output(grad_output, shape):
    if grad_output is None:
        return np.float64(1.0)
    g = _checks.check_float_array(grad_output, "grad_output")
    if g.shape != shape:
        raise ValueError(f"grad_output of shape {g.shape} does not match logits of shape {shape}")
    return g


def softcap(logits, cap):
    """Logit soft-capping ``cap * tanh(logits / cap)``.

    Gemma Team, "Gemma 2: Improving Open Language Models at a Practical Size"
    (2024), sec. 2: attention logits are capped at 50 and final logits at 30.
    The map is close to the identity for ``abs(x)`` much smaller than ``cap`` and
    bounded by ``cap`` in absolute value.

    Parameters
    ----------
    logits : array_like, float16/float32/float64, any shape
    cap : float > 0
        The soft cap.

    Returns
    -------
    ndarray, shape and dtype of ``logits``

    Raises
    ------
    TypeError
        Non-float logits; a non-numeric cap.
    ValueError
        A cap that is not positive and finite (value named).
    """
    logits, x = _float_input(logits, "logits")
    cap = _positive_finite(cap, "cap")
    return (cap * np.tanh(x / cap)).astype(logits.dtype)


def softcap_grad(logits, cap, *, grad_output=None):
    """The chain-rule factor of :func:`softcap`: ``grad_output * (1 - tanh^2(logits / cap))``.

    d/dx [cap * tanh(x / cap)] = cap * (1 - tanh^2(x / cap)) / cap. Multiply the
    gradient with respect to the capped logits by it (elementwise) to get the
    gradient with respect to the raw logits.

    Parameters
    ----------
    logits, cap
        As in :func:`softcap`.
    grad_output : array_like of float, shape of ``logits``, optional
        The gradient with respect to ``softcap(logits, cap)``. Default 1 (the
        derivative itself).

    Returns
    -------
    ndarray, shape and dtype of ``logits``

    Raises
    ------
    TypeError, ValueError
        As in :func:`softcap`; also ValueError when ``grad_output``'s shape
        differs from ``logits``' (both shapes named).
    """
    logits, x = _float_input(logits, "logits")
    cap = _positive_finite(cap, "cap")
    g = _elementwise_grad_output(grad_output, logits.shape)
    t = np.tanh(x / cap)
    return (g * (1 - t * t)).astype(logits.dtype)


def apply_temperature(logits, temperature):
    """Temperature scaling ``logits / temperature``.

    Hinton, Vinyals and Dean, "Distilling the Knowledge in a Neural Network"
    (2015): softmax(x / T) is softer for T > 1 and sharper for T < 1.

    Parameters
    ----------
    logits : array_like, float16/float32/float64, any shape
    temperature : float > 0

    Returns
    -------
    ndarray, shape and dtype of ``logits``

    Raises
    ------
    TypeError
        Non-float logits; a non-numeric temperature.
    ValueError
        A temperature that is not positive and finite (value named).
    """
    logits, x = _float_input(logits, "logits")
    T = _positive_finite(temperature, "temperature")
    return (x / T).astype(logits.dtype)


def apply_temperature_grad(logits, temperature, *, grad_output=None):
    """The chain-rule factor of :func:`apply_temperature`: ``grad_output / temperature``.

    Parameters
    ----------
    logits, temperature
        As in :func:`apply_temperature`.
    grad_output : array_like of float, shape of ``logits``, optional
        The gradient with respect to ``logits / temperature``. Default 1.

    Returns
    -------
    ndarray, shape and dtype of ``logits``

    Raises
    ------
    TypeError, ValueError
        As in :func:`apply_temperature`; also ValueError when ``grad_output``'s
        shape differs from ``logits``' (both shapes named).
    """
    logits, x = _float_input(logits, "logits")
    T = _positive_finite(temperature, "temperature")
    g = _elementwise_grad_output(grad_output, logits.shape)
    return (np.broadcast_to(g, logits.shape) / T).astype(logits.dtype)
