"""Vocabulary-parallel cross-entropy on CPU gloo: celib against all-gather-then-cross-entropy.

For world sizes 1, 2 and 4 (local processes, 127.0.0.1, one thread each), N=4096 rows and
V=32000 classes in float32, each rank holding V/P columns:

* celib: ``celib.distributed.vocab_parallel_cross_entropy`` forward + backward (the
  metadata all-reduce, a MAX and one SUM per call; the backward is local);
* baseline: all-gather the shards into the full (N, V) logits on every rank, then
  ``F.cross_entropy`` forward + backward there, keeping the rank's slice of the gradient.

Prints, per world size, the communication volume per row per rank (ring algorithms:
2 (P-1)/P k numbers for an all-reduce of k, (P-1)/P V for an all-gather) and the
measured time ratio baseline / celib (median of --repeats after a warm-up; each time is the
slowest rank's), and writes them to ``--out`` (JSON). Times depend on the machine;
compare the ratios.

    python benchmarks/bench_vocab_parallel.py --out benchmarks/results/vocab_parallel_cpu.json
"""

from __future__ import annotations

import argparse
import json
import platform
import statistics
import time

import torch
import torch.distributed as dist
import torch.nn.functional as F

from celib.distributed import (
    communication_bytes_per_row,
    shard_bounds,
    spawn_local_group,
    vocab_parallel_cross_entropy,
)


def _timed(fn):
    dist.barrier()
    t0 = time.perf_counter()
    fn()
    dist.barrier()
    elapsed = torch.tensor([time.perf_counter() - t0], dtype=torch.float64)
    dist.all_reduce(elapsed, op=dist.ReduceOp.MAX)
    return float(elapsed)


def _bench_rank(rank, world, N, V, repeats):
    g = torch.Generator().manual_seed(0)
    logits = torch.randn(N, V, generator=g) * 2  # the same full logits on every rank
    target = torch.randint(0, V, (N,), generator=g)
    lo, hi = shard_bounds(V, world)[rank]
    local = logits[:, lo:hi].contiguous()
    del logits

    def celib_step():
        x = local.detach().requires_grad_(True)
        loss = vocab_parallel_cross_entropy(x, target, vocab_start=lo)
        loss.backward()
        return loss.detach(), x.grad

    def baseline_step():
        x = local.detach()
        parts = [torch.empty(N, b - a) for a, b in shard_bounds(V, world)]
        dist.all_gather(parts, x.contiguous())
        full = torch.cat(parts, dim=1).requires_grad_(True)
        del parts
        loss = F.cross_entropy(full, target)
        loss.backward()
        return loss.detach(), full.grad[:, lo:hi]

    a_loss, a_grad = celib_step()
    b_loss, b_grad = baseline_step()
    agree = bool(
        torch.allclose(a_loss, b_loss, rtol=1e-5, atol=1e-6)
        and torch.allclose(a_grad, b_grad, rtol=1e-4, atol=1e-8)
    )
    del a_grad, b_grad
    times = {"celib": [], "allgather": []}
    for _ in range(repeats):  # interleaved, so that a busy moment hits both
        times["celib"].append(_timed(celib_step))
        times["allgather"].append(_timed(baseline_step))
    return {
        "agree": agree,
        "celib_s": statistics.median(times["celib"]),
        "allgather_s": statistics.median(times["allgather"]),
    }


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--N", type=int, default=4096)
    parser.add_argument("--V", type=int, default=32000)
    parser.add_argument("--worlds", type=int, nargs="+", default=[1, 2, 4])
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument(
        "--timeout",
        type=float,
        default=1800.0,
        help="seconds for one world size before its processes are killed",
    )
    parser.add_argument(
        "--machine",
        default="development machine, 2 cores shared with other jobs",
        help="where it ran, recorded in the JSON",
    )
    parser.add_argument("--out", help="write the results as JSON to this file")
    args = parser.parse_args()

    rows = []
    print(f"N={args.N}, V={args.V}, float32, gloo on 127.0.0.1, one thread per process")
    print(
        f"{'P':>3} {'celib B/row':>12} {'all-gather B/row':>17} {'volume ratio':>13} "
        f"{'time ratio':>11} {'agree':>6}"
    )
    for world in args.worlds:
        out = spawn_local_group(
            _bench_rank, world, (args.N, args.V, args.repeats), timeout=args.timeout
        )[0]
        comm = communication_bytes_per_row(world, args.V)
        row = {
            "world_size": world,
            "celib_bytes_per_row": comm["celib_bytes"],
            "allgather_bytes_per_row": comm["allgather_bytes"],
            "volume_ratio": (
                comm["allgather_bytes"] / comm["celib_bytes"] if comm["celib_bytes"] else None
            ),
            "time_ratio": out["allgather_s"] / out["celib_s"],
            "agree": out["agree"],
            "celib_s": out["celib_s"],
            "allgather_s": out["allgather_s"],
        }
        rows.append(row)
        vr = "-" if row["volume_ratio"] is None else f"{row['volume_ratio']:.0f}x"
        print(
            f"{world:>3} {row['celib_bytes_per_row']:>12.1f} "
            f"{row['allgather_bytes_per_row']:>17.1f} {vr:>13} "
            f"{row['time_ratio']:>10.2f}x {row['agree']!s:>6}"
        )
    record = {
        "what": "vocab_parallel_cross_entropy vs all-gather + F.cross_entropy, forward + backward",
        "N": args.N,
        "V": args.V,
        "dtype": "float32",
        "backend": "gloo",
        "threads_per_process": 1,
        "repeats": args.repeats,
        "statistic": "median of the slowest rank's time",
        "time_ratio": "all-gather time / celib time (above 1: celib faster)",
        "volume_ratio": "all-gather bytes per row / celib bytes per row (ring algorithms)",
        "machine": f"{args.machine} ({platform.machine()})",
        "torch": torch.__version__,
        "date": time.strftime("%Y-%m-%d"),
        "results": rows,
    }
    if args.out:
        with open(args.out, "w", encoding="utf-8") as f:
            json.dump(record, f, indent=1)
            f.write("\n")


if __name__ == "__main__":
    main()
