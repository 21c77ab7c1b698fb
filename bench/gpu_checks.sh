#!/bin/bash
# The device checks of issue #5, as one script for a lent GPU machine (see docs/performance.md,
# "On a GPU"): mask application against the peers' kernels, the device-table tests on CUDA,
# bench/loop_probe.py, then bench/device_decode.py with SmolLM2's architecture and tokenizer (random weights).
#
# Prepare here (the GPU machine reaches no registry or hub):
#   .venv/bin/python bench/device_decode.py --save-model-config .gpu/smollm2
#   python3 -m pip download --no-deps --only-binary=:all: --python-version 3.12 --implementation cp \
#       --platform manylinux_2_28_x86_64 --platform manylinux_2_17_x86_64 --platform manylinux_2_31_x86_64 \
#       --platform manylinux_2_24_x86_64 -d .whl lark interegular jsonschema referencing \
#       jsonschema-specifications rpds-py llguidance xgrammar apache-tvm-ffi pydantic pydantic-core \
#       annotated-types typing-inspection
# (.gpu/ and .whl/ are git-ignored; carry both), then there:
#   bash bench/gpu_checks.sh [device] [batch sizes] [max new tokens] [rounds]
DEV=${1:-cuda}; SIZES=${2:-1,8,32}; TOK=${3:-48}; ROUNDS=${4:-2}
OUT=${OUT:-/tmp/out}; mkdir -p "$OUT"
export PYTHONUNBUFFERED=1 NUMBA_CACHE_DIR=/tmp/nbc
PY=${PY:-python3}
if [ "$DEV" = cuda ]; then
  $PY -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/site .whl/*.whl || exit 1
  export PYTHONPATH=/tmp/site:$PWD
  nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv
fi
$PY -c "import torch, numba, numpy, transformers; print('torch', torch.__version__, 'numba', numba.__version__, 'numpy', numpy.__version__, 'transformers', transformers.__version__, 'cuda', torch.cuda.is_available())"
t0=$(date +%s)
timeout 60 $PY bench/apply_mask.py --device "$DEV" --iters 200 2>&1 | tee "$OUT/apply_mask.log"
echo "apply_mask: $(( $(date +%s) - t0 )) s"
timeout 70 $PY -m pytest -q -p no:cacheprovider tests/test_device_tables.py 2>&1 | tail -15 | tee "$OUT/pytest.log"
echo "tests: $(( $(date +%s) - t0 )) s"
# our loop against the bare forward pass and generate, and where it waits for the device
timeout 200 $PY bench/loop_probe.py --random-weights .gpu/smollm2 --device "$DEV" --batch-sizes 8,32 \
  --max-new-tokens "$TOK" --reps 6 --sync-debug --variants forward,generate,ours,ours-percore 2>&1 \
  | grep -v "it/s\]" | tee "$OUT/loop_probe.log"
echo "probe: $(( $(date +%s) - t0 )) s"
timeout 290 $PY bench/device_decode.py --random-weights .gpu/smollm2 --device "$DEV" --peers --batch-sizes "$SIZES" \
  --max-new-tokens "$TOK" --rounds "$ROUNDS" --warmup-rounds 1 --out "$OUT/device_decode.json" 2>&1 \
  | grep -v "it/s\]" | tee "$OUT/bench.log"
echo "total: $(( $(date +%s) - t0 )) s"
