#!/usr/bin/env bash
# Seventeenth session, call 2: K's page numbers two blocks ahead against one (ahead_probe.py, both
# kernels in one process on bench's three batches, twice), the mixed bench on the working copy,
# BatchAttention's GPU tests. Needs triton_kernels/prefill_hopper_base.py (HEAD's kernel, untracked).
source benchmarks/results/h200-2026-12-05/setup.sh
D=benchmarks/results/h100-2026-12-06b
step probe 200 python $D/ahead_probe.py
step mixed 90 python -m attn bench --op mixed --peers --no-flex --no-progress --out-dir "$OUT/bench_mixed"
step ba 150 python -m pytest -m gpu -q tests/test_batch_attention.py
cat "$OUT"/probe.log; tail -n 8 "$OUT"/mixed.log; tail -n 5 "$OUT"/ba.log
