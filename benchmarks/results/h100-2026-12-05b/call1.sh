#!/usr/bin/env bash
# Fifteenth session, call 1: BatchAttention's schedule on the Hopper kernel (issue 9): the
# mixed-batch bench, its GPU tests, the Hopper prefill's tests (the kernel's plain path changed
# too) and the prefill bench (no regression of the plain path).
source benchmarks/results/h200-2026-12-05/setup.sh
step mixed 150 python -m attn bench --op mixed --peers --no-flex --no-progress --out-dir "$OUT/bench"
step ba 160 python -m pytest -m gpu -q -x tests/test_batch_attention.py
step hopper 130 python -m pytest -m gpu -q -x tests/test_prefill_hopper.py
step prefill 60 python -m attn bench --op prefill --no-flex --no-progress --out-dir "$OUT/bench_prefill"
tail -n 25 "$OUT"/ba.log; tail -n 30 "$OUT"/mixed.log; tail -n 4 "$OUT"/*.log
