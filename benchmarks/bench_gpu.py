"""Cross-entropy forward + backward on a CUDA GPU: celib's Triton kernels against torch and Liger.

    python3 benchmarks/bench_gpu.py --out gpu_bench.json [--budget-s 280]
    python3 benchmarks/bench_gpu.py --dry-run --out /tmp/dry.json     (CPU, Triton interpreter)

Measures the targets of issue 15 in one run, each against baselines measured in the same run
(forward + the gradient of the loss with respect to the logits, ``torch.autograd.grad``):

1. ``required``: N=8192, V=128256, bfloat16: celib's default path (a gradient buffer celib
   owns), celib in place (``inplace_backward=True`` on a non-leaf), torch eager,
   ``torch.compile``, Liger-Kernel (when importable), and one copy of the logits (the
   bandwidth yardstick). Targets: default <= 1.3x the copy and faster than torch.compile
   and Liger; in place <= 1.15x the copy.
   Then ``parts``: the raw kernel into a separate, a fresh buffer, in place and without the
   gradient, the class-index check of ``celib.torch_ops`` (one host synchronisation), the
   'mean' denominator kernel and the backward's scaling kernel when grad_output is 1.
2. ``accuracy``: chapter 5's confident rows (C = 10 and C = 128256, the target at a margin
   of 20..80 above classes at 0) in bfloat16: the true-class gradient against its exact
   value; target: within one bfloat16 rounding step. torch eager and Liger alongside.
3. ``few_rows``: N=256, V=262144, bfloat16 and float32 (the split mode): target >= 50 % of
   the copy bandwidth (copy time / celib time >= 0.5); celib's rows mode alongside.
4. ``float32``: N in {4096, 8192, 16384} x V in {32000, 128256, 262144}: celib's default
   path never slower than torch.compile.
5. ``tuned``: the required shape again with celib's configuration found by
   ``celib.triton_kernels.tune`` (default and in place); the configurations go in the JSON
   (for ``celib.triton_kernels.TUNED``).
6. while the time budget lasts: linear cross-entropy (N=16384, H=4096, V=128256, bf16) and
   more bfloat16 shapes.

Time: median of >= 40 runs (``--runs``), each between CUDA events, after warm-up. Memory:
``torch.cuda.max_memory_allocated`` during one call minus what was allocated before (the
inputs): extra memory, the gradient included. Every case runs in its own try/except: an error
is recorded in the JSON, not fatal. The JSON is rewritten after every case.

``--dry-run`` runs the same code on CPU tensors under Triton's interpreter, on tiny shapes
(float16 for bfloat16, which the interpreter cannot compute), timed with the wall clock: it
checks the script and its JSON, not speed. Its figures mean nothing.
"""

from __future__ import annotations

import argparse
import datetime
import json
import math
import os
import statistics
import sys
import time
import traceback

DRY = "--dry-run" in sys.argv
if DRY:
    os.environ["TRITON_INTERPRET"] = "1"  # before triton is first imported

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))

import torch  # noqa: E402

F = torch.nn.functional
T0 = time.perf_counter()
DEVICE = "cpu" if DRY else "cuda"


def log(msg):
    print(f"[{time.perf_counter() - T0:6.1f}s] {msg}", flush=True)


def sync():
    if not DRY:
        torch.cuda.synchronize()


def time_ms(fn, runs, warmup=5):
    """Median of ``runs`` timings (ms) of fn(), each between CUDA events, after warm-up."""
    if DRY:
        fn()
        times = []
        for _ in range(3):
            t = time.perf_counter()
            fn()
            times.append((time.perf_counter() - t) * 1e3)
        return statistics.median(times)
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
    if DRY:
        fn()
        return None
    torch.cuda.synchronize()
    torch.cuda.empty_cache()
    before = torch.cuda.memory_allocated()
    torch.cuda.reset_peak_memory_stats()
    out = fn()
    torch.cuda.synchronize()
    peak = torch.cuda.max_memory_allocated() - before
    del out
    return peak


def free():
    if not DRY:
        torch.cuda.empty_cache()


def dname(dtype):
    return str(dtype).replace("torch.", "")


def cfg_dict(cfg):
    return {k: getattr(cfg, k) for k in cfg.__dataclass_fields__}


# ---------------------------------------------------------------------------------------
# variants
# ---------------------------------------------------------------------------------------


def liger_loss_fn():
    try:
        from liger_kernel.transformers.functional import liger_cross_entropy
    except Exception:  # noqa: BLE001 (any import problem means: not available)
        return None
    return lambda x, y: liger_cross_entropy(x, y)


