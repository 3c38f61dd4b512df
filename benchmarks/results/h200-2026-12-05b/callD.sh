#!/usr/bin/env bash
# Thirteenth session, call 2: tiles handed out in snake order (persistent programs), the gathered
# pages' tests (call 1's run timed out before them) and block / stage variants for them, then the
# prefill GPU tier through attn.prefill / BatchPrefill (the Hopper kernel dispatched, graph replay).
source benchmarks/results/h200-2026-12-05/setup.sh
nvidia-smi --query-gpu=name,driver_version --format=csv,noheader >"$OUT/gpu.txt" 2>&1
step hopper_tests 150 python -m pytest -m gpu -q -x tests/test_prefill_hopper.py \
    -k "gathered or graph or overlap_matches or (matches_reference and dtype0 and 128)"
step hopper_probe 120 python benchmarks/hopper_prefill_probe.py
step tier 145 python ci/gpu_tier.py --deadline 130 --out "$OUT/tier" -n 15 tests/test_prefill.py
tail -n 6 "$OUT"/*.log
