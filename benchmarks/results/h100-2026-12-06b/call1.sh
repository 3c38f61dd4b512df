#!/usr/bin/env bash
# Seventeenth session, call 1: does the decode stream push the prefill tiles' K/V out of L2 in
# BatchAttention's mixed batch? l2_probe.py times it with the prefill K/V persisting in L2 against
# none, and Nsight Compute counts its DRAM bytes; each program's units in cost order against request order; then the Hopper tests the last session did not rerun.
source benchmarks/results/h200-2026-12-05/setup.sh
D=benchmarks/results/h100-2026-12-06b
step probe 150 python $D/l2_probe.py
step orders 120 python $D/l2_probe.py orders
step ncu 150 ncu --clock-control none --kernel-name regex:hopper_prefill --csv \
    --metrics dram__bytes_read.sum,lts__t_sector_hit_rate.pct,gpu__time_duration.sum python $D/l2_probe.py ncu
step hopper 220 python -m pytest -m gpu -q tests/test_prefill_hopper.py \
    -k "not ((test_matches_reference and dtype0) or custom_mask or graph or replanned)"
cat "$OUT"/probe.log "$OUT"/orders.log; grep -v "^==PROF==" "$OUT"/ncu.log | tail -n 40; tail -n 5 "$OUT"/hopper.log
