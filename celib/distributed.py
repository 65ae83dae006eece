"""Vocabulary-parallel cross-entropy on torch.distributed: the logits' classes split across ranks.

Imported only on request (``import celib.distributed``): ``import celib`` works without torch.

Each rank r of a process group holds the columns [v_r, v_r + V_r) of the logits (the
shards tile [0, V), possibly unevenly). With the effective target a_n and the scale s_n
of the design notes (``celib.reference``), the loss and its gradient are

    loss_n  = sum_c a_nc (lse_n - x_nc),
    lse_n   = m_n + log sum_r S_rn,          m_n = max_r m_rn,  S_rn = sum_{c in r} e^(x_nc - m_n),
    dL/dx_n = s_n (p_n A_n - a_n),           A_n = sum_c a_nc,

so the forward needs, per row, one MAX (the row maximum) and one SUM of a few stacked
numbers (S_rn, the target's logit from the rank that owns it, and, with label
smoothing or probability targets, the rank's share of sum_c a_nc (x_nc - m_n) and of
A_n). The backward restricts dL/dx_n to the rank's columns: p_n there is
e^(x_nc - lse_n), known locally once lse_n is; a_n there is local too. No communication.

Before any of that, one small all-reduce of per-rank metadata (shard range, a
fingerprint of the options and shapes, checksums of the target and the weight, an
error flag) lets every rank check the same facts and raise the same error: shards that
do not tile [0, V), options that differ between ranks, a target outside [0, V), or a
bad argument on any one rank. A mistake therefore raises on every rank instead of
leaving the others waiting in a collective.

Collectives per call: 3 for :func:`~celib.distributed.vocab_parallel_cross_entropy`
(metadata, MAX, SUM);
1 + 2 per chunk of rows for :func:`vocab_parallel_linear_cross_entropy`.
"""

from __future__ import annotations

import hashlib
import math
import os
import queue as _queue
import socket
import traceback

import numpy as np
import torch
import torch.distributed as dist

from . import _checks
from .torch_ops import checks as _tchecks
from .torch_ops import rows as _rows

__all__ = [
    "communication_bytes_per_row",
    "run_local_demo",
    "shard_bounds",
    "spawn_local_group",
    "vocab_parallel_cross_entropy",
    "vocab_parallel_linear_cross_entropy",
]


# ---------------------------------------------------------------------------
# local checks (no communication)
# ---------------------------------------------------------------------------


def _check_int(value, name, minimum=None):
    if isinstance(value, (bool, np.bool_)) or not isinstance(value, (int, np.integer)):
        raise TypeError(f"{name} must be an integer, got {value!r} of type {type(value).__name__}")
    if minimum is not None and value < minimum:
        raise ValueError(f"{name} must be at least {minimum}, got {value}")
    return int(value)


class _Spec:
    """The locally checked arguments of one call (shapes, kind, options)."""

    def __init__(
        self,
        local_shape,
        logits_dtype,
        target,
        weight,
        ignore_index,
        reduction,
        label_smoothing,
        vocab_start,
        device,
    ):
        if not isinstance(target, torch.Tensor):
            raise TypeError(f"target must be a torch.Tensor, got {type(target).__name__}")
        _checks.check_reduction(reduction)
        self.eps = _checks.check_label_smoothing(label_smoothing)
        self.ignore_index = _checks.check_ignore_index(ignore_index)
        self.vocab_start = _check_int(vocab_start, "vocab_start", 0)
        if len(local_shape) == 0:
            raise ValueError(
                "local_logits must have at least one dimension (the classes), got a scalar"
            )
        self.class_axis = 0 if len(local_shape) == 1 else 1
        self.V_local = local_shape[self.class_axis]
        self.loss_shape = local_shape[: self.class_axis] + local_shape[self.class_axis + 1 :]
        self.M = math.prod(self.loss_shape)
        if tuple(target.shape) == local_shape and target.dtype.is_floating_point:
            self.kind = "probabilities"
            _checks.check_probability_options(self.ignore_index)
        elif tuple(target.shape) == self.loss_shape:
            if (
                target.dtype.is_floating_point
                or target.dtype == torch.bool
                or target.dtype.is_complex
            ):
                raise TypeError(f"class-index targets must be integers, got dtype {target.dtype}")
            self.kind = "indices"
        else:
            raise ValueError(
                f"target of shape {tuple(target.shape)} does not match local_logits of shape "
                f"{local_shape}: expected global class indices of shape {self.loss_shape} or "
                f"this rank's shard of probabilities, of shape {local_shape}"
            )
        if target.device != device and device.type != "meta":
            raise ValueError(f"target is on {target.device} but the logits on {device}")
        if weight is not None:
            _tchecks.check_float_tensor(weight, "weight")
            if weight.dim() != 1:
                raise ValueError(
                    f"weight must be the global (V,) class-weight vector, got shape "
                    f"{tuple(weight.shape)}"
                )
            if weight.device != device and device.type != "meta":
                raise ValueError(f"weight is on {weight.device} but the logits on {device}")
            if weight.requires_grad and torch.is_grad_enabled():
                raise RuntimeError(
                    "weight requires grad, but the loss is not differentiable "
                    "with respect to the class weights (as in torch); pass "
                    "weight.detach()"
                )
        self.reduction = reduction
        self.local_shape = local_shape
        self.dtype = logits_dtype
        self.has_weight = weight is not None
        self.extra = None  # what else must agree (the linear variant: H and chunk_size)

    def fingerprint(self, target, weight):
        """What must agree between ranks: options, shapes (less the shard width), dtypes."""
        shape = list(self.local_shape)
        shape[self.class_axis] = -1
        text = repr(
            (
                self.reduction,
                self.ignore_index,
                self.eps,
                self.kind,
                tuple(shape),
                str(self.dtype),
                str(target.dtype),
                None if weight is None else (tuple(weight.shape), str(weight.dtype)),
            )
        )
        return int.from_bytes(hashlib.blake2b(text.encode(), digest_size=6).digest(), "little")

    def extra_fingerprint(self):
        """The same for what else must agree (the linear variant's H and chunk_size)."""
        text = repr(self.extra)
        return int.from_bytes(hashlib.blake2b(text.encode(), digest_size=6).digest(), "little")

    def rows(self, t):
        """(..., V_local, ...) -> (M, V_local), the class axis last."""
        return t.movedim(self.class_axis, -1).reshape(self.M, self.V_local)

    def unrows(self, t):
        moved = self.loss_shape + (self.V_local,)
        return t.reshape(moved).movedim(-1, self.class_axis)


