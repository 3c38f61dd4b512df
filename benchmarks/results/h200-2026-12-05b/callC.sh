#!/usr/bin/env bash
# Thirteenth session, call 2: the Hopper prefill as dispatched (attn.prefill / BatchPrefill, graph
# replay included) through the prefill GPU tier, then the bench with peers (the portable kernel
# timed beside it, SDPA flash / cuDNN / efficient) for prefill and extend (pages of 16, the token
# pool, ragged).
source benchmarks/results/h200-2026-12-05/setup.sh
nvidia-smi --query-gpu=name,driver_version --format=csv,noheader >"$OUT/gpu.txt" 2>&1
step tier 230 python ci/gpu_tier.py --deadline 210 --out "$OUT/tier" -n 15 tests/test_prefill.py tests/test_prefill_hopper.py
step bench 300 python -m attn bench --op prefill,extend --peers --no-flex --no-progress --out-dir "$OUT/bench"
tail -n 8 "$OUT"/*.log
