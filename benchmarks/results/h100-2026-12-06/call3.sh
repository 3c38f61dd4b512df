#!/usr/bin/env bash
# Sixteenth session, call 3: persistent_schedule.replay (the run replayed on estimated costs:
# the batch's prefill share of programs in prefill at any moment, prefill units grouped by
# request and kv head for L2) against longest-first assignment in request order (call 2's
# interleave() measured no change: 466.0 / 466.0 us), the mixed bench, BatchAttention's GPU tests.
source benchmarks/results/h200-2026-12-05/setup.sh

step probe 60 python benchmarks/results/h100-2026-12-06/mixed_probe.py orders
step mixed 60 python -m attn bench --op mixed --peers --no-flex --no-progress --out-dir "$OUT/bench_mixed"
step ba 100 python -m pytest -m gpu -q tests/test_batch_attention.py
cat "$OUT"/probe.log; tail -n 8 "$OUT"/mixed.log; tail -n 5 "$OUT"/ba.log