# ---------------------------------------------------------------------------
# the metadata exchange: one small all-reduce, the same verdict on every rank
# ---------------------------------------------------------------------------

_FIELDS = 10  # error, start, width, fingerprint, target checksums (2), weight checksums (2), kind,
#               the linear variant's (H, chunk_size)


def _comm_device(group, tensor):
    if dist.get_backend(group) == "nccl":
        return torch.device("cuda", torch.cuda.current_device())
    return tensor.device if isinstance(tensor, torch.Tensor) else torch.device("cpu")


def _checksums(t):
    """Two float64 sums of ``t`` (the second position-weighted): equal for equal tensors."""
    if t is None or t.numel() == 0:
        return 0.0, 0.0
    flat = t.detach().reshape(-1).to(torch.float64)
    flat = torch.nan_to_num(flat, nan=1.5e300, posinf=1.25e300, neginf=-1.25e300)
    pos = (torch.arange(flat.numel(), device=flat.device) % 9973 + 1).to(torch.float64)
    return float(flat.sum()), float((flat * pos).sum())


def _agree(group, device, spec, error, target, weight):
    """All-reduce every rank's metadata row; raise the same error on every rank if needed.

    Returns (V, starts, widths) once the shards tile [0, V) and the options agree.
    """
    rank, world = dist.get_rank(group), dist.get_world_size(group)
    table = torch.zeros((world, _FIELDS), dtype=torch.float64, device=device)
    if error is None:
        t1, t2 = _checksums(target) if spec.kind == "indices" else (0.0, 0.0)
        w1, w2 = _checksums(weight)
        row = [
            0.0,
            spec.vocab_start,
            spec.V_local,
            spec.fingerprint(target, weight),
            t1,
            t2,
            w1,
            w2,
            1.0 if spec.kind == "indices" else 2.0,
            spec.extra_fingerprint(),
        ]
    else:
        row = [1.0] + [0.0] * (_FIELDS - 1)
    table[rank] = torch.tensor(row, dtype=torch.float64, device=device)
    dist.all_reduce(table, op=dist.ReduceOp.SUM, group=group)
    table = table.cpu().numpy()
    failed = [r for r in range(world) if table[r, 0] != 0]
    if failed:
        if error is not None:
            raise error
        raise RuntimeError(
            f"vocab_parallel_cross_entropy: rank(s) {failed} of {world} rejected "
            "their arguments (see the error raised there); nothing was computed"
        )
    starts = [int(s) for s in table[:, 1]]
    widths = [int(w) for w in table[:, 2]]
    ranges = ", ".join(f"rank {r}: [{s}, {s + w})" for r, (s, w) in enumerate(zip(starts, widths)))
    order = sorted(range(world), key=lambda r: (starts[r], widths[r]))
    end = 0
    for r in order:
        if starts[r] != end:
            what = "a gap" if starts[r] > end else "an overlap"
            raise ValueError(
                f"the vocabulary shards do not tile [0, V): {what} at class "
                f"{min(end, starts[r])} ({ranges}); each rank's [vocab_start, "
                "vocab_start + V_local) must follow the previous one"
            )
        end += widths[r]
    V = end
    names = {
        3: "options or shapes (reduction, ignore_index, label_smoothing, target kind, "
        "row shape, dtypes)",
        4: "targets",
        5: "targets",
        6: "weights",
        7: "weights",
        8: "target kinds",
        9: "linear layer's input width H or chunk_size",
    }
    for col in (3, 8, 9, 4, 5, 6, 7):
        differ = [r for r in range(world) if table[r, col] != table[0, col]]
        if differ:
            raise ValueError(
                f"vocab_parallel_cross_entropy: the {names[col]} differ between "
                f"rank 0 and rank(s) {differ}; every rank must pass the same "
                "target (class indices), weight and options"
            )
    if weight is not None and weight.shape[0] != V:
        raise ValueError(
            f"weight of shape {tuple(weight.shape)} does not match the global "
            f"vocabulary of {V} classes ({ranges}): expected shape ({V},)"
        )
    if spec.kind == "indices":
        _check_class_indices(target, V, spec.ignore_index)
    return V, starts, widths


def _check_class_indices(target, V, ignore_index):
    """celib.torch_ops' IndexError (computed on the device), saying that every rank raises it."""
    try:
        _tchecks.check_class_indices(target, V, ignore_index)
    except IndexError as exc:
        raise IndexError(f"{exc}; the same error is raised on every rank") from None


