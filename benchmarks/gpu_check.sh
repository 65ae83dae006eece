#!/usr/bin/env bash
# celib's GPU check: the Triton kernels' tests compiled on the GPU, then the whole benchmark of
# issue 15's targets. One go, under 8 minutes on an H200.
#
# Run from the repository root on the lent GPU machine (python3 with torch and triton; no
# internet). $OUT is the folder whose files come back; commit them as
# benchmarks/results/gpu_<gpu>_<date>_runN.{json,log} (and keep pytest.xml out):
#   $OUT/log.txt         everything printed
#   $OUT/gpu_bench.json  the benchmark record (bench_gpu.py --out), rewritten after every case
#   $OUT/pytest.xml      the test results
# Optional: Liger-Kernel wheels carried in .whl/ are installed to /tmp/site first.
# Budget: 470 s in all. Tests <= 180 s; the benchmark gets what is left (at least 290 s) and
# starts its optional parts (tuning, linear cross-entropy, more shapes) only while at least
# 90 s of that remain.
# Check this script on a CPU machine with:  bash benchmarks/gpu_check.sh --dry-run
set -u
cd "$(dirname "$0")/.."
OUT=${OUT:-/tmp/celib_gpu_check}
mkdir -p "$OUT"
export PYTHONUNBUFFERED=1
PY=${PYTHON:-python3}
if [ "${1:-}" = "--dry-run" ]; then
  # the CPU-runnable part: the benchmark's own dry run (Triton interpreter, tiny shapes)
  PYTHONPATH=$PWD${PYTHONPATH:+:$PYTHONPATH} timeout 300 "$PY" -W ignore benchmarks/bench_gpu.py \
    --dry-run --out "$OUT/gpu_bench_dry_run.json" 2>&1 | tee "$OUT/log_dry_run.txt"
  exit "${PIPESTATUS[0]}"
fi
{
  echo "== celib gpu_check $(date -u +%FT%TZ) on $(hostname), commit $(git rev-parse --short HEAD 2>/dev/null || echo unknown)"
  nvidia-smi || echo "nvidia-smi failed"
  if ls .whl/*.whl >/dev/null 2>&1; then
    echo "== installing carried wheels: $(ls .whl)"
    "$PY" -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade \
      --target /tmp/site .whl/*.whl && export PYTHONPATH=/tmp/site${PYTHONPATH:+:$PYTHONPATH}
  fi
  export PYTHONPATH=$PWD${PYTHONPATH:+:$PYTHONPATH}
  "$PY" - <<'PY'
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
  CELIB_TEST_DEVICE=cuda timeout 180 "$PY" -m pytest -o addopts="" -p no:cacheprovider \
    -q -rs --durations=8 --junitxml="$OUT/pytest.xml" tests/test_triton_kernel.py
  echo "== pytest exit status $?"
  left=$((470 - SECONDS)); [ "$left" -lt 290 ] && left=290
  echo "== benchmark (at most $left s)"
  timeout "$left" "$PY" benchmarks/bench_gpu.py --out "$OUT/gpu_bench.json" --budget-s $((left - 90))
  echo "== bench exit status $?"
  echo "== done $(date -u +%FT%TZ)"
} 2>&1 | tee "$OUT/log.txt"
