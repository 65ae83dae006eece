"""celib's NumPy reference against torch on the CPU: forward plus gradient, time and memory.

    .venv/bin/python benchmarks/bench_reference_cpu.py [--n 4096] [--c 32000] [--repeats 5]

One process, the same float32 logits and class-index targets for both sides:

* celib:  ``cross_entropy_and_grad(x, t)`` (mean reduction; one softmax pass), and for
  information ``cross_entropy(x, t)`` then ``cross_entropy_grad(x, t)`` (two passes);
* torch:  ``F.cross_entropy(x, t)`` then ``.backward()``, on a tensor sharing x's memory.

Time: the median of ``--repeats`` runs of each, alternated, after one warm-up run
of each. torch is timed with its default thread count (what a user gets) and with
one thread (NumPy's ufuncs run on one core), and both ratios celib / torch printed.

Memory: the peak growth above what was allocated before the call, with the returned
gradient kept alive (so the figure is gradient + temporaries).

* celib: ``tracemalloc``. NumPy reports every array buffer it allocates to it (domain
  389047), so the traced peak is exact for NumPy's arrays.
* torch: its CPU allocator does not report to tracemalloc, so a background thread
  samples the process's resident set size (/proc/self/statm) every 0.5 ms while the
  call runs. Large tensors are mmap-ed and given back to the system when freed, so
  the sampled peak minus the starting RSS is the peak of the call's allocations (to
  the sampling interval: a buffer alive for less than 0.5 ms could be missed; every
  logits-sized buffer here lives for tens of milliseconds). The same sampler is run
  on celib as a cross-check of the method.

Targets (issue 2): celib at most 0.5x torch's time; no more than one logits-sized
temporary beyond the returned gradient.
"""

from __future__ import annotations

import argparse
import gc
import os
import statistics
import threading
import time
import tracemalloc

import numpy as np
import torch
import torch.nn.functional as F

import celib

PAGE = os.sysconf("SC_PAGE_SIZE")


def rss_bytes():
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * PAGE


class RSSPeak:
    """Peak RSS growth during a ``with`` block, sampled by a thread every 0.5 ms."""

    def __enter__(self):
        gc.collect()
        self.start = self.peak = rss_bytes()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._sample, daemon=True)
        self._thread.start()
        return self

    def _sample(self):
        while not self._stop.is_set():
            self.peak = max(self.peak, rss_bytes())
            time.sleep(0.0005)

    def __exit__(self, *exc):
        self.peak = max(self.peak, rss_bytes())
        self._stop.set()
        self._thread.join()

    @property
    def growth(self):
        return self.peak - self.start


def celib_step(x, t):
    """What a training loop calls: the loss and its gradient in one softmax pass."""
    return celib.cross_entropy_and_grad(x, t)


def celib_two_calls(x, t):
    """The two separate functions (each computes the softmax)."""
    return celib.cross_entropy(x, t), celib.cross_entropy_grad(x, t)


def torch_step(x, t):
    xt = torch.from_numpy(x).requires_grad_(True)  # shares x's memory, as celib reads it
    loss = F.cross_entropy(xt, torch.from_numpy(t))
    loss.backward()
    return loss.detach(), xt.grad


def median_time(step, x, t, repeats):
    times = []
    for _ in range(repeats):
        gc.collect()
        start = time.perf_counter()
        out = step(x, t)
        times.append(time.perf_counter() - start)
        del out
    return statistics.median(times)


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=4096)
    parser.add_argument("--c", type=int, default=32000)
    parser.add_argument("--repeats", type=int, default=5)
    args = parser.parse_args()

    rng = np.random.default_rng(0)
    x = (rng.standard_normal((args.n, args.c), dtype=np.float32) * 3).astype(np.float32)
    t = rng.integers(0, args.c, args.n)
    logits_mb = x.nbytes / 2**20
    default_threads = torch.get_num_threads()
    print(
        f"N={args.n} C={args.c} float32: logits {logits_mb:.0f} MiB; "
        f"torch {torch.__version__}, {default_threads} threads by default; numpy {np.__version__}"
    )

    # agreement first: the same numbers, or the timing means nothing
    (l_c, g_c), (l_t, g_t) = celib_step(x, t), torch_step(x, t)
    print(
        f"loss celib {float(l_c):.6f} torch {float(l_t):.6f}; "
        f"max |grad difference| {np.max(np.abs(g_c - g_t.numpy())):.2e}"
    )
    del l_c, g_c, l_t, g_t

    # time (warm-up done above)
    t_celib, t_torch = [], []
    for _ in range(args.repeats):  # alternate, so drifts in machine load hit both
        t_celib.append(median_time(celib_step, x, t, 1))
        t_torch.append(median_time(torch_step, x, t, 1))
    torch.set_num_threads(1)
    t_torch1 = median_time(torch_step, x, t, args.repeats)
    torch.set_num_threads(default_threads)
    t_two = median_time(celib_two_calls, x, t, args.repeats)
    tc, tt = statistics.median(t_celib), statistics.median(t_torch)
    print(
        f"median time  celib {tc * 1e3:8.1f} ms   torch ({default_threads} threads) "
        f"{tt * 1e3:8.1f} ms   torch (1 thread) {t_torch1 * 1e3:8.1f} ms"
    )
    print(
        f"ratio celib/torch: {tc / tt:.2f} ({default_threads} threads), "
        f"{tc / t_torch1:.2f} (1 thread)   target <= 0.5"
    )
    print(
        f"for information: cross_entropy + cross_entropy_grad as two calls {t_two * 1e3:.1f} ms, "
        f"ratio {t_two / tt:.2f} against torch ({default_threads} threads)"
    )

    # memory: peak growth with the returned gradient alive
    gc.collect()
    tracemalloc.start()
    base, _ = tracemalloc.get_traced_memory()
    tracemalloc.reset_peak()
    out = celib_step(x, t)
    _, peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    del out
    celib_traced = (peak - base) / 2**20

    with RSSPeak() as celib_rss:
        out = celib_step(x, t)
    del out
    with RSSPeak() as torch_rss:
        out = torch_step(x, t)
    del out

    def in_logits(mb):
        return mb / logits_mb

    c_rss, t_rss = celib_rss.growth / 2**20, torch_rss.growth / 2**20
    print(
        f"peak memory  celib {celib_traced:7.0f} MiB = {in_logits(celib_traced):.2f} x logits "
        f"(tracemalloc); {c_rss:.0f} MiB = {in_logits(c_rss):.2f} x logits (RSS sampling)"
    )
    print(f"             torch {t_rss:7.0f} MiB = {in_logits(t_rss):.2f} x logits (RSS sampling)")
    print(
        f"temporaries beyond the returned gradient: celib {in_logits(celib_traced) - 1:.2f} x logits, "
        f"torch {in_logits(t_rss) - 1:.2f} x logits   target <= 1"
    )


if __name__ == "__main__":
    main()