# ---------------------------------------------------------------------------
# the effective target on this rank's columns
# ---------------------------------------------------------------------------


class _IndexTarget:
    """a_n = alpha_n onehot(y_n) + beta_n w for global class indices y_n (sparse).

    alpha_n = (1 - eps) w[y_n], beta_n = eps / V for a kept target, both 0 for an
    ignored one; on this rank only the columns [start, start + V_local) of a_n exist.
    """

    def __init__(self, y, V, start, V_local, weight, ignore_index, eps, cdt):
        self.keep = y != ignore_index
        self.y = torch.where(self.keep, y, torch.zeros((), dtype=y.dtype, device=y.device)).long()
        self.owned = self.keep & (self.y >= start) & (self.y < start + V_local)
        self.y_local = torch.where(self.owned, self.y - start, 0)
        self.w = None if weight is None else weight.to(cdt)
        self.w_local = None if weight is None else self.w[start : start + V_local]
        self.w_y = (
            self.keep.to(cdt)
            if self.w is None or V == 0
            else torch.where(self.keep, self.w[self.y], torch.zeros((), dtype=cdt, device=y.device))
        )
        self.alpha = (1.0 - eps) * self.w_y
        self.beta = self.keep.to(cdt) * (eps / V) if eps and V else None
        self.sum_w = float(V) if self.w is None else self.w.sum()
        self.V_local = V_local

    def denominator(self):
        return self.w_y.sum()

    def partial_sums(self, x, shift, lo, hi):
        """This rank's shares of the target logit and (with smoothing) sum_c w_c x_c, shifted."""
        rows = torch.arange(hi - lo, device=x.device)
        owned = self.owned[lo:hi]
        if self.V_local:
            x_y = torch.where(owned, x[rows, self.y_local[lo:hi]] - shift, 0.0)
        else:
            x_y = x.new_zeros(hi - lo)
        out = [x_y]
        if self.beta is not None:
            xs = x - shift[:, None]
            if self.w is None:
                out.append(xs.sum(dim=1))
            else:  # classes of weight 0 skipped (0 * inf would be NaN)
                out.append(torch.where(self.w_local != 0, xs, 0.0) @ self.w_local)
        return out

    def finish(self, log_s, sums, lo, hi):
        """loss_n = alpha (lse - x_y) + beta sum_c w_c (lse - x_c), in shifted terms; A_n."""
        alpha = self.alpha[lo:hi]
        loss = _rows.times(alpha, log_s - sums[0])
        mass = alpha
        if self.beta is not None:
            beta = self.beta[lo:hi]
            loss = loss + _rows.times(beta, log_s * self.sum_w - sums[1])
            mass = alpha + beta * self.sum_w
        return torch.where(self.keep[lo:hi], _rows.no_softmax_is_nan(loss, log_s), 0.0), mass

    def grad(self, p, s, mass, lo, hi):
        """s (p A - a) on this rank's columns, in place of p."""
        s = s if s.dim() == 0 else s[lo:hi]
        g = p.mul_((s * mass[lo:hi])[:, None])
        if self.beta is not None:
            sb = (s * self.beta[lo:hi])[:, None]
            g.sub_(sb if self.w_local is None else sb * self.w_local)
        if self.V_local:
            rows = torch.nonzero(self.owned[lo:hi]).reshape(-1)
            cols = self.y_local[lo:hi][rows]
            sa = s if s.dim() == 0 else s[rows]
            g[rows, cols] -= sa * self.alpha[lo:hi][rows]
        return torch.where(self.keep[lo:hi, None], g, 0.0)


class _ProbTarget:
    """a_n = ((1 - eps) q_n + eps / V) w on this rank's columns (q: the local shard)."""

    def __init__(self, q_rows, V, start, V_local, weight, eps, cdt):
        self.q = q_rows
        self.w_local = None if weight is None else weight.to(cdt)[start : start + V_local]
        self.eps, self.V, self.cdt = eps, V, cdt
        self.M = q_rows.shape[0]

    def a(self, lo, hi):
        a = self.q[lo:hi].to(self.cdt)
        if self.eps and self.V:
            a = (1.0 - self.eps) * a + self.eps / self.V
        if self.w_local is not None:
            a = a * self.w_local
        return a

    def denominator(self):
        return torch.tensor(float(self.M) if self.V else 0.0, dtype=self.cdt, device=self.q.device)

    def partial_sums(self, x, shift, lo, hi):
        a = self.a(lo, hi)
        ax = torch.where(a != 0, a * (x - shift[:, None]), 0.0).sum(dim=1)
        return [ax, a.sum(dim=1)]

    def finish(self, log_s, sums, lo, hi):
        ax, mass = sums
        loss = _rows.times(mass, log_s) - ax
        return (_rows.no_softmax_is_nan(loss, log_s) if self.V else loss), mass  # V = 0: empty sums

    def grad(self, p, s, mass, lo, hi):
        s = s if s.dim() == 0 else s[lo:hi]
        g = p.mul_((s * mass[lo:hi])[:, None])
        s2 = s if s.dim() == 0 else s[:, None]
        return g.sub_(s2 * self.a(lo, hi))

    def grad_target(self, x, lse, s, lo, hi):
        """dL/dq_nc = s_n (1 - eps) w_c (lse_n - x_nc) on this rank's columns."""
        s = s if s.dim() == 0 else s[lo:hi, None]
        g = (1.0 - self.eps) * (lse[lo:hi, None] - x) * s
        return g if self.w_local is None else g * self.w_local


