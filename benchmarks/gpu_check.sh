#!/usr/bin/env bash
# The GPU check (one H100/H200, about 8 minutes): backbone parity on the GPU for each attention backend that is
# installed (sdpa, flash, xformers), a few bf16 training steps of the Wan2.1-1.3B shapes with random weights, the
# training-step benchmark, and the study_gpu run. JSON goes to $OUT (when set) and benchmarks/results/gpu/.
#   bash benchmarks/gpu_check.sh
set -uo pipefail
cd "$(dirname "$0")/.."
export PYTHONPATH="$PWD${PYTHONPATH:+:$PYTHONPATH}" HF_HUB_OFFLINE=1
RESULTS=benchmarks/results/gpu
mkdir -p "$RESULTS"
status=0
step() {  # step NAME SECONDS COMMAND...: run with a time limit, log, record the exit code
  local name=$1 limit=$2; shift 2
  echo "== $name (limit ${limit}s)"
  local start=$SECONDS
  timeout "$limit" "$@" 2>&1 | tee "$RESULTS/$name.log"
  local rc=${PIPESTATUS[0]}
  echo "{\"step\": \"$name\", \"rc\": $rc, \"seconds\": $((SECONDS - start))}" >> "$RESULTS/steps.jsonl"
  [ "$rc" -eq 0 ] || status=1
}
: > "$RESULTS/steps.jsonl"
nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv > "$RESULTS/gpu.csv" 2>&1

pip install -q xformers 2>/dev/null || echo "xformers not installable here: its parity is skipped"

# 1. parity on the GPU, each backend (the tests skip a backend that is not installed)
step parity 120 python -m pytest -q -p no:cacheprovider tests/test_backbone_parity.py tests/test_vace_pipeline_parity.py \
  tests/test_attention_backends_gpu.py --junitxml="$RESULTS/parity.xml"
# 2. a few bf16 training steps of the 1.3B shapes, random weights, synthetic clips at 81 x 480 x 832
step train_1.3b 150 python benchmarks/train_step.py --configs wan2.1_1.3b --clips 81x480x832 --repeats 3 \
  --warmup 1 --no-diffusers --out "$RESULTS/train_1.3b.json"
# 3. the training-step benchmark: both configs, both clip sizes, with and without checkpointing, diffusers beside
step train_step 240 python benchmarks/train_step.py --repeats 3 --warmup 1 --out "$RESULTS/train_step.json"
# 4. the GPU study run
step study_gpu 150 python train.py --config configs/experiment/study_gpu.yaml

if [ -n "${OUT:-}" ]; then cp -r "$RESULTS" "$OUT/"; fi
exit $status
