#!/usr/bin/env bash
# Seventeenth session, call 7: the attention kernel's protocol (loader warp, consumer warpgroup,
# K/V rings of 64 KB a stage) with and without its math (tma_stream.py ws).
source benchmarks/results/h200-2026-12-05/setup.sh
step ws 120 python benchmarks/results/h100-2026-12-06b/tma_stream.py ws
cat "$OUT"/ws.log