def _make_target(spec, target, weight, V, cdt):
    if spec.kind == "indices":
        return _IndexTarget(
            target.reshape(spec.M),
            V,
            spec.vocab_start,
            spec.V_local,
            weight,
            spec.ignore_index,
            spec.eps,
            cdt,
        )
    return _ProbTarget(spec.rows(target), V, spec.vocab_start, spec.V_local, weight, spec.eps, cdt)


# ---------------------------------------------------------------------------
# the forward of a block of rows: 2 collectives (MAX, then one SUM of stacked rows)
# ---------------------------------------------------------------------------


def _forward_rows(x, tgt, lo, hi, group):
    """lse, loss and A_n for rows lo:hi of the local logits x (compute dtype), all ranks at once."""
    n = hi - lo
    m = x.amax(dim=1) if x.shape[1] else x.new_full((n,), -math.inf)
    dist.all_reduce(m, op=dist.ReduceOp.MAX, group=group)  # collective 1: the row maximum
    shift = torch.where(torch.isfinite(m), m, 0.0)  # torch's logsumexp convention
    parts = [torch.exp(x - shift[:, None]).sum(dim=1)] + tgt.partial_sums(x, shift, lo, hi)
    stacked = torch.stack(parts)
    dist.all_reduce(stacked, op=dist.ReduceOp.SUM, group=group)  # collective 2: all sums at once
    log_s = torch.log(stacked[0])
    lse = shift + log_s
    no_softmax = lse == math.inf  # a row holding +inf: NaN, as celib's torch path
    lse = lse.masked_fill(no_softmax, math.nan)
    log_s = log_s.masked_fill(no_softmax, math.nan)
    loss, mass = tgt.finish(log_s, list(stacked[1:]), lo, hi)
    return lse, loss, mass


def _scale(reduction, denom, grad_output, M, cdt):
    g = grad_output.to(cdt)
    if reduction == "none":
        return g.reshape(M)
    if reduction == "sum":
        return g
    return _rows.mean(g, denom)  # NaN for a zero denominator, like the loss


class _VocabParallelCE(torch.autograd.Function):
    """Forward: 2 collectives (after the metadata exchange). Backward: local only."""

    @staticmethod
    def forward(ctx, local_logits, target, weight, spec, V, group):
        cdt = _tchecks.compute_dtype(local_logits.dtype)
        x = spec.rows(local_logits).to(cdt)
        tgt = _make_target(spec, target, weight, V, cdt)
        lse, loss, mass = _forward_rows(x, tgt, 0, spec.M, group)
        denom = tgt.denominator()
        ctx.spec, ctx.tgt, ctx.denom = spec, tgt, denom
        ctx.save_for_backward(local_logits, lse, mass)
        return _rows.reduce(spec, loss, denom).to(local_logits.dtype)

    @staticmethod
    def backward(ctx, grad_output):
        local_logits, lse, mass = ctx.saved_tensors
        spec, tgt = ctx.spec, ctx.tgt
        cdt = lse.dtype
        s = _scale(spec.reduction, ctx.denom, grad_output, spec.M, cdt)
        x = spec.rows(local_logits).to(cdt)
        grad_logits = grad_target = None
        if ctx.needs_input_grad[0]:
            p = torch.exp(x - lse[:, None])
            g = tgt.grad(p, s, mass, 0, spec.M)
            grad_logits = spec.unrows(g.to(local_logits.dtype))
        if ctx.needs_input_grad[1]:  # probability targets (class indices are integers)
            grad_target = spec.unrows(tgt.grad_target(x, lse, s, 0, spec.M).to(local_logits.dtype))
        return grad_logits, grad_target, None, None, None, None


def _prepare(
    shape,
    dtype,
    device,
    target,
    weight,
    ignore_index,
    reduction,
    label_smoothing,
    vocab_start,
    group,
    probe,
    extra=None,
):
    """Local checks, then the metadata exchange (always reached, so no rank is left waiting)."""
    if not dist.is_available() or not dist.is_initialized():
        raise RuntimeError(
            "torch.distributed is not initialised: call torch.distributed.init_process_group first"
        )
    group = group if group is not None else dist.group.WORLD
    spec, error = None, None
    try:
        spec = _Spec(
            shape,
            dtype,
            target,
            weight,
            ignore_index,
            reduction,
            label_smoothing,
            vocab_start,
            device,
        )
        spec.extra = extra
    except Exception as exc:  # noqa: BLE001  (any rejection reaches the exchange: no rank waits)
        error = exc
    V, _, _ = _agree(group, _comm_device(group, probe), spec, error, target, weight)
    return spec, V, group


