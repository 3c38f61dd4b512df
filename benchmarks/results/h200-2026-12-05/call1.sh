#!/usr/bin/env bash
# Twelfth session, call 1: the Gluon Hopper prefill's first run (smoke test first: a barrier bug
# hangs, so every step is time-boxed), rotary on load in prefill after the block-argument fix.
export PYTHONUNBUFFERED=1
# This machine's editable install does not map attn.layouts / attn.triton_kernels (Python 3.12):
# give the working copy the installed layout instead.
ln -sfn ../triton_kernels attn/triton_kernels; ln -sfn ../layouts attn/layouts
export PYTHONPATH="$PWD${PYTHONPATH:+:$PYTHONPATH}"
nvidia-smi --query-gpu=name,driver_version --format=csv,noheader >"$OUT/gpu.txt" 2>&1
python -c "import torch, triton; print(torch.__version__, triton.__version__)" >"$OUT/versions.txt" 2>&1
T0=$(date +%s)
timeout -k 5 100 python -m pytest -m gpu -x -q tests/test_prefill_hopper.py \
    -k "test_matches_reference and ragged-1-1-True-False-dtype0-128-prefill" >"$OUT/hopper_smoke.log" 2>&1
echo "rc=$? after $(( $(date +%s) - T0 )) s" >>"$OUT/hopper_smoke.log"
timeout -k 5 120 python benchmarks/bench_rotary.py --tokens 64 --no-sweep --layouts NHD --out "$OUT/rotary.md" \
    >"$OUT/rotary.log" 2>&1
echo "rc=$? after $(( $(date +%s) - T0 )) s" >>"$OUT/rotary.log"
timeout -k 5 120 python -m pytest -m gpu -q tests/test_rotary.py tests/test_prefill.py -k rotary >"$OUT/rotary_tier.log" 2>&1
echo "rc=$? after $(( $(date +%s) - T0 )) s" >>"$OUT/rotary_tier.log"
if grep -q "1 passed" "$OUT/hopper_smoke.log"; then
  timeout -k 5 120 python -m pytest -m gpu -q -x tests/test_prefill_hopper.py >"$OUT/hopper_tests.log" 2>&1
  echo "rc=$? after $(( $(date +%s) - T0 )) s" >>"$OUT/hopper_tests.log"
  timeout -k 5 120 python benchmarks/hopper_prefill_probe.py >"$OUT/hopper_probe.log" 2>&1
  echo "rc=$? after $(( $(date +%s) - T0 )) s" >>"$OUT/hopper_probe.log"
fi
tail -n 3 "$OUT"/*.log
