"""Where the fused kernel's time goes, and which launch configuration to choose.

    python3 benchmarks/tune_gpu_kernel.py --out tune.json [--n 8192 --v 128256 --dtype bfloat16]
    python3 benchmarks/tune_gpu_kernel.py --dry-run --out /tmp/tune.json   (CPU, interpreter)

For one shape (default: issue 15's N=8192, V=128256, bf16) it runs
:func:`celib.triton_kernels.tune` (BLOCK x num_warps, then rows in flight x L2 hints, then
num_stages; default buffer and in place) and then times, with CUDA events around batches of
launches (so idle gaps from host synchronisation count, as they do in training):

* the raw forward kernel with the rule's and the tuned configuration: in place, into a
  separate preallocated buffer, into a fresh buffer, and without the gradient;
* the small pieces of celib's path: the class-index check (one host synchronisation, in
  ``celib.torch_ops``), the 'mean' denominator kernel, the backward's scaling kernel when the
  upstream gradient is 1 (it should cost a launch only);
* celib's full autograd path (default and in place), torch eager, and a copy of the logits.

It prints a table and writes a JSON record, including ``TUNED`` lines to paste into
``celib/triton_kernels.py``. Nothing here is asserted.
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import sys
import time
from pathlib import Path

DRY = "--dry-run" in sys.argv
if DRY:
    os.environ["TRITON_INTERPRET"] = "1"

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import torch  # noqa: E402
import torch.nn.functional as F  # noqa: E402

from celib import torch_ops, triton_kernels  # noqa: E402

DEVICE = "cpu" if DRY else "cuda"


def batch_ms(fn, runs=20, warmup=3):
    """Mean time per call (ms) over a batch of ``runs`` calls between two CUDA events."""
    if DRY:
        t = time.perf_counter()
        fn()
        return (time.perf_counter() - t) * 1e3
    for _ in range(warmup):
        fn()
    torch.cuda.synchronize()
    start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
    start.record()
    for _ in range(runs):
        fn()
    end.record()
    end.synchronize()
    return start.elapsed_time(end) / runs


def cfg_dict(cfg):
    return {k: getattr(cfg, k) for k in cfg.__dataclass_fields__}


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--out", required=True)
    parser.add_argument("--n", type=int, default=8192)
    parser.add_argument("--v", type=int, default=128256)
    parser.add_argument("--dtype", default="bfloat16", choices=["bfloat16", "float16", "float32"])
    parser.add_argument("--dry-run", action="store_true")
    args = parser.parse_args()
    if not DRY and not torch.cuda.is_available():
        print("tune_gpu_kernel.py: no CUDA device (--dry-run checks the script on CPU)")
        return
    N, V = (4, 300) if DRY else (args.n, args.v)
    dtype = getattr(torch, args.dtype)
    if DRY and dtype == torch.bfloat16:
        dtype = torch.float16
    gen = torch.Generator(device=DEVICE).manual_seed(0)
    x = torch.randn(N, V, device=DEVICE, generator=gen).to(dtype)
    y = torch.randint(0, V, (N,), device=DEVICE, generator=gen)
    sms = 4 if DRY else torch.cuda.get_device_properties(0).multi_processor_count
    record = dict(
        gpu=None if DRY else torch.cuda.get_device_name(),
        torch=torch.__version__,
        dry_run=DRY,
        date=datetime.datetime.now(datetime.UTC).isoformat(timespec="seconds"),
        N=N,
        V=V,
        dtype=str(dtype),
        sms=sms,
        parts={},
    )
    parts = record["parts"]
    rule = triton_kernels.rule_config(N, V, x.element_size(), sms, interpret=DRY)
    record["rule"] = cfg_dict(rule)
    timer = None
    if DRY:
        fake = iter(range(10000, 0, -1))

        def timer(fn):
            fn()
            return float(next(fake))

    tuned = {}
    for inplace in (False, True):
        scratch = x.clone()
        t0 = time.perf_counter()
        best, trials = triton_kernels.tune(
            scratch,
            y,
            inplace=inplace,
            sms=sms,
            timer=timer,
            blocks=(64, 128) if DRY else (4096, 8192, 16384, 32768),
            log=print,
        )
        key = "inplace" if inplace else "default"
        tuned[key] = best
        record[f"tune_{key}"] = dict(
            best=cfg_dict(best),
            seconds=round(time.perf_counter() - t0, 1),
            trials=[
                dict(cfg_dict(c), **({"error": ms} if isinstance(ms, str) else {"ms": ms}))
                for c, ms in trials
            ],
        )
        print(f"best ({key}): {best}", flush=True)
        del scratch

    scale = torch.full((), 1.0 / N, device=DEVICE, dtype=torch.float32)

    def kernel(g, cfg, xs=x, grad=True):
        return triton_kernels.cross_entropy_forward(
            xs, y, None, -100, 0.0, scale, g if grad else None, config=cfg
        )

    xi = x.clone()
    g = torch.empty_like(x)
    for name, cfg in (
        ("rule", rule),
        ("tuned_default", tuned["default"]),
        ("tuned_inplace", tuned["inplace"]),
    ):
        parts[f"kernel_{name}_in_place"] = batch_ms(lambda cfg=cfg: kernel(xi, cfg, xs=xi))
        parts[f"kernel_{name}_separate_buffer"] = batch_ms(lambda cfg=cfg: kernel(g, cfg))
        parts[f"kernel_{name}_fresh_buffer"] = batch_ms(
            lambda cfg=cfg: kernel(torch.empty_like(x), cfg)
        )
        parts[f"kernel_{name}_no_gradient"] = batch_ms(
            lambda cfg=cfg: kernel(None, cfg, grad=False)
        )
    parts["index_check_only (host sync)"] = batch_ms(
        lambda: torch_ops._check_class_indices(y, V, -100)
    )
    parts["mean_denominator_kernel"] = batch_ms(
        lambda: triton_kernels.mean_denominator(y, None, -100)
    )
    one = torch.ones((), device=DEVICE, dtype=dtype)
    parts["backward_scaling_kernel_grad_output_1"] = batch_ms(
        lambda: triton_kernels.scale_rows_(g, one)
    )
    half = torch.full((), 0.5, device=DEVICE, dtype=dtype)
    parts["backward_scaling_kernel_grad_output_0.5"] = batch_ms(
        lambda: triton_kernels.scale_rows_(g, half)
    )
    xl = x.detach().clone().requires_grad_()

    def full_default():
        out = torch_ops.cross_entropy(xl, y, backend="triton")
        return torch.autograd.grad(out, xl)[0]

    parts["full_path_default_rule"] = batch_ms(full_default)
    h = xl * 1.0  # a non-leaf, made once: each call overwrites it

    def full_inplace():
        out = torch_ops.cross_entropy(h, y, backend="triton", inplace_backward=True)
        return torch.autograd.grad(out, h)[0]

    parts["full_path_inplace_rule"] = batch_ms(full_inplace)
    for key, variant in (("default", full_default), ("inplace", full_inplace)):
        triton_kernels._override = tuned[key]
        try:
            parts[f"full_path_{key}_tuned"] = batch_ms(variant)
        finally:
            triton_kernels._override = None

    def eager():
        out = F.cross_entropy(xl, y)
        return torch.autograd.grad(out, xl)[0]

    parts["eager"] = batch_ms(eager)
    dst = torch.empty_like(x)
    parts["copy_logits"] = batch_ms(lambda: dst.copy_(x))
    for k, v in parts.items():
        print(f"{k:48s} {v:9.3f} ms  ({v / parts['copy_logits']:5.2f}x copy)", flush=True)
    dname = str(dtype).replace("torch.", "")
    record["TUNED_lines"] = [
        f"TUNED[({tuned[k].mode!r}, {V}, {dname!r}, {k == 'inplace'})] = KernelConfig("
        + ", ".join(f"{f}={getattr(tuned[k], f)!r}" for f in tuned[k].__dataclass_fields__)
        + ")"
        for k in ("default", "inplace")
    ]
    print("\n".join(record["TUNED_lines"]))
    Path(args.out).write_text(json.dumps(record, indent=1))


if __name__ == "__main__":
    main()
