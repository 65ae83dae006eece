"""The fused cross-entropy kernels: loss and gradient of a row in one forward (Triton).

Two launch modes, one set of formulas, one thin autograd Function (in the spirit of
Liger-Kernel's ``ops/cross_entropy.py``; the split mode is the vocabulary split of
Unsloth and Cut Cross-Entropy). Imported by :mod:`celib.torch_ops` only when the
Triton backend is chosen; with ``TRITON_INTERPRET=1`` set before triton is first
imported it runs on CPU tensors (celib's tests do that).

* ``rows``: :func:`_cross_entropy_kernel`, one program per row (or, with
  ``programs`` set, a fixed number of programs each looping over rows, which caps the
  rows in flight so that pass 2 re-reads its row from L2). A row that fits one block
  (``single``) is read once and kept in registers; a longer one is read twice.
* ``split``: for few rows and a large vocabulary, the vocabulary of each row is cut
  into chunks of ``block`` classes, one program per (row, chunk), so that the whole GPU
  is busy. :func:`_split_stats_kernel` writes each chunk's (max, sum of exponentials)
  and :func:`_split_grad_kernel` combines a row's chunks into its lse, then writes the
  loss and the chunk's gradient (it visits the chunks in reverse order, so the ones read
  last, still in L2, come first).

Notation (the NumPy reference's): row n of the logits x_n (C classes), its
class index y_n, class weights w (all ones without weights), smoothing eps,

    alpha_n = (1 - eps) w[y_n],  beta_n = eps / C    (both 0 for an ignored row)
    a_n     = alpha_n onehot(y_n) + beta_n w,  A_n = alpha_n + beta_n sum(w)
    loss_n  = alpha_n (lse_n - x_ny) + beta_n sum_{c: w_c != 0} w_c (lse_n - x_nc)
    dL/dx_n = s_n (p_n A_n - a_n)

with s_n = 1 / (the 'mean' denominator), 1 for 'sum', and 1 for 'none' (the
upstream gradient is applied in backward, row by row, by :func:`_scale_rows_kernel`,
which does nothing where it is 1). Every sum accumulates in float32 whatever the input
dtype (float16, bfloat16, float32); the true-class gradient is formed in float32 from
the sum of the *other* classes and rounded once (never read back and modified in the
logits' dtype, where a confident row's p_y - 1 would cancel). A row without a softmax
(a NaN or +inf logit, or only -inf) that is not ignored gets a NaN loss, as in torch and
the reference, even where its effective target is zero. No libdevice calls.

Launch configurations (:class:`KernelConfig`) are chosen by :func:`choose_config` from
N, V, the dtype and the GPU's number of multiprocessors; ``CELIB_TRITON_AUTOTUNE=1``
times candidates on scratch tensors once per (mode, V, dtype, rows bucket) instead, and
:data:`TUNED` holds configurations measured by ``benchmarks/tune_gpu_kernel.py``. Under
the interpreter the choice is fixed (the same rule, with 4 multiprocessors).

Probability targets and float64 logits are not handled here: celib.torch_ops
sends them to the torch backend.
"""

from __future__ import annotations

import dataclasses
import functools
import os
import time

import torch
import triton
import triton.language as tl

__all__ = [
    "cross_entropy_triton",
    "cross_entropy_forward",
    "KernelConfig",
    "choose_config",
    "rule_config",
    "tune",
    "TUNED",
]


# ---------------------------------------------------------------------------------------
# shared pieces
# ---------------------------------------------------------------------------------------


@triton.jit
def _finite_or_zero(m):
    """shift(m): m where finite, else 0 (an all -inf row gives lse -inf, +inf gives +inf)."""
    return tl.where(tl.abs(m) < float("inf"), m, 0.0)


@triton.jit
def _coefficients(W, SUM_W, y, C, eps, HAS_WEIGHT: tl.constexpr, HAS_SMOOTHING: tl.constexpr):
    """alpha, beta, A and a_y of a kept row (float32 scalars)."""
    if HAS_WEIGHT:
        w_y = tl.load(W + y).to(tl.float32)
    else:
        w_y = 1.0
    alpha = (1.0 - eps) * w_y  # one-hot coefficient
    if HAS_SMOOTHING:
        beta = eps / C  # spread coefficient (times w_c)
        A = alpha + beta * tl.load(SUM_W)  # A_n = sum_c a_nc
        a_y = alpha + beta * w_y
    else:
        beta = 0.0
        A = alpha
        a_y = alpha
    return alpha, beta, A, a_y


@triton.jit
def _gradient(p, w, cols, y, s, A, beta, g_y, HAS_SMOOTHING: tl.constexpr):
    """g_c = s (p_c A - beta w_c), and g_y (formed without cancellation) at the true class.

    Without smoothing the term beta w_c is left out, not multiplied by beta = 0: a NaN or
    infinite weight of a class no row targets must not make its gradient column NaN.
    """
    if HAS_SMOOTHING:
        g = s * (p * A - beta * w)
    else:
        g = s * (p * A)
    return tl.where(cols == y, g_y, g)


