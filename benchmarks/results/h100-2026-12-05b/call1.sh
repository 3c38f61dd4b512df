#!/usr/bin/env bash
# Fifteenth session, call 1 (H100): BatchAttention's schedule on the Hopper kernel (issue 9): its
# GPU tests, the Hopper prefill's (the kernel's non-schedule path changed too), the mixed-batch
# bench and the prefill bench (no regression of the plain path).
source benchmarks/results/h200-2026-12-05/setup.sh
step ba 200 python -m pytest -m gpu -q -x tests/test_batch_attention.py
step mixed 150 python -m attn bench --op mixed --peers --no-flex --no-progress --out-dir "$OUT/bench"
step prefill 60 python -m attn bench --op prefill --no-flex --no-progress --out-dir "$OUT/bench_prefill"
step hopper 170 python -m pytest -m gpu -q -x tests/test_prefill_hopper.py
tail -n 25 "$OUT"/ba.log; tail -n 30 "$OUT"/mixed.log; tail -n 4 "$OUT"/*.log
