#!/usr/bin/env bash
# Seventeenth session, call 9 (NOT RUN: the session's device time ran out): 2e09351's kernel on the
# bench's mixed batch at 2 and 3 stages (needs triton_kernels/prefill_hopper_split3.py, untracked).
source benchmarks/results/h200-2026-12-05/setup.sh
D=benchmarks/results/h100-2026-12-06b
step s2 50 python $D/split3_diag.py 2
step s3 50 python $D/split3_diag.py 3
tail -n 4 "$OUT"/s2.log "$OUT"/s3.log
