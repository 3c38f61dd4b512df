#!/usr/bin/env bash
# Seventeenth session, call 8: split decode tiles with 3 K/V stages (working copy) against the
# shipped kernel (triton_kernels/prefill_hopper_base.py, untracked: 44df04c's): BatchAttention's GPU
# tests first, then split3_probe.py, then the mixed bench on the working copy.
source benchmarks/results/h200-2026-12-05/setup.sh
D=benchmarks/results/h100-2026-12-06b
step ba 150 python -m pytest -m gpu -q -x tests/test_batch_attention.py
step probe 150 python $D/split3_probe.py
step mixed 80 python -m attn bench --op mixed --peers --no-flex --no-progress --out-dir "$OUT/bench_mixed"
tail -n 25 "$OUT"/ba.log; cat "$OUT"/probe.log; tail -n 8 "$OUT"/mixed.log