def vocab_parallel_cross_entropy(
    local_logits,
    target,
    *,
    vocab_start,
    group=None,
    weight=None,
    ignore_index=-100,
    reduction="mean",
    label_smoothing=0.0,
):
    """Cross-entropy of logits whose classes are split across the ranks of a process group.

    Every rank passes its own shard of the logits, the columns ``[vocab_start,
    vocab_start + V_local)`` of the full (N, V) (or (N, V, d1, ..., dk)) logits, and
    the same target, weight and options; every rank gets the same loss as
    ``torch.nn.functional.cross_entropy`` on the full logits, and its backward leaves
    each rank the gradient of its own shard (computed with no communication).

    Parameters
    ----------
    local_logits : torch.Tensor, float16, bfloat16, float32 or float64
        This rank's shard: shape (V_local,), (N, V_local) or (N, V_local, d1, ..., dk).
        Shards may be uneven (V_local may even be 0); together they must tile [0, V).
    target : torch.Tensor
        Global class indices, integers of shape (), (N,) or (N, d1, ..., dk), the same on
        every rank; or this rank's shard of class probabilities, ``local_logits``' shape.
    vocab_start : int
        The global index of this rank's first class.
    group : torch.distributed.ProcessGroup, optional
        Default: the default group. Any backend (gloo on CPU, nccl on GPUs).
    weight : torch.Tensor, shape (V,), optional
        The global class weights, the same on every rank.
    ignore_index : int, default -100
    reduction : {'mean', 'sum', 'none'}, default 'mean'
    label_smoothing : float in [0, 1], default 0.0
        As in ``torch.nn.functional.cross_entropy``; eps / V spreads over the global V.

    Returns
    -------
    torch.Tensor of ``local_logits``' dtype
        Shape () for 'mean' and 'sum', the loss shape for 'none'; equal on every rank.

    Raises
    ------
    TypeError, ValueError, RuntimeError
        For bad arguments, as ``celib.torch_ops.cross_entropy``. An argument rejected on
        one rank raises there, and a RuntimeError naming that rank on the others.
    ValueError
        On every rank: shards that do not tile [0, V) (each rank's range named); options,
        shapes, dtypes, target or weight that differ between ranks; a weight not of shape (V,).
    IndexError
        On every rank: a class index outside [0, V) that is not ignore_index (first value
        and position named).

    Notes
    -----
    Collectives: one all-reduce of a (world, 10) float64 metadata table, run before any
    number is computed, so that all ranks raise the same error rather than some of
    them waiting in a collective; then one all-reduce MAX of the row maxima m_n and
    one all-reduce SUM of 2 to 3 stacked numbers per row: sum_c e^(x_nc - m_n), the
    target's shifted logit (from its owner), and with label smoothing the rank's share
    of sum_c w_c (x_nc - m_n); for probability targets the rank's shares of
    sum_c a_nc (x_nc - m_n) and A_n. Then lse_n = m_n + log sum_r S_rn (the
    combination rule of the online softmax) and loss_n = sum_c a_nc (lse_n - x_nc). The
    backward s_n (p_n A_n - a_n) on the local columns needs lse_n and A_n, both saved.
    Derivation: chapter 12 of the book; formula of the effective target a_n and the
    scale s_n: ``celib.reference``.
    """
    if (
        not isinstance(local_logits, torch.Tensor)
        or local_logits.dtype not in _tchecks.FLOAT_DTYPES
    ):
        try:
            _tchecks.check_float_tensor(local_logits, "local_logits")
        except TypeError as exc:  # reach the exchange anyway: the other ranks must not hang
            _prepare_failed(group, exc, local_logits)
    spec, V, group = _prepare(
        tuple(local_logits.shape),
        local_logits.dtype,
        local_logits.device,
        target,
        weight,
        ignore_index,
        reduction,
        label_smoothing,
        vocab_start,
        group,
        local_logits,
    )
    return _VocabParallelCE.apply(local_logits, target, weight, spec, V, group)


def _prepare_failed(group, error, probe):
    if not dist.is_available() or not dist.is_initialized():
        raise error
    group = group if group is not None else dist.group.WORLD
    _agree(group, _comm_device(group, probe), None, error, None, None)


# ---------------------------------------------------------------------------
# the linear variant: chunks of rows, no N x V_local logits
# ---------------------------------------------------------------------------


class _VocabParallelLinearCE(torch.autograd.Function):
    """'mean'/'sum': gradients computed in the forward (2 collectives per chunk), scaled in
    backward. 'none': the backward recomputes each chunk's logits with the saved lse
    (no communication)."""

    @staticmethod
    def forward(ctx, x, W, b, target, weight, spec, V, group, chunk):
        cdt = _tchecks.compute_dtype(x.dtype)
        N = spec.M
        tgt = _make_target(spec, target, weight, V, cdt)
        denom = tgt.denominator()
        want = tuple(ctx.needs_input_grad[:3])
        precompute = spec.reduction != "none" and any(want)
        s = (
            _scale(spec.reduction, denom, torch.ones((), dtype=cdt, device=x.device), N, cdt)
            if precompute
            else None
        )
        loss = torch.empty(N, dtype=cdt, device=x.device)
        lse = torch.empty(N, dtype=cdt, device=x.device)
        mass = torch.empty(N, dtype=cdt, device=x.device)
        gx, gw, gb = _linear_grads_init(x, W, b, want if precompute else (False,) * 3, cdt)
        for lo in range(0, N, chunk):
            hi = min(N, lo + chunk)
            z = x[lo:hi] @ W.T if b is None else torch.addmm(b, x[lo:hi], W.T)
            zc = z.to(cdt)
            lse[lo:hi], loss[lo:hi], mass[lo:hi] = _forward_rows(zc, tgt, lo, hi, group)
            if precompute:
                g = tgt.grad(torch.exp(zc - lse[lo:hi, None]), s, mass, lo, hi).to(x.dtype)
                _linear_grads_add(g, x, W, lo, hi, gx, gw, gb)
        out = _rows.reduce(spec, loss, denom)
        ctx.spec, ctx.tgt, ctx.denom, ctx.chunk, ctx.want = spec, tgt, denom, chunk, want
        ctx.grads = (gx, gw, None if gb is None else gb.to(W.dtype)) if precompute else None
        if not precompute:
            ctx.save_for_backward(x, W, b, lse, mass)
        return out.to(x.dtype)

    @staticmethod
    def backward(ctx, grad_output):
        with torch.no_grad():
            spec = ctx.spec
            if spec.reduction != "none":
                if ctx.grads is None:
                    raise RuntimeError(
                        "vocab_parallel_linear_cross_entropy computes its "
                        "gradients in the forward; backward through it a second "
                        "time is not supported"
                    )
                grads = tuple(None if g is None else g * grad_output.to(g.dtype) for g in ctx.grads)
            else:
                x, W, b, lse, mass = ctx.saved_tensors
                cdt = lse.dtype
                s = _scale("none", ctx.denom, grad_output, spec.M, cdt)
                gx, gw, gb = _linear_grads_init(x, W, b, ctx.want, cdt)
                for lo in range(0, spec.M, ctx.chunk):
                    hi = min(spec.M, lo + ctx.chunk)
                    z = x[lo:hi] @ W.T if b is None else torch.addmm(b, x[lo:hi], W.T)
                    p = torch.exp(z.to(cdt) - lse[lo:hi, None])
                    g = ctx.tgt.grad(p, s, mass, lo, hi).to(x.dtype)
                    _linear_grads_add(g, x, W, lo, hi, gx, gw, gb)
                grads = (gx, gw, None if gb is None else gb.to(W.dtype))
        gx, gw, gb = grads
        return gx, gw, gb, None, None, None, None, None, None