@triton.jit
def _load(ptr, mask, other, EVICT: tl.constexpr, KEEP: tl.constexpr):
    """tl.load with an L2 hint when EVICT: keep (pass 1, re-read soon) or evict first."""
    if EVICT:
        if KEEP:
            v = tl.load(ptr, mask=mask, other=other, eviction_policy="evict_last")
        else:
            v = tl.load(ptr, mask=mask, other=other, eviction_policy="evict_first")
    else:
        v = tl.load(ptr, mask=mask, other=other)
    return v


@triton.jit
def _store(ptr, value, mask, EVICT: tl.constexpr):
    """tl.store; with EVICT the gradient streams out without displacing logits from L2."""
    if EVICT:
        tl.store(ptr, value, mask=mask, eviction_policy="evict_first")
    else:
        tl.store(ptr, value, mask=mask)


# ---------------------------------------------------------------------------------------
# rows mode
# ---------------------------------------------------------------------------------------


@triton.jit
def _cross_entropy_kernel(
    X,
    stride_x,  # logits, (M, C) with unit class stride; row stride in elements
    Y,  # class indices, (M,), contiguous
    W,  # class weights, (C,) (unused unless HAS_WEIGHT)
    SUM_W,  # sum(w), a float32 scalar in memory (unused unless HAS_SMOOTHING)
    SCALE,  # s (1 / denominator or 1), a float32 scalar in memory
    LOSS,
    LSE,  # per-row loss (unscaled) and lse, float32 (M,)
    G,
    stride_g,  # gradient, (M, C), may be X itself (in-place); unused unless HAS_GRAD
    M,
    C,
    ignore_index,
    eps,
    BLOCK: tl.constexpr,
    SINGLE: tl.constexpr,  # C <= BLOCK: the row is read once and stays in registers
    HAS_WEIGHT: tl.constexpr,
    HAS_SMOOTHING: tl.constexpr,
    HAS_GRAD: tl.constexpr,
    EVICT: tl.constexpr,  # L2 hints: keep the row for pass 2, stream the gradient out
):
    # One program per row, or (a persistent grid) each program takes every nprog-th row.
    # 64-bit row offsets: M * C may exceed 2^31.
    pid = tl.program_id(0)
    nprog = tl.num_programs(0)
    offs = tl.arange(0, BLOCK)
    s = tl.load(SCALE)
    for r in range(pid, M, nprog):
        row = tl.full([], 0, tl.int64) + r
        x_row = X + row * stride_x
        g_row = G + row * stride_g
        y = tl.load(Y + row).to(tl.int64)

        if y == ignore_index:
            # An ignored row: loss 0, gradient exactly 0 (even where p would be NaN).
            tl.store(LOSS + row, 0.0)
            tl.store(LSE + row, 0.0)
            if HAS_GRAD:
                for start in range(0, C, BLOCK):
                    cols = start + offs
                    _store(
                        g_row + cols,
                        tl.zeros([BLOCK], dtype=tl.float32).to(G.dtype.element_ty),
                        cols < C,
                        EVICT,
                    )
        else:
            alpha, beta, A, a_y = _coefficients(W, SUM_W, y, C, eps, HAS_WEIGHT, HAS_SMOOTHING)
            x_y = tl.load(x_row + y).to(tl.float32)
            if SINGLE:
                # ---- the whole row in one block: read once ---------------------------
                cols = offs
                mask = cols < C
                x = tl.load(x_row + cols, mask=mask, other=-float("inf")).to(tl.float32)
                m = tl.max(x, axis=0)
                shift = _finite_or_zero(m)
                e = tl.exp(x - shift)  # masked lanes: exp(-inf) = 0
                d = tl.sum(e, axis=0)
                d_other = tl.sum(tl.where(cols == y, 0.0, e), axis=0)
            else:
                # ---- pass 1: online softmax ------------------------------------------
                # Running maximum m and sums d = sum_c exp(x_c - shift(m)), d_other = the
                # same without the true class, where shift(m) = m if m is finite, else 0
                # (the reference's convention: an all -inf row gives lse = -inf, +inf
                # gives +inf). A new block rescales both sums by
                # exp(shift(m_old) - shift(m_new)).
                m = -float("inf")
                d = 0.0
                d_other = 0.0
                for start in range(0, C, BLOCK):
                    cols = start + offs
                    xb = _load(x_row + cols, cols < C, -float("inf"), EVICT, True).to(tl.float32)
                    m_new = tl.maximum(m, tl.max(xb, axis=0))
                    eb = tl.exp(xb - _finite_or_zero(m_new))
                    rescale = tl.exp(_finite_or_zero(m) - _finite_or_zero(m_new))
                    # while d is 0 (no finite logit yet) skip the rescale: 0 * inf is NaN
                    d = tl.where(d == 0.0, 0.0, d * rescale) + tl.sum(eb, axis=0)
                    d_other = tl.where(d_other == 0.0, 0.0, d_other * rescale) + tl.sum(
                        tl.where(cols == y, 0.0, eb), axis=0
                    )
                    m = m_new
                shift = _finite_or_zero(m)

            # ---- the effective target's coefficients (above) and the row's softmax ------
            # A row holding +inf has no softmax: NaN log-probabilities and gradient (the
            # reference's and torch's), not the +inf and 0 that log d = inf would give.
            # Nor has a row holding NaN (d is NaN) or only -inf (d = 0): their loss is NaN
            # even where the effective target is zero (0 * NaN in torch).
            no_softmax = m == float("inf")
            log_d = tl.where(no_softmax, float("nan"), tl.log(d))
            has_softmax = tl.abs(log_d) < float("inf")
            lse = shift + tl.log(d)
            inv_d = tl.where(no_softmax, float("nan"), 1.0 / d)
            # p_y - 1 = -d_other / d: g_y = s (A (p_y - 1) + (A - a_y)) in float32, rounded
            # once when stored (no cancellation when p_y is within rounding of 1)
            g_y = s * (A * (-(d_other * inv_d)) + (A - a_y))
            # loss_n, true-class part: alpha (lse - x_y) = alpha ((shift - x_y) + log d),
            # exactly 0 where alpha is 0 (even at x_y = -inf)
            loss = tl.where(alpha != 0.0, alpha * ((shift - x_y) + log_d), 0.0)

            # ---- pass 2: gradient (and the smoothing part of the loss) ----------------
            # p_c = exp(x_c - shift) / d;  g_c = s (p_c A - beta w_c) for c != y
            if SINGLE:
                if HAS_WEIGHT:
                    w = tl.load(W + cols, mask=mask, other=0.0).to(tl.float32)
                else:
                    w = tl.where(mask, 1.0, 0.0)
                if HAS_SMOOTHING:
                    # sum_c w_c (lse - x_c) over classes with w_c != 0 (masked lanes read as
                    # shift, not -inf: 0 * inf would be NaN before tl.where drops it)
                    xs = tl.where(mask, x, shift)
                    smooth = tl.sum(tl.where(w != 0.0, w * ((shift - xs) + log_d), 0.0), axis=0)
                    loss += tl.where(beta != 0.0, beta * smooth, 0.0)
                if HAS_GRAD:
                    # exp again rather than keeping e alive beside x: registers, not memory,
                    # bound a block of 16384-32768 classes
                    p = tl.exp(x - shift) * inv_d
                    g = _gradient(p, w, cols, y, s, A, beta, g_y, HAS_SMOOTHING)
                    _store(g_row + cols, g.to(G.dtype.element_ty), mask, EVICT)
            elif HAS_GRAD or HAS_SMOOTHING:
                smooth = 0.0
                for start in range(0, C, BLOCK):
                    cols = start + offs
                    mask = cols < C
                    xb = _load(x_row + cols, mask, 0.0, EVICT, False).to(tl.float32)
                    if HAS_WEIGHT:
                        w = tl.load(W + cols, mask=mask, other=0.0).to(tl.float32)
                    else:
                        w = tl.where(mask, 1.0, 0.0)
                    if HAS_SMOOTHING:
                        smooth += tl.sum(
                            tl.where(w != 0.0, w * ((shift - xb) + log_d), 0.0), axis=0
                        )
                    if HAS_GRAD:
                        p = tl.exp(xb - shift) * inv_d
                        g = _gradient(p, w, cols, y, s, A, beta, g_y, HAS_SMOOTHING)
                        _store(g_row + cols, g.to(G.dtype.element_ty), mask, EVICT)
                if HAS_SMOOTHING:
                    loss += tl.where(beta != 0.0, beta * smooth, 0.0)

            loss = tl.where(has_softmax, loss, float("nan"))
            tl.store(LOSS + row, loss)
            tl.store(LSE + row, lse)


