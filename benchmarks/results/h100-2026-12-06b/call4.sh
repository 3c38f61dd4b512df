#!/usr/bin/env bash
# Seventeenth session, call 4: ring or math? The decode programs' pace at head_dim 64 with 2-5
# stages against head_dim 128 with 2 (HEAD's kernel).
source benchmarks/results/h200-2026-12-05/setup.sh
step stages 150 python benchmarks/results/h100-2026-12-06b/stages_probe.py
cat "$OUT"/stages.log