def grad_of(loss_fn, x, y):
    """A closure: forward, then the gradient with respect to the leaf x."""

    def run():
        (g,) = torch.autograd.grad(loss_fn(x, y), x)
        return g

    return run


def celib_inplace_run(x, y):
    """celib in place, as a model uses it: the logits are a non-leaf; each call writes the
    gradient over them (later calls then read earlier gradients as logits: finite values,
    the same work)."""
    from celib import torch_ops

    base = x.detach().clone().requires_grad_()
    h = base * 1.0  # a non-leaf, made once

    def run():
        loss = torch_ops.cross_entropy(h, y, backend="triton", inplace_backward=True)
        (g,) = torch.autograd.grad(loss, h)
        return g

    return run


def compiled_fn():
    try:
        torch._dynamo.reset()  # a fresh compilation for each shape
    except Exception:  # noqa: BLE001
        pass
    return torch.compile(lambda a, b: F.cross_entropy(a, b), dynamic=False)


def make_problem(N, V, dtype, seed=0):
    gen = torch.Generator(device=DEVICE).manual_seed(seed)
    x = torch.randn(N, V, device=DEVICE, generator=gen).to(dtype).requires_grad_()
    y = torch.randint(0, V, (N,), device=DEVICE, generator=gen)
    return x, y


def bench_case(record, label, N, V, dtype, runs, variants, config=None):
    """Time the named variants at one shape; returns the case's dict (also in the record)."""
    from celib import torch_ops, triton_kernels

    case = dict(label=label, N=N, V=V, dtype=dname(dtype), results={}, errors={})
    record["cases"].append(case)
    x, y = make_problem(N, V, dtype)
    case["logits_bytes"] = x.numel() * x.element_size()
    old = triton_kernels._override
    triton_kernels._override = config
    try:
        case["config_default_path"] = cfg_dict(triton_kernels.choose_config(N, V, dtype, x.device))
        case["config_inplace_path"] = cfg_dict(
            triton_kernels.choose_config(N, V, dtype, x.device, inplace=True)
        )
        fns = {}
        for name in variants:
            if name == "celib":
                fns[name] = grad_of(
                    lambda a, b: torch_ops.cross_entropy(a, b, backend="triton"), x, y
                )
            elif name == "celib_inplace":
                fns[name] = celib_inplace_run(x, y)
            elif name == "eager":
                fns[name] = grad_of(F.cross_entropy, x, y)
            elif name == "compiled":
                if DRY:
                    case["errors"][name] = "not run in a dry run"
                    continue
                fns[name] = grad_of(compiled_fn(), x, y)
            elif name == "liger":
                liger = liger_loss_fn()
                if liger is None or DRY:
                    case["errors"][name] = (
                        "liger_kernel not importable" if not DRY else "not run in a dry run"
                    )
                    continue
                fns[name] = grad_of(liger, x, y)
            elif name == "copy":
                dst = torch.empty_like(x.detach())
                xd = x.detach()
                fns[name] = lambda dst=dst, xd=xd: dst.copy_(xd)
        if "celib" in fns and "eager" in fns:
            try:
                g_c, g_e = fns["celib"](), fns["eager"]()
                case["max_abs_grad_diff_vs_eager"] = float((g_c.float() - g_e.float()).abs().max())
                del g_c, g_e
            except Exception as e:  # noqa: BLE001
                case["errors"]["agreement"] = f"{type(e).__name__}: {e}"
        for name, fn in fns.items():
            try:
                t0 = time.perf_counter()
                ms = time_ms(fn, runs)
                entry = dict(ms=ms, wall_s=round(time.perf_counter() - t0, 1))
                if name != "copy":
                    entry["extra_bytes"] = extra_memory(fn)
                else:
                    entry["GBps"] = 2 * case["logits_bytes"] / ms / 1e6
                case["results"][name] = entry
                mem = entry.get("extra_bytes")
                log(
                    f"  {label:10s} {name:15s} {ms:9.3f} ms"
                    + (f"  extra {mem / 2**20:9.1f} MiB" if mem is not None else "")
                )
            except Exception as e:  # noqa: BLE001
                case["errors"][name] = f"{type(e).__name__}: {e}"
                log(f"  {label} {name}: ERROR {type(e).__name__}: {e}")
            free()
    finally:
        triton_kernels._override = old
    r = case["results"]
    ratios = {}
    if "copy" in r:
        for name in ("celib", "celib_inplace", "compiled", "liger", "eager"):
            if name in r:
                ratios[f"{name}_over_copy"] = r[name]["ms"] / r["copy"]["ms"]
    if "celib" in r:
        for other in ("eager", "compiled", "liger"):
            if other in r:
                ratios[f"celib_speedup_vs_{other}"] = r[other]["ms"] / r["celib"]["ms"]
    if "celib_inplace" in r:
        for other in ("compiled", "liger"):
            if other in r:
                ratios[f"celib_inplace_speedup_vs_{other}"] = (
                    r[other]["ms"] / r["celib_inplace"]["ms"]
                )
    case["ratios"] = ratios
    del x, y
    free()
    return case


