#!/usr/bin/env bash
# Fourteenth session, call 7 (H100): BatchAttention against separate BatchPrefill + BatchDecode
# launches (issue 9) now that separate prefill runs the Hopper kernel.
source benchmarks/results/h200-2026-12-05/setup.sh
step mixed 240 python -m attn bench --op mixed --peers --no-flex --no-progress --out-dir "$OUT/bench"
tail -n 12 "$OUT"/*.log
