"""Cross-entropy forward + backward on a CUDA GPU: celib's Triton kernel against torch and Liger.

    python3 benchmarks/bench_gpu.py --out gpu_bench.json [--budget-s 330] [--quick]

Runs only where CUDA exists (else says so and exits 0). For N in {4096, 8192, 16384},
V in {32000, 128256}, bfloat16 and float32, times forward + backward (the gradient
of the mean loss with respect to the logits) of

* celib_triton          celib.torch_ops.cross_entropy(backend="triton") (gradient in celib's buffer)
* celib_triton_inplace  the same kernel writing the gradient over the logits (kernel call
                        only: with an upstream gradient of 1 the backward is a hand-over)
* eager                 torch.nn.functional.cross_entropy
* compiled              torch.compile of the same (only at the required shape unless the
                        time budget allows: each shape and dtype costs a compilation)
* liger                 Liger-Kernel's cross-entropy, when importable

and copying the logits once (the bandwidth yardstick). Time: median of --runs (>= 40)
runs, each between CUDA events, after warm-up. Memory: torch.cuda.max_memory_allocated
during one call minus the memory allocated before it (the inputs), i.e. extra memory,
the gradient included. Then linear cross-entropy at N=16384, H=4096, V=128256, bfloat16:
celib.torch_ops.linear_cross_entropy against eager F.linear + F.cross_entropy (and
torch.nn.functional.linear_cross_entropy where it exists), gradients for input and weight.

Each case runs in its own try/except: an error is recorded in the JSON, not fatal.
Targets (N=8192, V=128256, bfloat16, H100/H200): celib >= 2x faster than eager, no slower
than torch.compile, extra memory O(N) (in-place variant; the default variant holds one
N x V gradient, which torch also allocates), within 1.5x of the copy time; linear CE peak
memory <= 0.25x eager's and time <= 1.1x eager's.
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import statistics
import sys
import time
import traceback

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))

import torch  # noqa: E402

F = torch.nn.functional
T0 = time.perf_counter()


def log(msg):
    print(f"[{time.perf_counter() - T0:6.1f}s] {msg}", flush=True)


def cuda_time(fn, runs, warmup=5):
    """Median of ``runs`` timings (ms) of fn(), each between CUDA events, after warm-up."""
    for _ in range(warmup):
        fn()
    torch.cuda.synchronize()
    times = []
    for _ in range(runs):
        start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
        start.record()
        fn()
        end.record()
        end.synchronize()
        times.append(start.elapsed_time(end))
    return statistics.median(times)


def extra_memory(fn):
    """Peak memory allocated during fn() beyond what was allocated before it (bytes)."""
    torch.cuda.synchronize()
    torch.cuda.empty_cache()
    before = torch.cuda.memory_allocated()
    torch.cuda.reset_peak_memory_stats()
    out = fn()
    torch.cuda.synchronize()
    peak = torch.cuda.max_memory_allocated() - before
    del out
    return peak


def fwd_bwd(loss_fn, x, y):
    """A closure running loss_fn forward and the gradient with respect to x."""
    def run():
        loss = loss_fn(x, y)
        (g,) = torch.autograd.grad(loss, x)
        return g
    return run


def liger_loss_fn():
    try:
        from liger_kernel.transformers.functional import liger_cross_entropy
    except Exception:  # noqa: BLE001 (any import problem means: not available)
        return None
    return lambda x, y: liger_cross_entropy(x, y)


def bench_cross_entropy(N, V, dtype, runs, with_compile, record):
    from celib import torch_ops, triton_kernels
    case = dict(N=N, V=V, dtype=str(dtype).replace("torch.", ""), results={}, errors={})
    record["cross_entropy"].append(case)
    gen = torch.Generator(device="cuda").manual_seed(0)
    x = torch.randn(N, V, device="cuda", dtype=dtype, generator=gen).requires_grad_()
    y = torch.randint(0, V, (N,), device="cuda", generator=gen)
    bytes_logits = x.numel() * x.element_size()
    case["logits_bytes"] = bytes_logits

    variants = {
        "celib_triton": lambda a, b: torch_ops.cross_entropy(a, b, backend="triton"),
        "eager": lambda a, b: F.cross_entropy(a, b),
    }
    if with_compile:
        compiled = torch.compile(lambda a, b: F.cross_entropy(a, b))
        variants["compiled"] = compiled
    liger = liger_loss_fn()
    if liger is not None:
        variants["liger"] = liger
    else:
        case["errors"]["liger"] = "liger_kernel not importable"

    # agreement of celib with eager at this shape (once)
    try:
        g_celib = fwd_bwd(variants["celib_triton"], x, y)()
        g_eager = fwd_bwd(variants["eager"], x, y)()
        case["max_abs_grad_diff_vs_eager"] = float((g_celib.float() - g_eager.float()).abs().max())
        l_c = float(variants["celib_triton"](x.detach(), y))
        l_e = float(F.cross_entropy(x.detach().float(), y))
        case["loss_diff_vs_eager_fp32"] = abs(l_c - l_e)
        del g_celib, g_eager
    except Exception as e:  # noqa: BLE001
        case["errors"]["agreement"] = f"{type(e).__name__}: {e}"

    for name, fn in variants.items():
        try:
            t0 = time.perf_counter()
            run = fwd_bwd(fn, x, y)
            ms = cuda_time(run, runs)
            mem = extra_memory(run)
            case["results"][name] = dict(ms=ms, extra_bytes=mem,
                                         wall_s=round(time.perf_counter() - t0, 1))
            log(f"  {name:22s} {ms:8.3f} ms  extra {mem / 2**20:9.1f} MiB")
        except Exception as e:  # noqa: BLE001
            case["errors"][name] = f"{type(e).__name__}: {e}"
            log(f"  {name}: ERROR {type(e).__name__}: {e}")
        torch.cuda.empty_cache()

    # the kernel writing the gradient over the logits (O(N) extra memory)
    try:
        xi = x.detach().clone()
        scale = torch.full((), 1.0 / N, device="cuda", dtype=torch.float32)

        def inplace():
            return triton_kernels.cross_entropy_forward(xi, y, None, -100, 0.0, scale, xi)
        ms = cuda_time(inplace, runs)
        mem = extra_memory(inplace)
        case["results"]["celib_triton_inplace"] = dict(ms=ms, extra_bytes=mem)
        log(f"  {'celib_triton_inplace':22s} {ms:8.3f} ms  extra {mem / 2**20:9.1f} MiB")
        del xi
    except Exception as e:  # noqa: BLE001
        case["errors"]["celib_triton_inplace"] = f"{type(e).__name__}: {e}"

    try:
        dst = torch.empty_like(x.detach())
        ms = cuda_time(lambda: dst.copy_(x.detach()), runs)
        case["results"]["copy_logits"] = dict(ms=ms, GBps=2 * bytes_logits / ms / 1e6)
        log(f"  {'copy logits':22s} {ms:8.3f} ms  ({2 * bytes_logits / ms / 1e6:.0f} GB/s)")
        del dst
    except Exception as e:  # noqa: BLE001
        case["errors"]["copy_logits"] = f"{type(e).__name__}: {e}"

    r = case["results"]
    ratios = {}
    if "celib_triton" in r:
        c = r["celib_triton"]["ms"]
        for other in ("eager", "compiled", "liger"):
            if other in r:
                ratios[f"speedup_vs_{other}"] = r[other]["ms"] / c
                ratios[f"extra_memory_vs_{other}"] = (r["celib_triton"]["extra_bytes"]
                                                      / max(r[other]["extra_bytes"], 1))
        if "copy_logits" in r:
            ratios["time_over_copy"] = c / r["copy_logits"]["ms"]
    if "celib_triton_inplace" in r:
        ri = r["celib_triton_inplace"]
        ratios["inplace_extra_bytes_per_row"] = ri["extra_bytes"] / N
        if "copy_logits" in r:
            ratios["inplace_time_over_copy"] = ri["ms"] / r["copy_logits"]["ms"]
    case["ratios"] = ratios
    del x, y
    torch.cuda.empty_cache()


def bench_linear(runs, record, N=16384, H=4096, V=128256, dtype=torch.bfloat16):
    from celib import torch_ops
    case = dict(N=N, H=H, V=V, dtype=str(dtype).replace("torch.", ""), results={}, errors={})
    record["linear_cross_entropy"] = case
    gen = torch.Generator(device="cuda").manual_seed(0)
    x = (torch.randn(N, H, device="cuda", generator=gen) / 8).to(dtype).requires_grad_()
    W = (torch.randn(V, H, device="cuda", generator=gen) / 64).to(dtype).requires_grad_()
    y = torch.randint(0, V, (N,), device="cuda", generator=gen)
    variants = {
        "celib": lambda: torch_ops.linear_cross_entropy(x, W, y),
        "eager": lambda: F.cross_entropy(F.linear(x, W), y),
    }
    if hasattr(F, "linear_cross_entropy"):
        variants["torch_linear_cross_entropy"] = lambda: F.linear_cross_entropy(x, W, y)
    else:
        case["errors"]["torch_linear_cross_entropy"] = (
            f"torch.nn.functional.linear_cross_entropy absent in torch {torch.__version__}")
    grads = {}
    for name, fn in variants.items():
        try:
            def run(fn=fn):
                return torch.autograd.grad(fn(), (x, W))
            grads[name] = [g.float() for g in run()]
            ms = cuda_time(run, runs, warmup=3)
            mem = extra_memory(run)
            case["results"][name] = dict(ms=ms, extra_bytes=mem)
            log(f"  linear {name:28s} {ms:8.3f} ms  extra {mem / 2**20:9.1f} MiB")
        except Exception as e:  # noqa: BLE001
            case["errors"][name] = f"{type(e).__name__}: {e}"
            log(f"  linear {name}: ERROR {type(e).__name__}: {e}")
        torch.cuda.empty_cache()
    if "celib" in grads and "eager" in grads:
        case["relative_grad_diff_vs_eager"] = [
            float((a - b).norm() / b.norm()) for a, b in zip(grads["celib"], grads["eager"])]
    r = case["results"]
    if "celib" in r and "eager" in r:
        case["ratios"] = dict(
            memory_vs_eager=r["celib"]["extra_bytes"] / r["eager"]["extra_bytes"],
            time_vs_eager=r["celib"]["ms"] / r["eager"]["ms"])


def targets(record):
    out = {}
    for case in record["cross_entropy"]:
        if case["N"] == 8192 and case["V"] == 128256 and case["dtype"] == "bfloat16":
            r, q = case.get("results", {}), case.get("ratios", {})
            out["ce_speedup_vs_eager>=2"] = _cmp(q.get("speedup_vs_eager"), lambda v: v >= 2)
            out["ce_no_slower_than_compile"] = _cmp(q.get("speedup_vs_compiled"),
                                                    lambda v: v >= 1)
            out["ce_time_within_1.5x_copy"] = _cmp(q.get("time_over_copy"), lambda v: v <= 1.5)
            out["ce_inplace_time_within_1.5x_copy"] = _cmp(q.get("inplace_time_over_copy"),
                                                           lambda v: v <= 1.5)
            # O(N): a few numbers per row, not a row of V numbers (V * 2 bytes = 256 KB)
            out["ce_inplace_extra_memory_O(N)"] = _cmp(q.get("inplace_extra_bytes_per_row"),
                                                       lambda v: v <= 64)
            if "celib_triton" in r:
                out["ce_default_extra_bytes_per_row"] = r["celib_triton"]["extra_bytes"] / 8192
    lin = record.get("linear_cross_entropy", {}).get("ratios", {})
    out["linear_memory<=0.25x_eager"] = _cmp(lin.get("memory_vs_eager"), lambda v: v <= 0.25)
    out["linear_time<=1.1x_eager"] = _cmp(lin.get("time_vs_eager"), lambda v: v <= 1.1)
    return out


def _cmp(value, ok):
    return None if value is None else dict(value=value, met=bool(ok(value)))


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", default="gpu_bench.json")
    ap.add_argument("--runs", type=int, default=40)
    ap.add_argument("--budget-s", type=float, default=330.0,
                    help="skip optional cases (torch.compile off the required shape, then "
                         "whole shapes) once this many seconds have passed")
    ap.add_argument("--quick", action="store_true", help="the required shape and linear CE only")
    args = ap.parse_args()
    if not torch.cuda.is_available():
        print("bench_gpu.py: no CUDA device, nothing to measure")
        return 0
    runs = max(40, args.runs)
    import triton
    record = dict(
        gpu=torch.cuda.get_device_name(), torch=torch.__version__, triton=triton.__version__,
        cuda=torch.version.cuda, date=datetime.datetime.now().isoformat(timespec="seconds"),
        runs_per_median=runs, cross_entropy=[], skipped=[], errors={})
    log(f"{record['gpu']}, torch {record['torch']}, triton {record['triton']}")

    def save():
        record["targets"] = targets(record)
        record["elapsed_s"] = round(time.perf_counter() - T0, 1)
        with open(args.out, "w") as f:
            json.dump(record, f, indent=1)

    required = [(8192, 128256, torch.bfloat16)]
    shapes = [(n, v, d) for d in (torch.bfloat16, torch.float32) for v in (128256, 32000)
              for n in (8192, 4096, 16384)]
    shapes = required + [s for s in shapes if s not in required]
    if args.quick:
        shapes = required
    for i, (N, V, dtype) in enumerate(shapes):
        is_required = (N, V, dtype) in required
        elapsed = time.perf_counter() - T0
        if not is_required and elapsed > args.budget_s:
            record["skipped"].append(dict(N=N, V=V, dtype=str(dtype), why="time budget"))
            log(f"skip N={N} V={V} {dtype}: time budget")
            continue
        # torch.compile costs a compilation per shape and dtype: required shape, then fp32
        # at the same shape, then others while under half the budget
        with_compile = is_required or (N == 8192 and V == 128256) or elapsed < args.budget_s / 3
        log(f"cross-entropy N={N} V={V} {dtype} (compile: {with_compile})")
        try:
            bench_cross_entropy(N, V, dtype, runs, with_compile, record)
        except Exception as e:  # noqa: BLE001
            record["errors"][f"ce_{N}_{V}_{dtype}"] = traceback.format_exc(limit=3)
            log(f"  ERROR {type(e).__name__}: {e}")
        torch.cuda.empty_cache()
        save()
        if i == 0:
            log("linear cross-entropy N=16384 H=4096 V=128256 bf16")
            try:
                bench_linear(runs, record)
            except Exception as e:  # noqa: BLE001
                record["errors"]["linear"] = traceback.format_exc(limit=3)
                log(f"  ERROR {type(e).__name__}: {e}")
            torch.cuda.empty_cache()
            save()
    save()
    log(f"targets: {json.dumps(record['targets'], indent=1)}")
    log(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
