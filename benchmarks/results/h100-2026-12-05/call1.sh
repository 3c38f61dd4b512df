#!/usr/bin/env bash
# Fourteenth session, call 3 (on an H100, the card issue 3 names): the committed Hopper prefill
# (custom masks, block-at-once gather lookup): its mask / graph / gathered-page tests, then
# `attn bench --op prefill,extend` with SDPA peers, then again with FlexAttention as well.
source benchmarks/results/h200-2026-12-05/setup.sh
nvidia-smi --query-gpu=name,driver_version --format=csv,noheader >"$OUT/gpu.txt" 2>&1
python -c "import torch, triton; print(torch.__version__, triton.__version__)" >"$OUT/versions.txt" 2>&1
git rev-parse --short HEAD >"$OUT/commit.txt" 2>&1
step hopper_tests 200 python -m pytest -m gpu -q -x tests/test_prefill_hopper.py -k "mask or graph or gathered"
step bench 130 python -m attn bench --op prefill,extend --peers --no-flex --no-progress --out-dir "$OUT/bench"
step bench_flex 220 python -m attn bench --op prefill,extend --peers --flex-max 4 --no-progress --out-dir "$OUT/bench_flex"
tail -n 6 "$OUT"/*.log
