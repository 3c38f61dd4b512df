#!/usr/bin/env bash
# Seventeenth session, call 6: one CTA's TMA stream against its ring depth (tma_stream.py), and
# the mixed bench on the shipped kernel (44df04c's, unchanged this session).
source benchmarks/results/h200-2026-12-05/setup.sh
step tma 120 python benchmarks/results/h100-2026-12-06b/tma_stream.py
step mixed 90 python -m attn bench --op mixed --peers --no-flex --no-progress --out-dir "$OUT/bench_mixed"
cat "$OUT"/tma.log; tail -n 8 "$OUT"/mixed.log