# ---------------------------------------------------------------------------------------
# split mode: few rows, large vocabulary
# ---------------------------------------------------------------------------------------


@triton.jit
def _split_stats_kernel(
    X,
    stride_x,
    Y,
    W,
    PART,  # float32 (5, M, NCH): max, sum exp, sum exp without y, smoothing, sum w
    XY,  # float32 (M,): x_y, kept for the loss (in place, the grad kernel
    # may overwrite x_y before the row's loss is formed)
    M,
    NCH,
    C,
    ignore_index,
    BLOCK: tl.constexpr,
    HAS_WEIGHT: tl.constexpr,
    HAS_SMOOTHING: tl.constexpr,
):
    # One program per (row, chunk of BLOCK classes); a row's chunks are neighbours.
    pid = tl.program_id(0).to(tl.int64)
    row = pid // NCH
    chunk = pid % NCH
    y = tl.load(Y + row).to(tl.int64)
    if y != ignore_index:
        cols = chunk * BLOCK + tl.arange(0, BLOCK)
        mask = cols < C
        x = tl.load(
            X + row * stride_x + cols, mask=mask, other=-float("inf"), eviction_policy="evict_last"
        ).to(tl.float32)
        m = tl.max(x, axis=0)
        shift = _finite_or_zero(m)
        e = tl.exp(x - shift)
        plane = M * NCH
        at = PART + pid
        tl.store(at, m)
        tl.store(at + plane, tl.sum(e, axis=0))
        tl.store(at + 2 * plane, tl.sum(tl.where(cols == y, 0.0, e), axis=0))
        if (y >= chunk * BLOCK) & (y < chunk * BLOCK + BLOCK):
            tl.store(XY + row, tl.sum(tl.where(cols == y, x, 0.0), axis=0))
        if HAS_SMOOTHING:
            # sum_{w_c != 0} w_c (shift_k - x_c) and sum_{w_c != 0} w_c: the row's
            # sum_c w_c (lse - x_c) is then sum_k (lse - shift_k) W_k + S_k, with no
            # cancellation (both terms >= 0 for weights >= 0)
            if HAS_WEIGHT:
                w = tl.load(W + cols, mask=mask, other=0.0).to(tl.float32)
            else:
                w = tl.where(mask, 1.0, 0.0)
            nz = w != 0.0
            xs = tl.where(mask, x, shift)  # masked lanes: no 0 * inf
            tl.store(at + 3 * plane, tl.sum(tl.where(nz, w * (shift - xs), 0.0), axis=0))
            tl.store(at + 4 * plane, tl.sum(tl.where(nz, w, 0.0), axis=0))