# ---------------------------------------------------------------------------------------
# accuracy: chapter 5's confident rows in bfloat16
# ---------------------------------------------------------------------------------------


def rounding_step(value, dtype):
    t = torch.tensor(abs(value), dtype=torch.float64).to(dtype)
    return float(torch.nextafter(t, torch.tensor(math.inf, dtype=dtype)).double() - t.double())


def bench_accuracy(record, dtype):
    from celib import torch_ops

    margins = [20.0, 30.0, 40.0, 50.0, 60.0, 70.0, 80.0]
    out = dict(dtype=dname(dtype), margins=margins, by_C={})
    record["accuracy"] = out
    liger = None if DRY else liger_loss_fn()
    for C in (10, 128256):
        rows = []
        x = torch.zeros(len(margins), C, device=DEVICE)
        y = torch.arange(len(margins), device=DEVICE) * (C // len(margins))
        x[torch.arange(len(margins), device=DEVICE), y] = torch.tensor(margins, device=DEVICE)
        x = x.to(dtype)
        fns = {
            "celib": lambda a, b: torch_ops.cross_entropy(a, b, backend="triton", reduction="sum"),
            "eager": lambda a, b: F.cross_entropy(a, b, reduction="sum"),
        }
        if liger is not None:
            fns["liger"] = lambda a, b: liger_loss_fn()(a, b) * len(margins)  # its mean x N
        grads = {}
        for name, fn in fns.items():
            try:
                xl = x.clone().requires_grad_()
                (g,) = torch.autograd.grad(fn(xl, y), xl)
                grads[name] = [float(g[n, y[n]].double()) for n in range(len(margins))]
            except Exception as e:  # noqa: BLE001
                grads[name] = f"{type(e).__name__}: {e}"
        for n, margin in enumerate(margins):
            tail = (C - 1) * math.exp(-margin)
            exact = -tail / (1 + tail)
            step = rounding_step(exact, dtype)
            row = dict(margin=margin, exact=exact, step=step)
            for name, got in grads.items():
                if isinstance(got, list):
                    row[name] = got[n]
                    row[f"{name}_steps_off"] = abs(got[n] - exact) / step
            rows.append(row)
        out["by_C"][str(C)] = dict(
            rows=rows, errors={k: v for k, v in grads.items() if isinstance(v, str)}
        )
        log(
            f"  accuracy C={C}: celib steps off "
            + ", ".join(
                f"{r['margin']:.0f}:{r.get('celib_steps_off', float('nan')):.2g}" for r in rows
            )
            + "; eager "
            + ", ".join(f"{r.get('eager_steps_off', float('nan')):.2g}" for r in rows)
        )
        del x
        free()


# ---------------------------------------------------------------------------------------
# targets
# ---------------------------------------------------------------------------------------


def _cmp(value, ok):
    return None if value is None else dict(value=value, met=bool(ok(value)))


def targets(record):
    out = {}
    cases = record["cases"]

    def find(label, N=None, V=None, dtype=None):
        for c in cases:
            if (
                c["label"] == label
                and (N is None or c["N"] == N)
                and (V is None or c["V"] == V)
                and (dtype is None or c["dtype"] == dtype)
            ):
                return c
        return None

    for label in ("required", "tuned"):
        c = find(label)
        if c is None:
            continue
        q = c.get("ratios", {})
        out[f"{label}: default <= 1.3x copy"] = _cmp(q.get("celib_over_copy"), lambda v: v <= 1.3)
        out[f"{label}: default faster than torch.compile"] = _cmp(
            q.get("celib_speedup_vs_compiled"), lambda v: v > 1
        )
        out[f"{label}: default faster than Liger"] = _cmp(
            q.get("celib_speedup_vs_liger"), lambda v: v > 1
        )
        out[f"{label}: in place <= 1.15x copy"] = _cmp(
            q.get("celib_inplace_over_copy"), lambda v: v <= 1.15
        )
    fp32 = [c for c in cases if c["label"] == "float32"]
    per = {}
    for c in fp32:
        q = c.get("ratios", {})
        if "celib_speedup_vs_compiled" in q:
            per[f"N={c['N']} V={c['V']}"] = q["celib_speedup_vs_compiled"]
    if per:
        out["float32: never slower than torch.compile (compile time / celib time >= 1)"] = dict(
            value=per, met=all(v >= 1 for v in per.values()), shapes=len(per), of=9
        )
    for c in cases:
        if c["label"] == "few_rows":
            q = c.get("ratios", {})
            v = q.get("celib_over_copy")
            out[f"few rows N={c['N']} V={c['V']} {c['dtype']}: >= 50% of copy bandwidth"] = _cmp(
                None if v is None else 1 / v, lambda f: f >= 0.5
            )
    acc = record.get("accuracy")
    if acc:
        worst = [r.get("celib_steps_off") for b in acc["by_C"].values() for r in b["rows"]]
        worst = [w for w in worst if w is not None]
        if worst:
            out[f"accuracy: confident rows, {acc['dtype']}, within one rounding step"] = dict(
                value=max(worst), met=max(worst) <= 1.0
            )
    lin = record.get("linear_cross_entropy", {}).get("ratios", {})
    if lin:
        out["linear: memory <= 0.25x eager"] = _cmp(lin.get("memory_vs_eager"), lambda v: v <= 0.25)
        out["linear: time <= 1.1x eager"] = _cmp(lin.get("time_vs_eager"), lambda v: v <= 1.1)
    return out


# ---------------------------------------------------------------------------------------
# where the default path's time goes (after the required case: the kernels are compiled)
# ---------------------------------------------------------------------------------------


def bench_parts(record, N, V, dtype, runs):
    """The pieces of celib's path at one shape, each timed alone (ms)."""
    from celib import torch_ops, triton_kernels

    parts = {}
    record["parts"] = dict(N=N, V=V, dtype=dname(dtype), ms=parts)
    x, y = make_problem(N, V, dtype)
    x = x.detach()
    scale = torch.full((), 1.0 / N, device=DEVICE)
    g = torch.empty_like(x)
    xi = x.clone()
    parts["kernel_separate_buffer"] = time_ms(
        lambda: triton_kernels.cross_entropy_forward(x, y, None, -100, 0.0, scale, g), runs
    )
    parts["kernel_fresh_buffer"] = time_ms(
        lambda: triton_kernels.cross_entropy_forward(
            x, y, None, -100, 0.0, scale, torch.empty_like(x)
        ),
        runs,
    )
    parts["kernel_in_place"] = time_ms(
        lambda: triton_kernels.cross_entropy_forward(xi, y, None, -100, 0.0, scale, xi), runs
    )
    parts["kernel_no_gradient"] = time_ms(
        lambda: triton_kernels.cross_entropy_forward(x, y, None, -100, 0.0, scale, None), runs
    )
    parts["class_index_check (torch_ops, one host sync)"] = time_ms(
        lambda: torch_ops._check_class_indices(y, V, -100), runs
    )
    parts["mean_denominator_kernel"] = time_ms(
        lambda: triton_kernels.mean_denominator(y, None, -100), runs
    )
    one = torch.ones((), device=DEVICE, dtype=dtype)
    parts["backward_scaling_grad_output_1"] = time_ms(
        lambda: triton_kernels.scale_rows_(g, one), runs
    )
    for k, v in parts.items():
        log(f"  part {k:48s} {v:9.3f} ms")


# ---------------------------------------------------------------------------------------
# tuning and linear cross-entropy
# ---------------------------------------------------------------------------------------


def bench_tuning(record, N, V, dtype, runs, deadline=None):
    """tune() at the required shape (default buffer and in place); returns the two configs."""
    from celib import triton_kernels

    out = {}
    record["tuning"] = out
    for inplace in (False, True):
        x, y = make_problem(N, V, dtype)
        x = x.detach()
        t0 = time.perf_counter()
        if DRY:
            calls = iter(range(10000, 0, -1))

            def timer(fn, calls=calls):
                fn()
                return float(next(calls))

            best, trials = triton_kernels.tune(
                x, y, inplace=inplace, sms=4, timer=timer, blocks=(64, 128)
            )
        else:
            best, trials = triton_kernels.tune(x, y, inplace=inplace, deadline=deadline)
        key = "inplace" if inplace else "default"
        out[key] = dict(
            best=cfg_dict(best),
            seconds=round(time.perf_counter() - t0, 1),
            trials=[
                dict(cfg_dict(c), **({"error": ms} if isinstance(ms, str) else {"ms": ms}))
                for c, ms in trials
            ],
        )
        log(f"  tuned ({key}): {best} in {out[key]['seconds']} s, {len(trials)} trials")
        del x, y
        free()
    return out


def bench_linear(record, runs, N=16384, H=4096, V=128256, dtype=torch.bfloat16):
    from celib import torch_ops

    case = dict(N=N, H=H, V=V, dtype=dname(dtype), results={}, errors={})
    record["linear_cross_entropy"] = case
    gen = torch.Generator(device=DEVICE).manual_seed(0)
    x = (torch.randn(N, H, device=DEVICE, generator=gen) / 8).to(dtype).requires_grad_()
    W = (torch.randn(V, H, device=DEVICE, generator=gen) / 64).to(dtype).requires_grad_()
    y = torch.randint(0, V, (N,), device=DEVICE, generator=gen)
    variants = {
        "celib": lambda: torch_ops.linear_cross_entropy(x, W, y),
        "eager": lambda: F.cross_entropy(F.linear(x, W), y),
    }
    grads = {}
    for name, fn in variants.items():
        try:

            def run(fn=fn):
                return torch.autograd.grad(fn(), (x, W))

            grads[name] = [g.float() for g in run()]
            ms = time_ms(run, runs, warmup=3)
            mem = extra_memory(run)
            case["results"][name] = dict(ms=ms, extra_bytes=mem)
            log(
                f"  linear {name:8s} {ms:9.3f} ms"
                + (f"  extra {mem / 2**20:9.1f} MiB" if mem is not None else "")
            )
        except Exception as e:  # noqa: BLE001
            case["errors"][name] = f"{type(e).__name__}: {e}"
        free()
    if "celib" in grads and "eager" in grads:
        case["relative_grad_diff_vs_eager"] = [
            float((a - b).norm() / b.norm()) for a, b in zip(grads["celib"], grads["eager"])
        ]
    r = case["results"]
    if "celib" in r and "eager" in r and r["eager"].get("extra_bytes"):
        case["ratios"] = dict(
            memory_vs_eager=r["celib"]["extra_bytes"] / r["eager"]["extra_bytes"],
            time_vs_eager=r["celib"]["ms"] / r["eager"]["ms"],
        )


# ---------------------------------------------------------------------------------------


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", default="gpu_bench.json")
    ap.add_argument("--runs", type=int, default=40)
    ap.add_argument(
        "--budget-s",
        type=float,
        default=280.0,
        help="start no optional part (tuning, linear, extra shapes) after this; "
        "tuning tries no configuration after this + 60 s",
    )
    ap.add_argument(
        "--dry-run",
        action="store_true",
        help="CPU, Triton interpreter, tiny shapes: checks the script and its JSON",
    )
    args = ap.parse_args()
    if not DRY and not torch.cuda.is_available():
        print("bench_gpu.py: no CUDA device, nothing to measure (--dry-run checks the script)")
        return 0
    import triton

    runs = 3 if DRY else max(40, args.runs)
    bf16 = torch.float16 if DRY else torch.bfloat16  # the interpreter has no bf16
    record = dict(
        dry_run=DRY,
        gpu=None if DRY else torch.cuda.get_device_name(),
        sms=None if DRY else torch.cuda.get_device_properties(0).multi_processor_count,
        torch=torch.__version__,
        triton=triton.__version__,
        cuda=torch.version.cuda,
        date=datetime.datetime.now(datetime.UTC).isoformat(timespec="seconds"),
        runs_per_median=runs,
        cases=[],
        skipped=[],
        errors={},
    )
    log(
        f"{record['gpu'] or 'CPU (dry run: Triton interpreter, figures meaningless)'}, "
        f"torch {record['torch']}, triton {record['triton']}"
    )

    def save():
        record["targets"] = targets(record)
        record["elapsed_s"] = round(time.perf_counter() - T0, 1)
        with open(args.out, "w") as f:
            json.dump(record, f, indent=1)

    def step(name, fn, optional=False):
        if optional and time.perf_counter() - T0 > args.budget_s:
            record["skipped"].append(dict(part=name, why="time budget"))
            log(f"skip {name}: time budget")
            return None
        log(name)
        try:
            return fn()
        except Exception as e:  # noqa: BLE001
            record["errors"][name] = traceback.format_exc(limit=4)
            log(f"  ERROR {type(e).__name__}: {e}")
        finally:
            free()
            save()

    all_variants = ("celib", "celib_inplace", "eager", "compiled", "liger", "copy")
    NR, VR = (8, 3000) if DRY else (8192, 128256)
    step(
        f"required N={NR} V={VR} {dname(bf16)}",
        lambda: bench_case(record, "required", NR, VR, bf16, runs, all_variants),
    )
    step(f"parts of the path, N={NR} V={VR}", lambda: bench_parts(record, NR, VR, bf16, runs))
    step(f"accuracy {dname(bf16)}", lambda: bench_accuracy(record, bf16))
    for dtype in (bf16, torch.float32):
        NF, VF = (2, 40000) if DRY else (256, 262144)
        step(
            f"few rows N={NF} V={VF} {dname(dtype)}",
            lambda dtype=dtype, NF=NF, VF=VF: bench_case(
                record, "few_rows", NF, VF, dtype, runs, ("celib", "compiled", "copy")
            ),
        )
    if not DRY:
        from celib import triton_kernels

        rows_cfg = triton_kernels.rule_config(4096, 262144, 2, record["sms"])
        step(
            "few rows, rows mode forced (comparison)",
            lambda: bench_case(
                record, "few_rows_rows_mode", 256, 262144, bf16, runs, ("celib",), config=rows_cfg
            ),
        )
    grid = [
        (n, v)
        for v in ((100, 700) if DRY else (32000, 128256, 262144))
        for n in ((4, 8) if DRY else (4096, 8192, 16384))
    ]
    for n, v in grid:
        step(
            f"float32 N={n} V={v}",
            lambda n=n, v=v: bench_case(
                record,
                "float32",
                n,
                v,
                torch.float32,
                runs,
                ("celib", "celib_inplace", "compiled", "copy"),
            ),
        )
    if DRY:
        NR, VR = 4, 300  # the interpreter: a small search
    tuned = step(
        "tuning at the required shape",
        lambda: bench_tuning(record, NR, VR, bf16, runs, deadline=T0 + args.budget_s + 60),
        optional=True,
    )
    if tuned:
        from celib import triton_kernels

        for key, variant in (("default", "celib"), ("inplace", "celib_inplace")):
            cfg = triton_kernels.KernelConfig(**tuned[key]["best"])
            step(
                f"tuned ({key}) at the required shape",
                lambda cfg=cfg, variant=variant: bench_case(
                    record,
                    "tuned" if variant == "celib" else "tuned_inplace",
                    NR,
                    VR,
                    bf16,
                    runs,
                    (variant, "copy"),
                    config=cfg,
                ),
            )  # seconds: kernels compiled
        # one 'tuned' case carrying both figures, against the required case's baselines
        cases = {c["label"]: c for c in record["cases"]}
        t, ti, req = cases.get("tuned"), cases.get("tuned_inplace"), cases.get("required")
        if t is not None and ti is not None and "copy" in t["results"]:
            if "celib_inplace" in ti["results"]:
                t["results"]["celib_inplace"] = ti["results"]["celib_inplace"]
                t["ratios"]["celib_inplace_over_copy"] = (
                    ti["results"]["celib_inplace"]["ms"] / t["results"]["copy"]["ms"]
                )
            for other in ("compiled", "liger"):
                if req is not None and other in req["results"] and "celib" in t["results"]:
                    t["ratios"][f"celib_speedup_vs_{other}"] = (
                        req["results"][other]["ms"] / t["results"]["celib"]["ms"]
                    )
        save()
    if not DRY:
        step(
            "linear cross-entropy N=16384 H=4096 V=128256 bf16",
            lambda: bench_linear(record, runs),
            optional=True,
        )
    extra = [
        (n, v)
        for v in ((300,) if DRY else (32000, 128256))
        for n in ((4,) if DRY else (4096, 16384))
    ]
    for n, v in extra:
        step(
            f"bf16 N={n} V={v}",
            lambda n=n, v=v: bench_case(
                record,
                "bfloat16",
                n,
                v,
                bf16,
                runs,
                ("celib", "celib_inplace", "compiled", "liger", "copy"),
            ),
            optional=True,
        )
    save()
    log("targets:")
    for k, v in record["targets"].items():
        log(f"  {k}: {json.dumps(v)}")
    log(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
