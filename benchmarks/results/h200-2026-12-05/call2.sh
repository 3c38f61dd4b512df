#!/usr/bin/env bash
# Twelfth session, call 2: the Hopper prefill made persistent (a program loops over tiles), with an
# optional in-warpgroup overlap, and dispatched from attn.prefill / BatchPrefill: its tests, the
# probe, the prefill + rotary GPU tier, memcheck over every op. Every step time-boxed (setup.sh).
source benchmarks/results/h200-2026-12-05/setup.sh
step hopper_tests 90 python -m pytest -m gpu -q -x tests/test_prefill_hopper.py -k "not overlap"
step hopper_overlap 50 python -m pytest -m gpu -q -x tests/test_prefill_hopper.py -k overlap
if grep -q " passed" "$OUT/hopper_tests.log" && ! grep -q "failed\|rc=12[4-9]" "$OUT/hopper_tests.log"; then
  step hopper_probe 110 python benchmarks/hopper_prefill_probe.py
  step tier 130 python ci/gpu_tier.py --deadline 110 --out "$OUT/tier" -n 15 tests/test_prefill.py
  step memcheck 90 python -m pytest -m gpu -q tests/test_bounds.py
fi
tail -n 6 "$OUT"/*.log
