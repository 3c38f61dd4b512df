#!/usr/bin/env bash
# Seventeenth session, call 3: the decode programs' pace against the TMA copies a block takes
# (page size 16 / 32 / 64 / 128), HEAD's kernel (the two-ahead lookup of call 2 reverted).
source benchmarks/results/h200-2026-12-05/setup.sh
step boxes 150 python benchmarks/results/h100-2026-12-06b/boxes_probe.py
cat "$OUT"/boxes.log
