"""Functions run on every rank of a local gloo group by tests/test_distributed.py.

Not a test module: the spawned processes import it by name (pytest puts tests/ on
sys.path, and spawn hands the parent's sys.path to its children). Each function runs
many cases in one group, since starting processes is the slow part, and returns plain
numbers (maximum errors, error types and messages) that the parent asserts on.
"""

from __future__ import annotations

import itertools

import torch
import torch.distributed as dist
import torch.nn.functional as F

from celib.distributed import (
    shard_bounds,
    vocab_parallel_cross_entropy,
    vocab_parallel_linear_cross_entropy,
)


def uneven_bounds(V, world):
    """Deliberately uneven shards: rank r gets about (r + 1) parts, the last takes the rest."""
    weights = list(range(1, world + 1))
    cuts = [0]
    for w in weights[:-1]:
        cuts.append(min(V, cuts[-1] + max(1, V * w // sum(weights))))
    cuts.append(V)
    return list(itertools.pairwise(cuts))


def _err(a, b):
    """Max abs difference relative to max(1, |b|), NaN positions required to match."""
    a, b = a.double(), b.double()
    if a.shape != b.shape:
        return float("inf")
    nan_a, nan_b = torch.isnan(a), torch.isnan(b)
    if not torch.equal(nan_a, nan_b):
        return float("inf")
    inf_a, inf_b = torch.isinf(a), torch.isinf(b)  # infinities must match, sign included
    if not (torch.equal(inf_a, inf_b) and torch.equal(a[inf_a], b[inf_b])):
        return float("inf")
    keep = ~nan_a & ~inf_a  # (inf - inf would be NaN, which max() in the parent ignores)
    if not bool(keep.any()):
        return 0.0
    scale = max(1.0, float(b[keep].abs().max()))
    return float((a[keep] - b[keep]).abs().max()) / scale


def _case_inputs(g, N, V, extra, dtype, kind, weighted, ignore):
    shape = (N, V) + extra
    logits = (torch.randn(shape, generator=g, dtype=torch.float64) * 3).to(dtype)
    if kind == "indices":
        target = torch.randint(0, V, (N,) + extra, generator=g)
        if ignore:
            target.view(-1)[::3] = -100
    else:
        target = torch.softmax(torch.randn(shape, generator=g, dtype=torch.float64), dim=1).to(
            dtype
        )
    weight = (torch.rand(V, generator=g, dtype=torch.float64) + 0.5).to(dtype) if weighted else None
    if weighted and V > 2:
        weight[1] = 0.0
    return logits, target, weight


def _one(rank, world, logits, target, weight, bounds, **opts):
    """(loss error, local-gradient error, target-gradient error) against F.cross_entropy."""
    lo, hi = bounds[rank]
    kind = "indices" if not target.dtype.is_floating_point else "probabilities"
    full = logits.clone().requires_grad_(True)
    tgt_full = target.clone().requires_grad_(kind == "probabilities")
    ref = F.cross_entropy(full, tgt_full, weight=weight, **opts)
    ref.backward(torch.linspace(0.5, 1.5, ref.numel(), dtype=ref.dtype).reshape(ref.shape))
    local = logits[:, lo:hi].clone().requires_grad_(True)
    tgt_local = target[:, lo:hi].clone().requires_grad_(True) if kind == "probabilities" else target
    before = (local.detach().clone(), tgt_local.detach().clone())
    loss = vocab_parallel_cross_entropy(local, tgt_local, vocab_start=lo, weight=weight, **opts)
    loss.backward(torch.linspace(0.5, 1.5, loss.numel(), dtype=loss.dtype).reshape(loss.shape))
    errs = [_err(loss.detach(), ref.detach()), _err(local.grad, full.grad[:, lo:hi])]
    unchanged = torch.equal(before[0].nan_to_num(), local.detach().nan_to_num()) and torch.equal(
        before[1], tgt_local.detach()
    )
    errs.append(0.0 if unchanged else float("inf"))  # the caller's tensors are never modified
    if kind == "probabilities":
        errs.append(_err(tgt_local.grad, tgt_full.grad[:, lo:hi]))
    return max(errs)


def option_space(rank, world):
    """Every option combination, float64 and float32, 2-D and K-dimensional inputs."""
    out = {}
    g = torch.Generator().manual_seed(1234)
    V = 7 if world < 3 else 10
    for dtype, kind, reduction, weighted, eps, ignore, extra in itertools.product(
        (torch.float64, torch.float32),
        ("indices", "probabilities"),
        ("mean", "sum", "none"),
        (False, True),
        (0.0, 0.1),
        (False, True),
        ((), (2, 3)),
    ):
        if kind == "probabilities" and ignore:
            continue
        if extra and dtype == torch.float32:
            continue  # K-dimensional inputs in float64 only (the collectives are the slow part)
        logits, target, weight = _case_inputs(g, 5, V, extra, dtype, kind, weighted, ignore)
        # torch.chunk's split on 2 ranks, deliberately uneven shards on 3 (each 1 on 1 rank)
        for bounds in [shard_bounds(V, world)] if world < 3 else [uneven_bounds(V, world)]:
            name = (
                f"{str(dtype)[6:]}-{kind}-{reduction}-w{int(weighted)}-eps{eps}-"
                f"ign{int(ignore)}-k{len(extra)}-{bounds}"
            )
            out[name] = _one(
                rank,
                world,
                logits,
                target,
                weight,
                bounds,
                reduction=reduction,
                label_smoothing=eps,
            )
    # edges: every target ignored ('mean' of nothing: NaN), extreme logits, a +inf logit
    logits = torch.tensor([[1000.0, -1000.0, 0.0, 5.0, 2.0, -3.0, 1.0]] * 2, dtype=torch.float64)
    bounds = shard_bounds(7, world)
    out["all-ignored-mean"] = _one(rank, world, logits, torch.tensor([-100, -100]), None, bounds)
    out["extreme-logits"] = _one(
        rank,
        world,
        logits,
        torch.tensor([1, 0]),
        None,
        bounds,
        reduction="none",
        label_smoothing=0.2,
    )
    with_inf = logits.clone()
    with_inf[0, 6] = float("inf")
    out["plus-inf-row"] = _one(
        rank, world, with_inf, torch.tensor([1, 0]), None, bounds, reduction="none"
    )
    with_ninf = logits.clone()
    with_ninf[1, 3] = -float("inf")
    out["minus-inf-logit"] = _one(
        rank,
        world,
        with_ninf,
        torch.tensor([1, 0]),
        None,
        bounds,
        reduction="none",
        label_smoothing=0.1,
    )
    # a row with no softmax (NaN, +inf, all -inf) is NaN unless ignored, even where its
    # effective target is all zero (weight 0, or a zero probability row), as the reference
    broken = logits.repeat(2, 1)
    broken[0, 2], broken[1, 5], broken[2] = float("nan"), float("inf"), -float("inf")
    zero_w = torch.zeros(7, dtype=torch.float64)
    out["no-softmax-zero-weight"] = _one(
        rank, world, broken, torch.tensor([1, 0, 3, -100]), zero_w, bounds, reduction="none"
    )
    out["no-softmax-zero-weight-smoothed"] = _one(
        rank,
        world,
        broken,
        torch.tensor([1, 0, 3, 2]),
        zero_w,
        bounds,
        reduction="sum",
        label_smoothing=0.1,
    )
    zero_q = torch.zeros(4, 7, dtype=torch.float64)
    zero_q[3, 1] = 1.0
    out["no-softmax-zero-probabilities"] = _one(
        rank, world, broken, zero_q, None, bounds, reduction="none"
    )
    return out


def against_loss_parallel(rank, world):
    """celib against DTensor loss_parallel on a 1-D mesh (class indices, no smoothing)."""
    from torch.distributed.device_mesh import init_device_mesh
    from torch.distributed.tensor import Shard, distribute_tensor
    from torch.distributed.tensor.parallel import loss_parallel

    mesh = init_device_mesh("cpu", (world,))
    out = {}
    g = torch.Generator().manual_seed(99)
    N, V = 6, 11
    for reduction, weighted, ignore in itertools.product(
        ("mean", "sum", "none"), (False, True), (False, True)
    ):
        if weighted and ignore:
            # torch 2.13's loss_parallel backward gathers the weight at target -100 and
            # raises a RuntimeError (index -100 out of bounds); covered against F.cross_entropy
            continue
        logits, target, weight = _case_inputs(
            g, N, V, (), torch.float64, "indices", weighted, ignore
        )
        dt = distribute_tensor(logits, mesh, [Shard(1)]).requires_grad_(True)
        with loss_parallel():
            ref = F.cross_entropy(dt, target, weight=weight, reduction=reduction)
            ref.sum().backward()
        ref_loss = ref.full_tensor().detach()
        lo, hi = shard_bounds(V, world)[rank]  # DTensor's Shard(1) splits as torch.chunk
        local = logits[:, lo:hi].clone().requires_grad_(True)
        loss = vocab_parallel_cross_entropy(
            local, target, vocab_start=lo, weight=weight, reduction=reduction
        )
        loss.sum().backward()
        out[f"{reduction}-w{int(weighted)}-ign{int(ignore)}"] = max(
            _err(loss.detach(), ref_loss), _err(local.grad, dt.grad.to_local())
        )
    return out


def linear_variant(rank, world):
    """vocab_parallel_linear_cross_entropy against celib.torch_ops.linear_cross_entropy."""
    from celib.torch_ops import linear_cross_entropy

    out = {}
    g = torch.Generator().manual_seed(7)
    N, H, V = 9, 4, 13
    for dtype, kind, reduction, weighted, eps, bias, chunk in itertools.product(
        (torch.float64, torch.float32),
        ("indices", "probabilities"),
        ("mean", "sum", "none"),
        (False, True),
        (0.0, 0.1),
        (False, True),
        (None, 4),
    ):
        if dtype == torch.float32 and not (weighted and eps and bias and chunk):
            continue  # float32: one combination of the options per kind and reduction
        x = torch.randn(N, H, generator=g, dtype=torch.float64).to(dtype)
        W = torch.randn(V, H, generator=g, dtype=torch.float64).to(dtype)
        b = torch.randn(V, generator=g, dtype=torch.float64).to(dtype) if bias else None
        _, target, weight = _case_inputs(g, N, V, (), dtype, kind, weighted, kind == "indices")
        lo, hi = uneven_bounds(V, world)[rank]
        up = torch.linspace(0.5, 1.5, N if reduction == "none" else 1, dtype=dtype)
        up = up if reduction == "none" else up[0]
        xr, Wr = x.clone().requires_grad_(True), W.clone().requires_grad_(True)
        br = None if b is None else b.clone().requires_grad_(True)
        ref = linear_cross_entropy(
            xr, Wr, target, linear_bias=br, weight=weight, reduction=reduction, label_smoothing=eps
        )
        ref.backward(up)
        xl = x.clone().requires_grad_(True)
        Wl = W[lo:hi].clone().requires_grad_(True)
        bl = None if b is None else b[lo:hi].clone().requires_grad_(True)
        tl = target if kind == "indices" else target[:, lo:hi]
        loss = vocab_parallel_linear_cross_entropy(
            xl,
            Wl,
            tl,
            vocab_start=lo,
            linear_bias=bl,
            weight=weight,
            reduction=reduction,
            label_smoothing=eps,
            chunk_size=chunk,
        )
        loss.backward(up)
        gx = xl.grad.clone()
        dist.all_reduce(gx)  # the caller's all-reduce of the input's gradient
        errs = [_err(loss.detach(), ref.detach()), _err(gx, xr.grad), _err(Wl.grad, Wr.grad[lo:hi])]
        if bias:
            errs.append(_err(bl.grad, br.grad[lo:hi]))
        name = (
            f"{str(dtype)[6:]}-{kind}-{reduction}-w{int(weighted)}-eps{eps}-b{int(bias)}-"
            f"chunk{chunk}"
        )
        out[name] = max(errs)
    return out


def _attempt(fn):
    try:
        fn()
    except Exception as exc:  # noqa: BLE001  (the error each rank saw, for the parent)
        return type(exc).__name__, str(exc)
    return None, ""


def bad_inputs(rank, world):
    """Each mistake raises on every rank (the same error where the mistake is shared), never
    hangs, and leaves the group usable (a correct call follows each one)."""
    V, N = 8, 4
    g = torch.Generator().manual_seed(3)
    logits = torch.randn(N, V, generator=g, dtype=torch.float64)
    target = torch.randint(0, V, (N,), generator=g)
    bounds = shard_bounds(V, world)
    lo, hi = bounds[rank]
    local = logits[:, lo:hi]

    def call(x=local, t=target, start=lo, **opts):
        return lambda: vocab_parallel_cross_entropy(x, t, vocab_start=start, **opts)

    bad_target = target.clone()
    bad_target[2] = V
    out = {"target-out-of-range": _attempt(call(t=bad_target))}
    out["negative-target"] = _attempt(call(t=torch.tensor([0, -5, 1, 2])))
    # shards that do not tile [0, V): the last rank starts one class late (a gap)
    late = lo + 1 if rank == world - 1 else lo
    out["gap"] = _attempt(call(start=late))
    # an overlap: the first rank claims one class more (only with 2 ranks or more)
    if world > 1:
        wide = logits[:, lo : hi + 1] if rank == 0 else local
        out["overlap"] = _attempt(call(x=wide))
    out["reduction-differs"] = _attempt(call(reduction="sum" if rank == world - 1 else "mean"))
    out["smoothing-differs"] = _attempt(call(label_smoothing=0.1 * (rank == world - 1)))
    other = target.clone()
    if rank == world - 1:
        other[0] = (other[0] + 1) % V
    out["target-differs"] = _attempt(call(t=other))
    out["weight-wrong-length"] = _attempt(call(weight=torch.ones(V + 1, dtype=torch.float64)))
    out["bad-argument-on-one-rank"] = _attempt(call(label_smoothing=2.0 if rank == 0 else 0.0))
    out["not-a-tensor-on-one-rank"] = _attempt(call(x=local.tolist() if rank == 0 else local))
    out["target-shape-differs"] = _attempt(call(t=target[:3] if rank == 0 else target))
    # after all that, the group still computes the right loss
    loss = vocab_parallel_cross_entropy(local, target, vocab_start=lo)
    out["still-works"] = abs(float(loss.detach()) - float(F.cross_entropy(logits, target)))
    lin = _attempt(
        lambda: vocab_parallel_linear_cross_entropy(
            torch.randn(N, 3, dtype=torch.float64),
            torch.randn(hi - lo, 3, dtype=torch.float64),
            bad_target,
            vocab_start=lo,
        )
    )
    out["linear-target-out-of-range"] = lin
    # the linear variant runs 2 collectives per chunk: every rank must run the same chunks
    lin_x = torch.randn(N, 3, dtype=torch.float64)
    lin_w = torch.randn(hi - lo, 3, dtype=torch.float64)
    out["chunk-size-differs"] = _attempt(
        lambda: vocab_parallel_linear_cross_entropy(
            lin_x, lin_w, target, vocab_start=lo, chunk_size=1 if rank == world - 1 else 2
        )
    )
    width = 2 if rank == world - 1 else 3
    out["input-width-differs"] = _attempt(
        lambda: vocab_parallel_linear_cross_entropy(
            lin_x[:, :width], lin_w[:, :width], target, vocab_start=lo
        )
    )
    # the default chunk_size with uneven shards (all classes on the last rank, the others
    # empty): 2^20 / 8 + 1 rows were two chunks of 2^20 / V_local rows on the last rank and
    # one of 2^20 rows on the others, which then waited for each other
    rows = (1 << 20) // V + 1
    g_rows = torch.Generator().manual_seed(4)
    xs, Ws = (
        torch.randn(rows, 2, generator=g_rows, dtype=torch.float64),
        torch.randn(V, 2, generator=g_rows, dtype=torch.float64),
    )
    ys = torch.randint(0, V, (rows,), generator=g_rows)
    lo_e, hi_e = (0, V) if rank == world - 1 else (0, 0)  # the last rank holds every class
    loss = _attempt(
        lambda: out.__setitem__(
            "_loss", vocab_parallel_linear_cross_entropy(xs, Ws[lo_e:hi_e], ys, vocab_start=lo_e)
        )
    )
    out["default-chunk-uneven-shards"] = (
        abs(float(out.pop("_loss")) - float(F.cross_entropy(xs @ Ws.T, ys)))
        if loss[0] is None
        else float("inf")
    )
    return out


def everything(rank, world):
    """All of the above in one group: starting processes is the slow part."""
    out = {
        "options": option_space(rank, world),
        "bad": bad_inputs(rank, world),
        "linear": linear_variant(rank, world),
    }
    if world == 2:  # DTensor is slow to set up: one uneven mesh (6 + 5 classes) suffices
        out["loss_parallel"] = against_loss_parallel(rank, world)
    return out


def divide_by_zero(rank, world):
    return 1 / 0


def hang(rank, world):
    """Rank 0 waits in a collective that rank 1, asleep, never joins."""
    import time

    dist.barrier()
    if rank == 0:
        dist.all_reduce(torch.zeros(1))
    else:
        time.sleep(600)
    return rank