@triton.jit
def _split_grad_kernel(
    X,
    stride_x,
    Y,
    W,
    SUM_W,
    SCALE,
    PART,
    XY,
    LOSS,
    LSE,
    G,
    stride_g,
    M,
    NCH,
    C,
    ignore_index,
    eps,
    BLOCK: tl.constexpr,
    NCH_P2: tl.constexpr,
    HAS_WEIGHT: tl.constexpr,
    HAS_SMOOTHING: tl.constexpr,
    HAS_GRAD: tl.constexpr,
):
    # Reverse order: the chunks the stats kernel read last (still in L2) come first.
    pid = (M * NCH - 1 - tl.program_id(0)).to(tl.int64)
    row = pid // NCH
    chunk = pid % NCH
    y = tl.load(Y + row).to(tl.int64)
    cols = chunk * BLOCK + tl.arange(0, BLOCK)
    mask = cols < C
    if y == ignore_index:
        if HAS_GRAD:
            tl.store(
                G + row * stride_g + cols,
                tl.zeros([BLOCK], dtype=tl.float32).to(G.dtype.element_ty),
                mask=mask,
            )
        if chunk == 0:
            tl.store(LOSS + row, 0.0)
            tl.store(LSE + row, 0.0)
    else:
        # the row's chunks combined: m = max_k m_k, d = sum_k d_k exp(shift_k - shift)
        k = tl.arange(0, NCH_P2)
        kmask = k < NCH
        plane = M * NCH
        at = PART + row * NCH + k
        pm = tl.load(at, mask=kmask, other=-float("inf"))
        pd = tl.load(at + plane, mask=kmask, other=0.0)
        pdo = tl.load(at + 2 * plane, mask=kmask, other=0.0)
        m = tl.max(pm, axis=0)
        shift = _finite_or_zero(m)
        shift_k = _finite_or_zero(pm)
        factor = tl.exp(shift_k - shift)
        d = tl.sum(tl.where(pd == 0.0, 0.0, pd * factor), axis=0)  # 0 * inf is NaN
        d_other = tl.sum(tl.where(pdo == 0.0, 0.0, pdo * factor), axis=0)
        no_softmax = m == float("inf")
        log_d = tl.where(no_softmax, float("nan"), tl.log(d))
        inv_d = tl.where(no_softmax, float("nan"), 1.0 / d)
        alpha, beta, A, a_y = _coefficients(W, SUM_W, y, C, eps, HAS_WEIGHT, HAS_SMOOTHING)
        if chunk == 0:
            x_y = tl.load(XY + row)
            loss = tl.where(alpha != 0.0, alpha * ((shift - x_y) + log_d), 0.0)
            if HAS_SMOOTHING:
                ps = tl.load(at + 3 * plane, mask=kmask, other=0.0)
                pw = tl.load(at + 4 * plane, mask=kmask, other=0.0)
                lse_minus_shift_k = (shift - shift_k) + log_d
                smooth = tl.sum(tl.where(pw != 0.0, pw * lse_minus_shift_k, 0.0) + ps, axis=0)
                loss += tl.where(beta != 0.0, beta * smooth, 0.0)
            has_softmax = tl.abs(log_d) < float("inf")
            tl.store(LOSS + row, tl.where(has_softmax, loss, float("nan")))
            tl.store(LSE + row, shift + tl.log(d))
        if HAS_GRAD:
            s = tl.load(SCALE)
            g_y = s * (A * (-(d_other * inv_d)) + (A - a_y))
            x = tl.load(
                X + row * stride_x + cols, mask=mask, other=0.0, eviction_policy="evict_first"
            ).to(tl.float32)
            if HAS_WEIGHT:
                w = tl.load(W + cols, mask=mask, other=0.0).to(tl.float32)
            else:
                w = tl.where(mask, 1.0, 0.0)
            g = _gradient(tl.exp(x - shift) * inv_d, w, cols, y, s, A, beta, g_y, HAS_SMOOTHING)
            tl.store(G + row * stride_g + cols, g.to(G.dtype.element_ty), mask=mask)


