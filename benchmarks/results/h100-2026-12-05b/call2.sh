#!/usr/bin/env bash
# Fifteenth session, call 2 (call 1 never got a machine; ~5 minutes of device time left): the
# mixed-batch bench, BatchAttention's GPU tests, then the Hopper prefill's, time-boxed.
source benchmarks/results/h200-2026-12-05/setup.sh
step mixed 100 python -m attn bench --op mixed --peers --no-flex --no-progress --out-dir "$OUT/bench"
step ba 110 python -m pytest -m gpu -q -x tests/test_batch_attention.py
step hopper 90 python -m pytest -m gpu -q -x tests/test_prefill_hopper.py
tail -n 25 "$OUT"/ba.log; tail -n 30 "$OUT"/mixed.log; tail -n 4 "$OUT"/*.log
