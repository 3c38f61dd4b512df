#!/usr/bin/env bash
# Seventeenth session, call 5: packed decode tiles split over both consumer warpgroups
# (split_probe.py against HEAD's kernel, both in one process, bench's three batches twice), the
# mixed bench on the working copy, BatchAttention's GPU tests. Needs
# triton_kernels/prefill_hopper_base.py (HEAD's kernel, untracked).
source benchmarks/results/h200-2026-12-05/setup.sh
D=benchmarks/results/h100-2026-12-06b
step ba 200 python -m pytest -m gpu -q -x tests/test_batch_attention.py
step probe 200 python $D/split_probe.py
step mixed 90 python -m attn bench --op mixed --peers --no-flex --no-progress --out-dir "$OUT/bench_mixed"
tail -n 30 "$OUT"/ba.log; cat "$OUT"/probe.log; tail -n 8 "$OUT"/mixed.log
