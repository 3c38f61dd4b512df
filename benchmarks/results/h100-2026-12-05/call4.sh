#!/usr/bin/env bash
# Fourteenth session, call 6 (H100): the shipped Hopper prefill (a100eeb: custom masks, page
# numbers a block ahead): memcheck, the prefill GPU tier, the Hopper tests not run in call 5, and
# `attn bench --op prefill,extend` with SDPA and FlexAttention peers.
source benchmarks/results/h200-2026-12-05/setup.sh
step bench 120 python -m attn bench --op prefill,extend --peers --flex-max 4 --no-progress --out-dir "$OUT/bench"
step memcheck 200 python -m pytest -m gpu -q tests/test_bounds.py
step tier 150 python ci/gpu_tier.py --deadline 135 --out "$OUT/tier" -n 15 tests/test_prefill.py
step hopper_rest 170 python -m pytest -m gpu -q -x tests/test_prefill_hopper.py -k "not (gathered or mask)"
rm -f "$OUT"/tier/*.json
tail -n 4 "$OUT"/*.log