# ---------------------------------------------------------------------------------------
# small kernels: the 'mean' denominator, and the backward's scaling
# ---------------------------------------------------------------------------------------


@triton.jit
def _mean_scale_kernel(Y, W, M, ignore_index, OUT, BLOCK_M: tl.constexpr, HAS_WEIGHT: tl.constexpr):
    """OUT[0] = sum over kept rows of w[y_n] (or their count), OUT[1] = 1 / OUT[0] or NaN."""
    acc = tl.zeros([BLOCK_M], dtype=tl.float32)
    for start in range(0, M, BLOCK_M):
        rows = start + tl.arange(0, BLOCK_M)
        inside = rows < M
        y = tl.load(Y + rows, mask=inside, other=ignore_index).to(tl.int64)
        keep = inside & (y != ignore_index)
        if HAS_WEIGHT:
            acc += tl.load(W + tl.where(keep, y, 0), mask=keep, other=0.0).to(tl.float32)
        else:
            acc += tl.where(keep, 1.0, 0.0)
    denom = tl.sum(acc, axis=0)
    tl.store(OUT, denom)
    # NaN for a zero denominator: the mean and every kept row's gradient, as torch
    tl.store(OUT + 1, tl.where(denom != 0.0, 1.0 / denom, float("nan")))


@triton.jit
def _scale_rows_kernel(G, stride_g, GO, stride_go, C, CHUNK, BLOCK: tl.constexpr):
    """G[n, chunk] *= GO[n * stride_go] (stride 0: one scalar); nothing where it is 1."""
    row = tl.program_id(0).to(tl.int64)
    go = tl.load(GO + row * stride_go).to(tl.float32)
    if go != 1.0:  # NaN != 1: a NaN upstream gradient still multiplies
        lo = tl.program_id(1) * CHUNK
        hi = tl.minimum(lo + CHUNK, C)
        for start in range(lo, hi, BLOCK):
            cols = start + tl.arange(0, BLOCK)
            mask = cols < hi
            ptr = G + row * stride_g + cols
            g = tl.load(ptr, mask=mask, other=0.0).to(tl.float32)
            tl.store(ptr, (g * go).to(G.dtype.element_ty), mask=mask)


# ---------------------------------------------------------------------------------------
# launch configurations
# ---------------------------------------------------------------------------------------


@dataclasses.dataclass(frozen=True)
class KernelConfig:
    """How the forward kernel is launched.

    mode : 'rows' (one program per row, or ``programs`` persistent programs) or 'split'
        (one program per (row, chunk of ``block`` classes), two kernels).
    block : classes per block (a power of two); in 'rows' mode a row with C <= block
        is read once.
    num_warps, num_stages : Triton's launch options (num_stages None: Triton's default).
    programs : 'rows' mode only; 0 for one program per row, else the grid size.
    evict : 'rows' mode only; L2 hints (keep the row for pass 2, stream the gradient).
    """

    mode: str = "rows"
    block: int = 4096
    num_warps: int = 8
    num_stages: int | None = None
    programs: int = 0
    evict: bool = False


#: Configurations measured on a GPU, {(mode, C, dtype name): KernelConfig}; consulted
#: before the rule of :func:`choose_config` (filled from tune_gpu_kernel.py's output).
TUNED: dict = {}

_INTERPRET_SMS = 4  # the rule's multiprocessor count under the interpreter
_override = None  # a KernelConfig forced by tests and the tuning script
_autotuned: dict = {}


def _interpreting():
    try:
        from triton import knobs

        return bool(knobs.runtime.interpret)
    except (ImportError, AttributeError):  # older triton: the environment variable itself
        return os.environ.get("TRITON_INTERPRET", "0") == "1"


@functools.cache
def _multiprocessors(device_index):
    return torch.cuda.get_device_properties(device_index).multi_processor_count


def _warps_for(block):
    return 4 if block <= 1024 else 8 if block <= 4096 else 16 if block <= 16384 else 32


