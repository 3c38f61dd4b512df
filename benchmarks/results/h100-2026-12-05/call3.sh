#!/usr/bin/env bash
# Fourteenth session, call 5 (H100): the gather's page numbers a block ahead: its gathered-page
# and mask tests, the A/B (lookahead_ab.py), the extend bench through plan/run.
source benchmarks/results/h200-2026-12-05/setup.sh
step tests 170 python -m pytest -m gpu -q -x tests/test_prefill_hopper.py -k "gathered or mask"
step lookahead_ab 230 python benchmarks/results/h100-2026-12-05/lookahead_ab.py
step bench 60 python -m attn bench --op extend --peers --no-flex --no-progress --out-dir "$OUT/bench"
rm -f "$OUT"/bench/*.png
tail -n 4 "$OUT"/*.log
