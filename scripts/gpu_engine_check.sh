#!/usr/bin/env bash
# On a CUDA machine, in one call (issue #9): the batched engine's exactness and speed on exported
# cases (no EZKL needed), float64 FMAs against float64 tensor-core dots per LeNet-5 layer
# (F64_DOT=0 skips it), the exact-GEMM figures, then the GPU-marked tests (EZKL from a carried
# wheel when there is one). Each step has its own time limit; logs and results go under $OUT.
#   CASES=cases OUT=gpu-out bash scripts/gpu_engine_check.sh
# Cases come from: python -m vcompute.engine.selfcheck export CASES circuits/lenet circuits/cnn
#                  circuits/mlp --samples 32 --draw uniform
set -uo pipefail
OUT=${OUT:-gpu-out}
CASES=${CASES:-cases}
BATCHES=${BATCHES:-1 8 64 256 1024}
mkdir -p "$OUT"
export VCOMPUTE_CACHE=${VCOMPUTE_CACHE:-/tmp/vcompute-cache} PYTHONUNBUFFERED=1
status=0
t0=$(date +%s)
step() { echo "== [$(( $(date +%s) - t0 )) s] $*"; }

{ nvidia-smi -L; nvidia-smi --query-gpu=name,driver_version,clocks.sm,clocks.max.sm,memory.total --format=csv;
  python3 -c "import torch, triton, onnxruntime, sys; print('python', sys.version.split()[0], 'torch', torch.__version__, 'triton', triton.__version__, 'onnxruntime', onnxruntime.__version__, 'cores', __import__('os').cpu_count())";
  python3 -c "import ezkl; print('ezkl', ezkl.__version__)" 2>&1 | tail -1; } > "$OUT/device.txt" 2>&1
cat "$OUT/device.txt"

step "engine: exactness of every sample and timings (bench_engine.py, batches $BATCHES)"
timeout "${BENCH_S:-300}" python3 scripts/bench_engine.py "$CASES" --batches $BATCHES --out "$OUT" \
  ${VARIANTS:+--variants $VARIANTS} > "$OUT/bench-engine.log" 2>&1 || status=1
tail -n 22 "$OUT/bench-engine.log"

if [ "${F64_DOT:-1}" != 0 ]; then
  step "float64 products: FMAs against tensor-core dots per LeNet-5 layer (bench_f64_dot.py)"
  timeout "${F64_DOT_S:-200}" python3 scripts/bench_f64_dot.py --json "$OUT/f64dot.json" > "$OUT/f64dot.log" 2>&1 || status=1
  tail -n 60 "$OUT/f64dot.log"
fi

step "GPU-marked tests: engine fast path, batches, kernels"
timeout "${TESTS_S:-240}" python3 -m pytest -q -p no:cacheprovider -m gpu --maxfail=10 --durations=12 \
  tests/engine/test_fast.py tests/engine/test_batch.py tests/engine/test_engine.py tests/kernels > "$OUT/pytest-gpu.log" 2>&1 || status=1
tail -n 22 "$OUT/pytest-gpu.log"

if [ "${KERNEL_BENCH:-1}" != 0 ]; then
  # exact GEMM vs cuBLAS; with MAIN_KERNELS=dir (a checkout's kernels/ and its scripts/bench_kernels.py
  # one level up), the same runs alternate with that version's kernels: an A/B on one machine
  ksizes=${KSIZES:-2048 4096 8192}
  for round in 1 2; do
    step "exact GEMM vs cuBLAS, this tree, round $round"
    timeout "${KBENCH_S:-60}" python3 scripts/bench_kernels.py --sizes $ksizes --limbs 2 4 > "$OUT/k.log" 2>&1 || status=1
    { echo "## this tree, round $round"; grep -A4 "^  size" "$OUT/k.log"; } >> "$OUT/bench-kernels.log"
    if [ -n "${MAIN_KERNELS:-}" ] && [ -d "$MAIN_KERNELS" ]; then
      step "exact GEMM vs cuBLAS, $MAIN_KERNELS, round $round"
      rm -rf /tmp/kernels-this && cp -r kernels /tmp/kernels-this && rm -rf kernels && cp -r "$MAIN_KERNELS" kernels
      timeout "${KBENCH_S:-60}" python3 "$MAIN_KERNELS/../scripts/bench_kernels.py" --sizes $ksizes --limbs 2 4 > "$OUT/k.log" 2>&1 || status=1
      { echo "## $MAIN_KERNELS, round $round"; grep -A4 "^  size" "$OUT/k.log"; } >> "$OUT/bench-kernels.log"
      rm -rf kernels && cp -r /tmp/kernels-this kernels
    fi
  done
  rm -f "$OUT/k.log"
  cat "$OUT/bench-kernels.log"
fi
step "done (status $status)"
exit $status
