#!/usr/bin/env bash
# Twelfth session, call 4: the dispatched Hopper prefill (the version call 1 ran) through attn.prefill
# and BatchPrefill: the prefill GPU tier (graph replay included), memcheck over every op, the bench.
source benchmarks/results/h200-2026-12-05/setup.sh
step tier 190 python ci/gpu_tier.py --deadline 170 --out "$OUT/tier" -n 15 tests/test_prefill.py tests/test_prefill_hopper.py
step memcheck 100 python -m pytest -m gpu -q tests/test_bounds.py
step bench 200 python -m attn bench --op prefill,extend --peers --no-flex --no-progress --out-dir "$OUT/bench"
tail -n 8 "$OUT"/*.log