def rule_config(M, C, element_size, sms, interpret=False):
    """The default choice (no tuning): the pure rule, a function of N, V, dtype and the GPU.

    * few rows (M < 2 x multiprocessors) and C >= 4 blocks of the split size: 'split',
      blocks of 8192 (16-bit) or 4096 (float32) classes;
    * a row that fits one block (C <= 32768 for 16-bit, 16384 for float32): 'rows', read
      once;
    * otherwise 'rows' in blocks of 8192 classes, 16 warps (the configuration measured
      on the H200, 2026-11-29).
    Under the interpreter blocks are as large as allowed (up to 65536; numpy is faster on
    long vectors), and split blocks 8192.
    """
    split_block = 8192 if (element_size <= 2 or interpret) else 4096
    if M < 2 * sms and C >= 4 * split_block:
        return KernelConfig(mode="split", block=split_block, num_warps=8)
    whole = triton.next_power_of_2(max(C, 1))
    if interpret:
        return KernelConfig(mode="rows", block=min(whole, 65536), num_warps=4)
    if whole <= (32768 if element_size <= 2 else 16384):
        return KernelConfig(mode="rows", block=whole, num_warps=_warps_for(whole))
    return KernelConfig(mode="rows", block=8192, num_warps=16)


def choose_config(M, C, dtype, device, inplace=False):
    """The launch configuration for rows (M, C) of ``dtype`` on ``device``.

    Order: a forced configuration (tests, tuning), :data:`TUNED` (keys (mode, C, dtype
    name, inplace)), the runtime autotuner (``CELIB_TRITON_AUTOTUNE=1``, GPU only), the
    rule of :func:`rule_config`.
    """
    if _override is not None:
        return _override
    element_size = dtype.itemsize
    if _interpreting() or device.type != "cuda":
        return rule_config(M, C, element_size, _INTERPRET_SMS, interpret=True)
    sms = _multiprocessors(
        device.index if device.index is not None else torch.cuda.current_device()
    )
    base = rule_config(M, C, element_size, sms)
    tuned = TUNED.get((base.mode, C, str(dtype).replace("torch.", ""), bool(inplace)))
    if tuned is not None:
        return tuned
    if os.environ.get("CELIB_TRITON_AUTOTUNE") == "1":
        return _autotune(M, C, dtype, device, sms, bool(inplace))
    return base


def _stage_candidates(stage, base, C, element_size, sms, blocks):
    """The configurations of one stage of :func:`tune` around ``base``."""
    whole = triton.next_power_of_2(max(C, 1))
    R = dataclasses.replace
    if base.mode == "split":
        if stage != 0:
            return []
        return [
            KernelConfig(mode="split", block=b, num_warps=w)
            for b in blocks
            if C >= 2 * b
            for w in (4, 8, 16)
        ]
    if stage == 0:  # block x warps (a single block when the row fits one)
        sizes = [b for b in blocks if b < whole]
        if whole <= max(blocks) and whole * element_size <= 65536:
            sizes.append(whole)
        return [
            KernelConfig(mode="rows", block=b, num_warps=w)
            for b in sizes
            for w in (4, 8, 16, 32)
            if b // (32 * w) >= 1 and w >= b // 4096
        ]
    if stage == 1:  # rows in flight (persistent grid) x L2 hints
        return [
            R(base, programs=p, evict=e)
            for p in (0, sms, 2 * sms, 4 * sms, 8 * sms)
            for e in (False, True)
            if (p, e) != (base.programs, base.evict)
        ]
    if stage == 2:  # software pipelining
        return [R(base, num_stages=n) for n in (1, 2, 3) if n != base.num_stages]
    return []


def tune(
    x,
    y,
    *,
    inplace=False,
    sms=None,
    timer=None,
    blocks=(4096, 8192, 16384, 32768),
    log=None,
    deadline=None,
):
    """Search launch configurations for rows ``x`` (M, C) and class indices ``y`` (M,).

    Three stages, each keeping the best so far: BLOCK x num_warps; then the rows in
    flight (``programs``) x L2 hints; then num_stages (the split mode has only the first).
    ``x`` is overwritten with gradients when ``inplace`` (pass scratch tensors, never a
    caller's). ``timer(fn)`` returns milliseconds (default ``triton.testing.do_bench``).
    ``deadline``: a ``time.perf_counter()`` value after which no further trial starts.
    Returns (best KernelConfig, [(KernelConfig, ms or error string), ...]).
    """
    M, C = x.shape
    if sms is None:
        sms = _multiprocessors(
            x.device.index if x.device.index is not None else torch.cuda.current_device()
        )
    if timer is None:
        from triton.testing import do_bench

        def timer(fn):
            return do_bench(fn, warmup=5, rep=20)

    g = x if inplace else torch.empty_like(x)
    scale = torch.ones((), dtype=torch.float32, device=x.device)
    base = rule_config(M, C, x.element_size(), sms, interpret=_interpreting())
    trials = []
    best, best_ms = None, float("inf")
    for stage in range(3):
        around = best if best is not None else base
        for cfg in _stage_candidates(stage, around, C, x.element_size(), sms, blocks):
            if deadline is not None and time.perf_counter() > deadline:
                trials.append((cfg, "not tried: deadline"))
                continue
            try:
                ms = timer(
                    lambda cfg=cfg: cross_entropy_forward(
                        x, y, None, -100, 0.0, scale, g, config=cfg
                    )
                )
            except Exception as e:  # noqa: BLE001 (one that does not compile or fit: skip it)
                trials.append((cfg, f"{type(e).__name__}: {str(e)[:120]}"))
                continue
            trials.append((cfg, ms))
            if log is not None:
                log(f"    {cfg}: {ms:.3f} ms")
            if ms < best_ms:
                best, best_ms = cfg, ms
    return (best if best is not None else base), trials