def _linear_grads_init(x, W, b, want, cdt):
    gx = torch.zeros_like(x) if want[0] else None
    gw = torch.zeros_like(W) if want[1] else None
    gb = torch.zeros(W.shape[0], dtype=cdt, device=x.device) if want[2] and b is not None else None
    return gx, gw, gb


def _linear_grads_add(g, x, W, lo, hi, gx, gw, gb):
    """dL/dx_c = g W (this rank's share), dL/dW += g^T x_c, dL/db += sum_rows g."""
    if gx is not None:
        torch.mm(g, W, out=gx[lo:hi])
    if gw is not None:
        gw.addmm_(g.T, x[lo:hi])
    if gb is not None:
        gb += g.sum(dim=0, dtype=gb.dtype)


def vocab_parallel_linear_cross_entropy(
    input,
    local_linear_weight,
    target,
    *,
    vocab_start,
    group=None,
    linear_bias=None,
    weight=None,
    ignore_index=-100,
    reduction="mean",
    label_smoothing=0.0,
    chunk_size=None,
):
    """Cross-entropy of ``input @ W.T + b``, the output layer W split by vocabulary across ranks.

    Each rank holds the rows ``[vocab_start, vocab_start + V_local)`` of the (V, H)
    output layer (and of its bias). The rows of ``input`` are processed ``chunk_size`` at
    a time, as in ``celib.torch_ops.linear_cross_entropy``: a chunk's local logits are
    formed, reduced across ranks (one MAX and one SUM all-reduce), turned into loss and,
    in place, into their gradient g = s (p A - a) on the local columns, and consumed at
    once: dL/dinput = g W_local, dL/dW_local += g^T input, dL/db_local += sum g. No
    N x V_local logits are kept.

    Parameters
    ----------
    input : torch.Tensor, float, shape (H,) or (N, H)
        The same on every rank (the output of the replicated trunk).
    local_linear_weight : torch.Tensor, shape (V_local, H), ``input``'s dtype
    target : torch.Tensor
        Global class indices of shape () or (N,), the same on every rank; or this rank's
        shard of probabilities, shape (V_local,) or (N, V_local).
    vocab_start : int
    group, weight, ignore_index, reduction, label_smoothing
        As in :func:`~celib.distributed.vocab_parallel_cross_entropy`.
    linear_bias : torch.Tensor, shape (V_local,), optional
        This rank's shard of the bias.
    chunk_size : int, optional
        Rows per chunk, the same on every rank; default about 2^20 / ceil(V / world) rows
        (the same on every rank, whatever the shards).

    Returns
    -------
    torch.Tensor of ``input``'s dtype: shape () for 'mean' and 'sum', (N,) or () for 'none'.

    Notes
    -----
    The gradient left in ``input.grad`` is this rank's share g_r W_r; the full
    dL/dinput is their sum over ranks, which the caller all-reduces (Megatron's
    ``copy_to_tensor_model_parallel_region`` does exactly that in its backward). The
    gradients of ``local_linear_weight`` and ``linear_bias`` are complete on each rank.
    For 'mean' and 'sum' the gradients are computed in the forward (the mean's
    denominator is known locally: the target is global) and scaled in backward; for
    'none' the backward recomputes the chunks' logits (one more matmul per chunk, no
    communication). Not twice differentiable.

    Raises
    ------
    TypeError, ValueError, IndexError, RuntimeError
        As :func:`~celib.distributed.vocab_parallel_cross_entropy` (the same error on every
        rank), and
        ValueError for shapes of input, local_linear_weight and linear_bias that do not fit,
        and, on every rank, for an input width H or a chunk_size that differs between ranks.
    """
    error = None
    try:
        for t, name in ((input, "input"), (local_linear_weight, "local_linear_weight")):
            _tchecks.check_float_tensor(t, name)
        if input.dim() not in (1, 2):
            raise ValueError(f"input must have shape (H,) or (N, H), got {tuple(input.shape)}")
        if local_linear_weight.dim() != 2 or local_linear_weight.shape[1] != input.shape[-1]:
            raise ValueError(
                f"local_linear_weight of shape {tuple(local_linear_weight.shape)} "
                f"does not match input of shape {tuple(input.shape)}: expected "
                f"(V_local, {input.shape[-1]})"
            )
        V_local = local_linear_weight.shape[0]
        if linear_bias is not None:
            _tchecks.check_float_tensor(linear_bias, "linear_bias")
            if tuple(linear_bias.shape) != (V_local,):
                raise ValueError(
                    f"linear_bias of shape {tuple(linear_bias.shape)} does not "
                    f"match local_linear_weight: expected ({V_local},)"
                )
        for t, name in ((local_linear_weight, "local_linear_weight"), (linear_bias, "linear_bias")):
            if t is not None and t.dtype != input.dtype:
                raise TypeError(f"{name} has dtype {t.dtype} but input has dtype {input.dtype}")
        if chunk_size is not None:
            _check_int(chunk_size, "chunk_size", 1)
    except Exception as exc:  # noqa: BLE001  (reach the exchange anyway: no rank waits)
        error = exc
    if error is not None:
        _prepare_failed(group, error, input)
    N = input.shape[0] if input.dim() == 2 else 1
    shape = (input.shape[0], V_local) if input.dim() == 2 else (V_local,)
    # every rank must run the same chunks (2 collectives each): chunk_size and H are agreed
    # with the other options, and the default depends on global sizes only (not V_local,
    # which differs between uneven shards)
    spec, V, group = _prepare(
        shape,
        input.dtype,
        input.device,
        target,
        weight,
        ignore_index,
        reduction,
        label_smoothing,
        vocab_start,
        group,
        input,
        extra=(int(input.shape[-1]), None if chunk_size is None else int(chunk_size)),
    )
    world = dist.get_world_size(group)
    chunk = (
        int(chunk_size)
        if chunk_size is not None
        else max(1, min(N, (1 << 20) // max(-(-V // world), 1)))
    )
    x = input.reshape(spec.M, input.shape[-1])
    return _VocabParallelLinearCE.apply(
        x, local_linear_weight, linear_bias, target, weight, spec, V, group, chunk
    )


# ---------------------------------------------------------------------------
# a local process group for the book, the tests and the benchmark
# ---------------------------------------------------------------------------


def _free_port():
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _worker(rank, world_size, port, fn, args, results):
    os.environ.setdefault("OMP_NUM_THREADS", "1")
    torch.set_num_threads(1)
    try:
        dist.init_process_group(
            "gloo", init_method=f"tcp://127.0.0.1:{port}", rank=rank, world_size=world_size
        )
        try:
            out = fn(rank, world_size, *args)
        finally:
            dist.destroy_process_group()
        results.put((rank, True, out))
    except BaseException:  # noqa: BLE001  (reported to the parent, which raises)
        results.put((rank, False, traceback.format_exc()))


def spawn_local_group(fn, world_size, args=(), *, timeout=120.0):
    """Run ``fn(rank, world_size, *args)`` in ``world_size`` new processes joined by gloo.

    The processes talk over 127.0.0.1 only (a free port), use one thread each, and are
    killed if they have not all returned within ``timeout`` seconds, so that a hang
    fails fast instead of blocking the caller.

    Parameters
    ----------
    fn : callable
        A module-level function (it is pickled into each process); its return value must
        pickle.
    world_size : int, at least 1
    args : tuple
        Extra arguments, pickled.
    timeout : float
        Seconds for the whole group.

    Returns
    -------
    list
        ``fn``'s return value on each rank, in rank order.

    Raises
    ------
    RuntimeError
        A rank raised (its traceback is included), or the group did not finish in time.
    """
    import time

    import torch.multiprocessing as mp

    world_size = _check_int(world_size, "world_size", 1)
    # a fork server that has imported torch once forks each rank: no OpenMP state is
    # inherited from the caller (fork's hazard) and torch is not imported again (spawn's cost)
    ctx = mp.get_context("forkserver")
    ctx.set_forkserver_preload(["torch", "celib.distributed"])
    results = ctx.Queue()
    port = _free_port()
    procs = [
        ctx.Process(
            target=_worker, args=(r, world_size, port, fn, tuple(args), results), daemon=True
        )
        for r in range(world_size)
    ]
    for p in procs:
        p.start()
    out, errors = {}, []
    deadline = time.monotonic() + timeout
    try:
        while len(out) + len(errors) < world_size:
            left = deadline - time.monotonic()
            if left <= 0:
                raise RuntimeError(
                    f"spawn_local_group: {world_size - len(out) - len(errors)} "
                    f"rank(s) did not finish within {timeout} s"
                )
            try:
                rank, ok, value = results.get(timeout=min(left, 1.0))
            except _queue.Empty:
                if any(p.exitcode not in (None, 0) for p in procs) and results.empty():
                    dead = [r for r, p in enumerate(procs) if p.exitcode not in (None, 0)]
                    raise RuntimeError(
                        f"spawn_local_group: rank(s) {dead} exited without a result"
                    ) from None
                continue
            if ok:
                out[rank] = value
            else:
                errors.append(f"rank {rank}:\n{value}")
    finally:
        for p in procs:
            p.join(timeout=max(0.1, min(5.0, deadline - time.monotonic())))
        for p in procs:
            if p.is_alive():
                p.kill()
                p.join(timeout=5.0)
        results.close()
    if errors:
        raise RuntimeError("spawn_local_group: a rank raised\n" + "\n".join(errors))
    return [out[r] for r in range(world_size)]


def shard_bounds(V, world_size):
    """Each rank's columns [start, stop) as ``torch.chunk`` (and DTensor's ``Shard``) splits V.

    Parameters
    ----------
    V : int
        Number of classes.
    world_size : int
        Number of ranks.

    Returns
    -------
    list of tuple of int
        ``world_size`` pairs (start, stop): ceil(V / world_size) columns each, the last
        ranks fewer (possibly none).
    """
    size = -(-V // world_size) if world_size else 0
    return [(min(V, r * size), min(V, (r + 1) * size)) for r in range(world_size)]


def _demo_worker(rank, world_size, N, V, seed, cases):
    return [
        _demo_case(rank, world_size, case.get("N", N), case.get("V", V), seed, case)
        for case in cases
    ]


def _demo_case(rank, world_size, N, V, seed, options):
    import torch.nn.functional as F

    g = torch.Generator().manual_seed(seed)
    logits = torch.randn(N, V, generator=g, dtype=torch.float64) * 3
    target = torch.randint(0, V, (N,), generator=g)
    weight = (
        torch.rand(V, generator=g, dtype=torch.float64) + 0.5 if options.get("weight") else None
    )
    if options.get("ignore"):
        target[::4] = -100
    lo, hi = shard_bounds(V, world_size)[rank]
    local = logits[:, lo:hi].clone().requires_grad_(True)
    opts = {
        "weight": weight,
        "reduction": options.get("reduction", "mean"),
        "label_smoothing": options.get("label_smoothing", 0.0),
    }
    bad = options.get("bad")
    if bad is not None:  # a deliberate mistake: report what each rank raised
        start = lo + 1 if bad == "shards" and rank == world_size - 1 else lo
        if bad == "target":
            target[2] = V
        if bad == "options" and rank == world_size - 1:
            opts["reduction"] = "sum"
        try:
            vocab_parallel_cross_entropy(local, target, vocab_start=start, **opts)
        except Exception as exc:  # noqa: BLE001  (shown, not raised)
            return {"rank": rank, "error": f"{type(exc).__name__}: {exc}"}
        return {"rank": rank, "error": None}
    loss = vocab_parallel_cross_entropy(local, target, vocab_start=lo, **opts)
    loss.backward()
    full = logits.clone().requires_grad_(True)
    ref = F.cross_entropy(full, target, **opts)
    ref.backward()
    return {
        "rank": rank,
        "columns": (lo, hi),
        "loss": float(loss.detach()),
        "reference": float(ref.detach()),
        "grad_error": float((local.grad - full.grad[:, lo:hi]).abs().max()),
        "loss_error": abs(float(loss.detach()) - float(ref.detach())),
    }


def run_local_demo(world_size=2, *, N=8, V=11, seed=0, timeout=120.0, cases=None, **options):
    """Compute losses on ``world_size`` local gloo processes and compare with F.cross_entropy.

    Each rank holds ``torch.chunk``-style columns of seeded float64 (N, V) logits (so the
    last shard may be narrower), calls
    :func:`~celib.distributed.vocab_parallel_cross_entropy` and its
    backward, and compares with ``F.cross_entropy`` on the full logits.

    Parameters
    ----------
    world_size : int
    N, V : int
        Rows and classes.
    seed : int
    timeout : float
        Seconds before the processes are killed (:func:`~celib.distributed.spawn_local_group`).
    cases : list of dict, optional
        Several option sets (each may also set ``N`` and ``V``) run in the same group,
        since starting the processes is the slow part.
    **options
        ``weight`` (bool), ``ignore`` (bool: every fourth target ignored), ``reduction``,
        ``label_smoothing``; ``bad`` ('target', 'shards' or 'options') makes a deliberate
        mistake (a target equal to V; a gap before the last shard; another reduction on
        the last rank) and returns what each rank raised.

    Returns
    -------
    list of dict, or a list of such lists (one per case) when ``cases`` is given
        One per rank: ``rank``, ``columns`` (start, stop), ``loss``, ``reference``,
        ``loss_error`` and ``grad_error`` (max abs difference of its gradient shard); with
        ``bad``, ``rank`` and ``error`` (the exception's type and message, or None).
    """
    many = cases is not None
    cases = list(cases) if many else [options]
    per_rank = spawn_local_group(_demo_worker, world_size, (N, V, seed, cases), timeout=timeout)
    per_case = [[per_rank[r][k] for r in range(world_size)] for k in range(len(cases))]
    return per_case if many else per_case[0]


def communication_bytes_per_row(
    world_size, V, *, itemsize=4, label_smoothing=False, probabilities=False
):
    """Bytes each rank sends per row: celib's two all-reduces against all-gathering the logits.

    A ring all-reduce of k numbers per row sends 2 (P - 1) / P k numbers per rank; a ring
    all-gather of the V logits sends (P - 1) / P V. The metadata exchange is per call, not
    per row, and is left out.

    Returns
    -------
    dict
        ``celib_numbers`` (k, numbers all-reduced per row), ``celib_bytes``,
        ``allgather_bytes`` (floats; 0 for one rank).
    """
    P = _check_int(world_size, "world_size", 1)
    # MAX: m_n; SUM: S_n and the target's logit, plus sum_c w_c x_c with smoothing, or
    # sum_c a_nc x_nc and A_n (instead of the target's logit) for probabilities
    k = 3 if (label_smoothing or probabilities) else 2
    factor = (P - 1) / P
    return {
        "celib_numbers": 1 + k,
        "celib_bytes": 2 * factor * (1 + k) * itemsize,
        "allgather_bytes": factor * V * itemsize,
    }
