#!/usr/bin/env bash
# The H100 run of issue 8: tune (bounded), then the whole benchmark suite with peers.
#   bash benchmarks/run_gpu.sh OUT_DIR
# Writes into OUT_DIR (8 files at most): the tuned device file (<device>.json, also installed
# into attn/configs/<vendor>/), <device>.md, one PNG per op, and run.log.
set -u
OUT="${1:-benchmarks/results}"
mkdir -p "$OUT"
export PYTHONUNBUFFERED=1
{
  nvidia-smi --query-gpu=name,driver_version --format=csv,noheader || true
  pip install -e . --no-deps --no-build-isolation -q 2>/dev/null || true
  # Tuning: < 4 minutes on an H100 (compile-bound); buckets over budget keep the heuristic.
  timeout 300 python -m attn tune --op all --budget-s 200 --no-progress
  cp attn/configs/*/*.json "$OUT/" 2>/dev/null
  # The suite: ~3-5 minutes with peers (FlexAttention compiles dominate; --flex-max bounds them).
  timeout 420 python -m attn bench --op all --peers --flex-max 4 --out-dir "$OUT" --no-progress
} > "$OUT/run.log" 2>&1
tail -n 60 "$OUT/run.log"