def _autotune(M, C, dtype, device, sms, inplace):
    """tune() once per (C, dtype, rows bucket, in place) on scratch tensors (never the caller's)."""
    bucket = 1 << max(0, min(M, 16384) - 1).bit_length()
    key = (C, str(dtype), bucket, inplace, device.index)
    if key not in _autotuned:
        gen = torch.Generator(device=device).manual_seed(0)
        rows = min(bucket, M)
        x = torch.randn(rows, C, device=device, generator=gen).to(dtype)
        y = torch.randint(0, C, (rows,), device=device, generator=gen)
        _autotuned[key] = tune(x, y, inplace=inplace, sms=sms)[0]
        del x, y
    return _autotuned[key]


# ---------------------------------------------------------------------------------------
# host side
# ---------------------------------------------------------------------------------------


def _launch_options(cfg):
    kw = dict(num_warps=cfg.num_warps)
    if cfg.num_stages is not None:
        kw["num_stages"] = cfg.num_stages
    return kw


def cross_entropy_forward(
    x, y, weight, ignore_index, label_smoothing, scale, grad_out, config=None
):
    """Launch the forward kernel(s) on rows x (M, C) with unit class stride.

    ``scale`` is a float32 0-d tensor (s); ``grad_out`` is None (no gradient), a new
    (M, C) tensor, or x itself (in place). ``config``: a :class:`KernelConfig`, else
    :func:`choose_config`'s. Returns per-row loss and lse (float32, (M,)).
    """
    M, C = x.shape
    loss = torch.empty(M, dtype=torch.float32, device=x.device)
    lse = torch.empty(M, dtype=torch.float32, device=x.device)
    if M == 0:
        return loss, lse
    has_weight = weight is not None
    w = weight.to(torch.float32).contiguous() if has_weight else loss  # a dummy pointer
    smoothing = label_smoothing > 0
    if smoothing:
        # torch.full launches a fill kernel; torch.tensor(..., device=cuda) would copy from
        # host memory and wait for the stream
        sum_w = w.sum() if has_weight else torch.full((), float(C), device=x.device)
        sum_w = sum_w.to(torch.float32)
    else:
        sum_w = loss  # unused
    g = grad_out if grad_out is not None else x
    if config is None:
        config = choose_config(M, C, x.dtype, x.device, inplace=grad_out is x)
    cfg = config
    eps = float(label_smoothing)
    if cfg.mode == "split" and C > 0:
        nch = triton.cdiv(C, cfg.block)
        part = torch.empty((5, M, nch), dtype=torch.float32, device=x.device)
        x_y = torch.empty(M, dtype=torch.float32, device=x.device)
        _split_stats_kernel[(M * nch,)](
            x,
            x.stride(0),
            y,
            w,
            part,
            x_y,
            M,
            nch,
            C,
            ignore_index,
            BLOCK=cfg.block,
            HAS_WEIGHT=has_weight,
            HAS_SMOOTHING=smoothing,
            **_launch_options(cfg),
        )
        _split_grad_kernel[(M * nch,)](
            x,
            x.stride(0),
            y,
            w,
            sum_w,
            scale,
            part,
            x_y,
            loss,
            lse,
            g,
            g.stride(0),
            M,
            nch,
            C,
            ignore_index,
            eps,
            BLOCK=cfg.block,
            NCH_P2=triton.next_power_of_2(nch),
            HAS_WEIGHT=has_weight,
            HAS_SMOOTHING=smoothing,
            HAS_GRAD=grad_out is not None,
            **_launch_options(cfg),
        )
        return loss, lse
    grid = M if cfg.programs <= 0 else min(M, cfg.programs)
    _cross_entropy_kernel[(grid,)](
        x,
        x.stride(0),
        y,
        w,
        sum_w,
        scale,
        loss,
        lse,
        g,
        g.stride(0),
        M,
        C,
        ignore_index,
        eps,
        BLOCK=cfg.block,
        SINGLE=C <= cfg.block,
        HAS_WEIGHT=has_weight,
        HAS_SMOOTHING=smoothing,
        HAS_GRAD=grad_out is not None,
        EVICT=cfg.evict,
        **_launch_options(cfg),
    )
    return loss, lse


def mean_denominator(y, weight, ignore_index):
    """(denominator, 1 / denominator or NaN) of the 'mean' reduction: float32 0-d tensors."""
    M = y.numel()
    out = torch.empty(2, dtype=torch.float32, device=y.device)
    w = weight.to(torch.float32).contiguous() if weight is not None else out  # dummy
    block = min(4096, triton.next_power_of_2(max(M, 16)))
    _mean_scale_kernel[(1,)](
        y, w, M, ignore_index, out, BLOCK_M=block, HAS_WEIGHT=weight is not None, num_warps=4
    )
    return out[0], out[1]


