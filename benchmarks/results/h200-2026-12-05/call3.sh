#!/usr/bin/env bash
# Twelfth session, call 3: the prefill / extend bench with peers through attn's plan/run path (the
# Hopper kernel where it runs, the portable one beside it), and the graph-replay GPU tests.
source benchmarks/results/h200-2026-12-05/setup.sh
step bench 400 python -m attn bench --op prefill,extend --peers --no-flex --no-progress --out-dir "$OUT/bench"
tail -n 30 "$OUT"/bench.log
