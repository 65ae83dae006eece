"""Where the fused kernel's time goes, at the issue's required shape (N=8192, V=128256, bf16).

    python3 benchmarks/tune_gpu_kernel.py --out tune.json      (CUDA only)

One run measures, with CUDA events around batches of launches (so idle gaps from host
synchronisation count, as they do in training):

* the raw kernel (gradient written over the logits) for launch configurations
  BLOCK x num_warps (x num_stages for the best), to choose ``_launch_config``;
* the raw kernel writing into a separate, preallocated buffer, and into a fresh one;
* the kernel without the gradient (pass 1 and the loss only);
* the class-index check alone (one host synchronisation);
* celib's full autograd path (default and in-place), torch eager, and a copy of the
  logits (the memory-bandwidth yardstick).

It prints a table and writes a JSON record; nothing here is asserted.
"""

from __future__ import annotations

import argparse
import datetime
import json
import sys
from pathlib import Path

import torch
import torch.nn.functional as F

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from celib import torch_ops, triton_kernels  # noqa: E402


def batch_ms(fn, runs=20, warmup=3):
    """Mean time per call (ms) over a batch of ``runs`` calls between two CUDA events."""
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


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--out", required=True)
    parser.add_argument("--n", type=int, default=8192)
    parser.add_argument("--v", type=int, default=128256)
    args = parser.parse_args()
    if not torch.cuda.is_available():
        print("tune_gpu_kernel.py: no CUDA device")
        return
    N, V = args.n, args.v
    gen = torch.Generator(device="cuda").manual_seed(0)
    x = torch.randn(N, V, device="cuda", dtype=torch.bfloat16, generator=gen)
    y = torch.randint(0, V, (N,), device="cuda", generator=gen)
    loss = torch.empty(N, device="cuda", dtype=torch.float32)
    lse = torch.empty_like(loss)
    scale = torch.full((), 1.0 / N, device="cuda", dtype=torch.float32)
    sum_w = torch.full((), float(V), device="cuda", dtype=torch.float32)
    record = dict(gpu=torch.cuda.get_device_name(), torch=torch.__version__,
                  date=datetime.datetime.now().isoformat(timespec="seconds"), N=N, V=V,
                  dtype="bfloat16", configs=[], parts={})
    results = record["parts"]

    def launch(g, block, warps, stages=None, has_grad=True, xs=x):
        kw = dict(BLOCK=block, HAS_WEIGHT=False, HAS_SMOOTHING=False, HAS_GRAD=has_grad,
                  num_warps=warps)
        if stages is not None:
            kw["num_stages"] = stages
        triton_kernels._cross_entropy_kernel[(N,)](
            xs, xs.stride(0), y, loss, sum_w, scale, loss, lse, g, g.stride(0),
            V, -100, 0.0, **kw)

    xi = x.clone()
    best = None
    for block in (2048, 4096, 8192, 16384):
        for warps in (4, 8, 16, 32):
            try:
                ms = batch_ms(lambda: launch(xi, block, warps, xs=xi))
            except Exception as e:  # noqa: BLE001
                record["configs"].append(dict(BLOCK=block, warps=warps, error=str(e)[:200]))
                continue
            record["configs"].append(dict(BLOCK=block, warps=warps, ms=ms))
            print(f"in place BLOCK={block:6d} warps={warps:2d}: {ms:7.3f} ms", flush=True)
            if best is None or ms < best[2]:
                best = (block, warps, ms)
    block, warps, _ = best
    for stages in (1, 2, 3, 4):
        try:
            ms = batch_ms(lambda: launch(xi, block, warps, stages, xs=xi))
            record["configs"].append(dict(BLOCK=block, warps=warps, stages=stages, ms=ms))
            print(f"in place BLOCK={block} warps={warps} stages={stages}: {ms:7.3f} ms", flush=True)
        except Exception as e:  # noqa: BLE001
            record["configs"].append(dict(BLOCK=block, warps=warps, stages=stages, error=str(e)[:200]))
    record["best"] = dict(BLOCK=block, warps=warps)
    default_block, default_warps = triton_kernels._launch_config(V, False)
    record["current_launch_config"] = dict(BLOCK=default_block, warps=default_warps)

    g = torch.empty_like(x)
    results["kernel_separate_buffer"] = batch_ms(lambda: launch(g, block, warps))
    results["kernel_fresh_buffer"] = batch_ms(lambda: launch(torch.empty_like(x), block, warps))
    results["kernel_no_gradient"] = batch_ms(lambda: launch(g, block, warps, has_grad=False))
    results["index_check_only"] = batch_ms(lambda: torch_ops._check_class_indices(y, V, -100))
    results["kernel_current_config_in_place"] = batch_ms(
        lambda: launch(xi, default_block, default_warps, xs=xi))
    xl = x.detach().clone().requires_grad_()

    def full_default():
        out = torch_ops.cross_entropy(xl, y, backend="triton")
        return torch.autograd.grad(out, xl)[0]
    results["full_path_default"] = batch_ms(full_default)

    def full_inplace():
        h = xl * 1.0                      # a non-leaf to overwrite (its own pass included)
        out = torch_ops.cross_entropy(h, y, backend="triton", inplace_backward=True)
        return torch.autograd.grad(out, xl)[0]
    try:
        results["full_path_inplace_incl_one_multiply"] = batch_ms(full_inplace)
    except Exception as e:  # noqa: BLE001
        results["full_path_inplace_error"] = str(e)[:300]
    results["multiply_pass_only"] = batch_ms(lambda: xl.detach() * 1.0)

    def eager():
        out = F.cross_entropy(xl, y)
        return torch.autograd.grad(out, xl)[0]
    results["eager"] = batch_ms(eager)
    dst = torch.empty_like(x)
    results["copy_logits"] = batch_ms(lambda: dst.copy_(x))
    for k, v in results.items():
        print(f"{k:40s} {v if isinstance(v, str) else f'{v:8.3f} ms'}", flush=True)
    Path(args.out).write_text(json.dumps(record, indent=1))


if __name__ == "__main__":
    main()