def scale_rows_(g, grad_output):
    """g (M, C) *= grad_output (a scalar, or one value per row), in place, by a kernel that
    reads grad_output on the device: no host synchronisation, no pass where it is 1."""
    M, C = g.shape
    if M == 0 or C == 0:
        return g
    go = grad_output.reshape(-1)  # a view where possible: an expanded 1 has stride 0
    stride_go = 0 if go.numel() == 1 else go.stride(0)
    chunk = 32768
    block = min(4096, triton.next_power_of_2(C))
    _scale_rows_kernel[(M, triton.cdiv(C, chunk))](
        g, g.stride(0), go, stride_go, C, chunk, BLOCK=block, num_warps=8
    )
    return g


def _graph_kept():
    """True inside a backward that keeps the graph (retain_graph=True, gradcheck)."""
    get = getattr(torch._C._autograd, "_get_current_graph_task_keep_graph", None)
    # without the query (older torch) hand over: a second backward then raises clearly
    return False if get is None else bool(get())


class _CrossEntropyTriton(torch.autograd.Function):
    """Forward: loss and (when the logits need it) the gradient, in one launch.

    The gradient is scaled by s in the forward; the backward multiplies it by the
    upstream gradient (per row for 'none') in place in celib's buffer, on the device
    and only where it is not 1, and hands the buffer over; under retain_graph=True it
    returns a scaled copy instead, so the graph can run again (except with
    inplace_backward, whose buffer is the logits). Not twice differentiable: a backward
    with create_graph=True raises RuntimeError.
    """

    @staticmethod
    def forward(ctx, logits, target, weight, spec, inplace):
        M, C = spec.M, spec.C
        if inplace:  # the rows must be a view of the logits (reshape may copy)
            moved = logits.movedim(spec.class_axis, -1)
            try:
                x = moved.view(M, C)
            except RuntimeError:
                x = None
            if x is None or x.stride(-1) != 1:
                raise ValueError(
                    "inplace_backward=True needs logits whose rows (classes "
                    "last) are a view of their memory with contiguous classes, "
                    "e.g. shape (N, C), (C,) or a channels-last (N, C, d1, d2); "
                    f"got shape {tuple(logits.shape)} with strides "
                    f"{tuple(logits.stride())}"
                )
        else:
            x = spec.rows(logits)
            if x.stride(-1) != 1:
                x = x.contiguous()
        # int64 and contiguous: the kernel reads Y + row (a strided or expanded target would
        # be misread), and a uint8 tensor would index as a boolean mask
        y = target.reshape(M).long().contiguous()
        needs_grad = ctx.needs_input_grad[0]
        if spec.reduction == "mean":
            # one small kernel: the denominator and its reciprocal (NaN for 0, as torch)
            denom, scale = mean_denominator(y, weight, spec.ignore_index)
        else:
            denom = None
            scale = torch.ones((), dtype=torch.float32, device=logits.device)
        grad = None
        if needs_grad:
            grad = x if inplace else torch.empty((M, C), dtype=logits.dtype, device=logits.device)
        loss, _ = cross_entropy_forward(x, y, weight, spec.ignore_index, spec.eps, scale, grad)
        if spec.reduction == "none":
            out = loss.reshape(spec.loss_shape)
        elif spec.reduction == "sum":
            out = loss.sum()
        else:
            # scale is NaN where the denominator is 0: the mean is NaN there, as torch's
            out = torch.where(denom != 0, loss.sum() / denom, scale)
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
            raise RuntimeError(
                "celib's Triton cross-entropy is not twice differentiable: "
                "backward with create_graph=True (double backward, "
                "Hessian-vector products) is not supported; use "
                "backend='torch'"
            )
        spec, grad = ctx.spec, ctx.grad
        if grad is None:
            if ctx.needs_input_grad[0]:
                raise RuntimeError(
                    "celib's Triton cross-entropy keeps one gradient buffer and hands it over "
                    "in backward; backward through it a second time is not supported"
                )
            return None, None, None, None, None
        if _graph_kept() and not ctx.grad_is_view_of_logits:
            # retain_graph=True (or gradcheck): the graph may run again, keep the buffer intact
            g = grad_output.reshape(spec.M, 1) if spec.reduction == "none" else grad_output
            return spec.unrows(grad * g), None, None, None, None
        ctx.grad = None  # hand the buffer over, scaled in place on the device
        scale_rows_(grad, grad_output)
        return spec.unrows(grad), None, None, None, None


def cross_entropy_triton(logits, target, weight, spec, *, inplace_backward=False):
    """Run the fused kernel through its autograd Function (checks done by celib.torch_ops)."""
    if inplace_backward and logits.requires_grad and logits.is_leaf:
        raise RuntimeError(
            "inplace_backward=True overwrites the logits, which a leaf tensor "
            "that requires grad cannot allow; pass the output of an operation"
        )
    return _CrossEntropyTriton.apply(logits, target, weight, spec, bool(inplace_backward))
