#!/usr/bin/env bash
# On a CUDA machine: the kernel and engine tests on the GPU, then bundled-model exactness
# (prove with the engine on the GPU vs EZKL's witness). Writes logs under $OUT.
#   OUT=gpu-out bash scripts/gpu_check.sh
# MARK picks the kernel/engine tests: "not slow" (default: every test, on the GPU; well over the
# device tool's 10-minute call) or "gpu" (the GPU-marked ones only: 3 minutes on an H100 with a
# warm Triton cache, over 10 on a fresh machine in one process, so the pipeline step below needs a
# call of its own). Most of a fresh machine's time is Triton compiling each test's kernels on one
# core: where pytest-xdist is importable (the lent GPU hosts have it), the kernel/engine step runs
# in WORKERS processes (default 8) sharing the GPU and Triton's on-disk cache.
# STEPS picks the steps: "kernels pipeline" (default), "kernels" or "pipeline".
# Needs torch>=2.11, triton>=3.6, ezkl==23.0.5, onnx, onnxruntime, typer, rich, pytest importable.
set -uo pipefail
OUT=${OUT:-gpu-out}
mkdir -p "$OUT"
export VCOMPUTE_CACHE=${VCOMPUTE_CACHE:-/tmp/vcompute-cache} PYTHONUNBUFFERED=1
status=0

# kernels/ imports as vcompute.kernels (a package-dir mapping): install the checkout, offline.
python3 -m pip install -q --no-deps --no-build-isolation -e . || exit 1

nvidia-smi -L | tee "$OUT/device.txt"
python3 -c "import torch, triton, ezkl, sys; print('python', sys.version.split()[0], 'torch', torch.__version__, 'triton', triton.__version__, 'ezkl', ezkl.__version__)" | tee -a "$OUT/device.txt"

MARK=${MARK:-not slow}
STEPS=${STEPS:-kernels pipeline}
if [[ " $STEPS " == *" kernels "* ]]; then
  workers=()
  python3 -c "import xdist" 2>/dev/null && workers=(-n "${WORKERS:-8}")
  echo "== kernels and engine on the GPU (pytest -m '$MARK' ${workers[*]})"
  python3 -m pytest -q -p no:cacheprovider -m "$MARK" "${workers[@]}" tests/kernels tests/engine 2>&1 \
    | tee "$OUT/pytest-kernels-engine.log" | tail -n 5 || status=1
fi
[[ " $STEPS " == *" pipeline "* ]] || exit $status

echo "== bundled models: prove with the engine on the GPU, bit-exact against the witness"
# web3 and ezkl must be importable (carry their wheels to a GPU host that lacks them). Without
# Node.js there is no solcjs, so the tests that build the Solidity verifier are left out here
# (CI runs them); the prove loop below runs with --no-evm either way.
skip=()
if ! command -v node >/dev/null; then
  echo "node is not installed: leaving out the tests that build the Solidity verifier"
  skip=(-k "not test_prove_and_verify_bundled_model")
fi
python3 -m pytest -q -p no:cacheprovider -m "not slow" "${skip[@]}" tests/zk/test_pipeline.py tests/test_inference.py 2>&1 \
  | tee "$OUT/pytest-pipeline.log" | tail -n 5 || status=1
for m in mlp cnn; do
  python3 -m vcompute.cli prove "circuits/$m/model.onnx" --input "circuits/$m/input.json" --out "$OUT/prove-$m" --no-evm --json \
    > "$OUT/prove-$m.json" 2> "$OUT/prove-$m.err" || status=1
  python3 -c "import json,sys; s=json.load(open(sys.argv[1])); print(sys.argv[2], 'engine_exact', s['engine_exact'], s.get('engine_device'), round(s.get('engine_time_ms') or 0, 2), 'ms')" \
    "$OUT/prove-$m.json" "$m" || status=1
done
exit $status
