#!/usr/bin/env bash
# Fourteenth session, call 4 (H100): the gather's K issued before its V (own barriers): its
# gathered-page tests, the A/B against e97285c (split_ab.py), the extend bench through plan/run.
source benchmarks/results/h200-2026-12-05/setup.sh
step gathered 150 python -m pytest -m gpu -q -x tests/test_prefill_hopper.py -k "gathered"
step split_ab 200 python benchmarks/results/h100-2026-12-05/split_ab.py
step bench 100 python -m attn bench --op extend --peers --no-flex --no-progress --out-dir "$OUT/bench"
rm -f "$OUT"/bench/*.png
tail -n 6 "$OUT"/*.log
