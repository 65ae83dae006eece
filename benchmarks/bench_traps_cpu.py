"""Performance traps on a CPU: three cases once 10x or more slower than torch (issue 11).

    .venv/bin/python benchmarks/bench_traps_cpu.py [--repeats 7] [--threads N] [--case NAME]

1. ``reference_float16``: the NumPy reference, loss and gradient of float16 logits
   (2048 x 1000, 'mean'). The gradient entries are float16 subnormals, and NumPy casts
   subnormals slowly. Baseline: torch's float16 F.cross_entropy, forward + backward.
2. ``torch_confident_rows``: the torch backend on confident float32 rows (2048 x 1000,
   the true class 100 above the others): exp(x - lse) underflows to float32 subnormals.
   Baseline: F.cross_entropy, forward + backward.
3. ``linear_no_grad``: linear_cross_entropy under torch.no_grad (N=2048, H=256, V=8000),
   which once computed the gradients anyway. Baseline: F.linear_cross_entropy (or
   F.cross_entropy of F.linear) under torch.no_grad.

Each ratio is celib / torch, the fastest of ``--repeats`` interleaved runs after one warm-up
(the minimum: robust on a machine shared with other work),
measured in this run (below 1 is faster). Target: each at most 3. Nothing is asserted.
"""

from __future__ import annotations

import argparse
import os
import sys
import time

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))

import numpy as np  # noqa: E402
import torch  # noqa: E402

import celib  # noqa: E402
from celib.torch_ops import cross_entropy, linear_cross_entropy  # noqa: E402

F = torch.nn.functional


def _reference_float16():
    rng = np.random.default_rng(0)
    x = rng.standard_normal((2048, 1000)).astype(np.float16)
    y = rng.integers(0, 1000, 2048)
    xt, yt = torch.from_numpy(x), torch.from_numpy(y)

    def ours():
        celib.cross_entropy_and_grad(x, y)

    def theirs():
        xg = xt.clone().requires_grad_()
        F.cross_entropy(xg, yt).backward()

    return ours, theirs


def _torch_confident_rows():
    gen = torch.Generator().manual_seed(0)
    x = torch.randn(2048, 1000, generator=gen)
    y = torch.randint(0, 1000, (2048,), generator=gen)
    x[torch.arange(2048), y] += 100.0

    def step(fn):
        xg = x.clone().requires_grad_()
        fn(xg, y).backward()

    return (
        lambda: step(lambda a, b: cross_entropy(a, b, backend="torch")),
        lambda: step(F.cross_entropy),
    )


def _linear_no_grad():
    gen = torch.Generator().manual_seed(0)
    h = torch.randn(2048, 256, generator=gen, requires_grad=True)
    W = (torch.randn(8000, 256, generator=gen) / 16).requires_grad_()
    y = torch.randint(0, 8000, (2048,), generator=gen)
    torch_lce = getattr(
        F, "linear_cross_entropy", lambda a, b, c: F.cross_entropy(F.linear(a, b), c)
    )

    def ours():
        with torch.no_grad():
            linear_cross_entropy(h, W, y)

    def theirs():
        with torch.no_grad():
            torch_lce(h, W, y)

    return ours, theirs


CASES = {
    "reference_float16": _reference_float16,
    "torch_confident_rows": _torch_confident_rows,
    "linear_no_grad": _linear_no_grad,
}


def _ratio(ours, theirs, repeats):
    ours(), theirs()  # warm-up
    t_ours, t_theirs = [], []
    for _ in range(repeats):
        for fn, times in ((ours, t_ours), (theirs, t_theirs)):
            start = time.perf_counter()
            fn()
            times.append(time.perf_counter() - start)
    return min(t_ours) / min(t_theirs)


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--repeats", type=int, default=7)
    ap.add_argument("--case", choices=sorted(CASES), action="append")
    ap.add_argument("--threads", type=int, help="torch's intra-op threads (default: torch's)")
    args = ap.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    print(
        f"torch {torch.__version__}, {torch.get_num_threads()} threads, "
        f"ATEN_CPU_CAPABILITY={os.environ.get('ATEN_CPU_CAPABILITY', '(native)')}"
    )
    for name in args.case or CASES:
        ratio = _ratio(*CASES[name](), args.repeats)
        print(f"{name:22s} celib / torch = {ratio:6.2f}   {'ok' if ratio <= 3 else 'OVER 3x'}")


if __name__ == "__main__":
    main()
