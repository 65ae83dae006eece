"""celib's torch path against torch eager on a CPU: forward + backward, time and peak extra memory.

    .venv/bin/python benchmarks/bench_torch_cpu.py [--n 4096] [--c 32000] [--repeats 5]

Targets (N=4096, C=32000, float32): time no worse than eager (ratio <= 1.0) and
peak extra memory at most 0.6x eager's.

How memory is measured. Each variant runs in a fresh subprocess that allocates and
touches its inputs, runs a tiny warm-up call, then measures one forward + backward
with ``celib.book.peak_extra_bytes`` (the same helper chapter 8 uses: it resets the
kernel's RSS high-water mark through /proc/self/clear_refs and reads VmHWM - VmRSS;
``getrusage``'s ru_maxrss is no use here, since Linux carries the parent's mark into
it across exec). A subprocess per variant keeps one variant's high-water mark out of
the other's. The gradient (N x C) is part of both variants' extra memory.

Time: both variants in this process, interleaved, median of ``--repeats`` runs after
one warm-up; ratio = celib / eager (below 1 is faster). Prints ratios measured in
this run; nothing is asserted.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import time

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))

import torch  # noqa: E402

from celib.book import peak_extra_bytes  # noqa: E402
from celib.torch_ops import cross_entropy  # noqa: E402


def _inputs(n, c):
    gen = torch.Generator().manual_seed(0)
    x = torch.empty(n, c).normal_(generator=gen).requires_grad_()  # no temporaries
    y = torch.randint(0, c, (n,), generator=gen)
    return x, y


def _step(variant, x, y):
    if variant == "eager":
        loss = torch.nn.functional.cross_entropy(x, y)
    else:
        loss = cross_entropy(x, y, backend="torch")
    (grad,) = torch.autograd.grad(loss, x)
    return loss, grad


def _child(variant, n, c):
    """Run in a subprocess: print the peak extra memory of one forward + backward."""
    x, y = _inputs(n, c)
    _step(variant, x[:2], y[:2])  # load lazily-initialised code paths
    extra = peak_extra_bytes(lambda: _step(variant, x, y))
    print(json.dumps(dict(extra=extra, input=x.numel() * x.element_size())))


def _extra_memory(variant, n, c):
    out = subprocess.run(
        [sys.executable, __file__, "--child", variant, "--n", str(n), "--c", str(c)],
        capture_output=True,
        text=True,
        check=True,
    )
    return json.loads(out.stdout.strip().splitlines()[-1])


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--n", type=int, default=4096)
    ap.add_argument("--c", type=int, default=32000)
    ap.add_argument("--repeats", type=int, default=5)
    ap.add_argument("--child", choices=["eager", "celib"])
    args = ap.parse_args()
    if args.child:
        _child(args.child, args.n, args.c)
        return

    n, c = args.n, args.c
    print(
        f"cross-entropy forward + backward, N={n}, C={c}, float32, CPU, "
        f"torch {torch.__version__}, {torch.get_num_threads()} threads"
    )
    x, y = _inputs(n, c)
    # agreement first
    (l0, g0), (l1, g1) = _step("eager", x, y), _step("celib", x, y)
    print(
        f"loss difference {abs(l0.item() - l1.item()):.2e}, "
        f"gradient max difference {(g0 - g1).abs().max().item():.2e}"
    )
    del g0, g1
    times = {"eager": [], "celib": []}
    for _ in range(args.repeats):
        for variant in ("eager", "celib"):
            t0 = time.perf_counter()
            _step(variant, x, y)
            times[variant].append(time.perf_counter() - t0)
    med = {k: statistics.median(v) for k, v in times.items()}
    del x, y
    mem = {v: _extra_memory(v, n, c) for v in ("eager", "celib")}
    mb = 2**20
    print(
        f"time (median of {args.repeats}): eager {med['eager'] * 1e3:.0f} ms, "
        f"celib {med['celib'] * 1e3:.0f} ms"
    )
    print(
        f"peak extra memory: eager {mem['eager']['extra'] / mb:.0f} MiB, "
        f"celib {mem['celib']['extra'] / mb:.0f} MiB "
        f"(logits are {mem['eager']['input'] / mb:.0f} MiB)"
    )
    t_ratio = med["celib"] / med["eager"]
    m_ratio = mem["celib"]["extra"] / mem["eager"]["extra"]
    print(
        f"time ratio celib/eager: {t_ratio:.2f} (target <= 1.00: "
        f"{'met' if t_ratio <= 1.0 else 'NOT met'})"
    )
    print(
        f"peak extra memory ratio celib/eager: {m_ratio:.2f} (target <= 0.60: "
        f"{'met' if m_ratio <= 0.6 else 'NOT met'})"
    )


if __name__ == "__main__":
    main()
