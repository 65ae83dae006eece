#!/usr/bin/env bash
# celib's GPU check: correctness of the Triton kernel on the real GPU, then the benchmark.
#
# Run from the repository root on the lent H200 machine (python3 = Python 3.12 with
# torch 2.11 and triton 3.6; no internet). $OUT is the folder whose files come back:
#   $OUT/log.txt         everything printed
#   $OUT/gpu_bench.json  the benchmark record (bench_gpu.py --out)
#   $OUT/pytest.xml      the test results
# Optional: Liger-Kernel wheels carried in .whl/ are installed to /tmp/site first.
# Budget: tests <= 180 s, benchmark <= 300 s (its optional cases stop at 170 s): < 8 min.
set -u
cd "$(dirname "$0")/.."
OUT=${OUT:-/tmp/celib_gpu_check}
mkdir -p "$OUT"
export PYTHONUNBUFFERED=1
{
  echo "== celib gpu_check $(date -u +%FT%TZ) on $(hostname)"
  nvidia-smi || echo "nvidia-smi failed"
  if ls .whl/*.whl >/dev/null 2>&1; then
    echo "== installing carried wheels: $(ls .whl)"
    python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade \
      --target /tmp/site .whl/*.whl && export PYTHONPATH=/tmp/site${PYTHONPATH:+:$PYTHONPATH}
  fi
  python3 - <<'PY'
import torch, triton
print("torch", torch.__version__, "cuda", torch.version.cuda, "triton", triton.__version__,
      "gpu", torch.cuda.get_device_name() if torch.cuda.is_available() else None)
print("keep_graph query present:",
      hasattr(torch._C._autograd, "_get_current_graph_task_keep_graph"))
try:
    import liger_kernel; print("liger_kernel importable")
except Exception as e:
    print("liger_kernel not importable:", e)
PY
  echo "== correctness: tests/test_triton_kernel.py compiled on the GPU (CELIB_TEST_DEVICE=cuda)"
  CELIB_TEST_DEVICE=cuda timeout 180 python3 -m pytest -o addopts="" -p no:cacheprovider \
    -q -rs --durations=8 --junitxml="$OUT/pytest.xml" tests/test_triton_kernel.py
  echo "== pytest exit status $?"
  echo "== benchmark"
  timeout 300 python3 benchmarks/bench_gpu.py --out "$OUT/gpu_bench.json" --budget-s 170
  echo "== bench exit status $?"
  echo "== done $(date -u +%FT%TZ)"
} 2>&1 | tee "$OUT/log.txt"
