#!/usr/bin/env bash
# Fourteenth session, call 2: memcheck (tests/test_bounds.py) on the shipped Hopper prefill, the
# prefill GPU tier through attn.prefill / BatchPrefill, the rest of the Hopper kernel's tests.
source benchmarks/results/h200-2026-12-05/setup.sh
step memcheck 230 python -m pytest -m gpu -q tests/test_bounds.py
step tier 150 python ci/gpu_tier.py --deadline 135 --out "$OUT/tier" -n 15 tests/test_prefill.py
step hopper_rest 150 python -m pytest -m gpu -q -x tests/test_prefill_hopper.py -k "not (mask or graph or gathered)"
tail -n 6 "$OUT"/*.log
