#!/usr/bin/env bash
# Twelfth session, call 2: the Hopper prefill made persistent (a program loops over tiles), with an
# optional in-warpgroup overlap, and
# dispatched from attn.prefill / BatchPrefill: its tests, the probe, the prefill + rotary GPU tier,
# memcheck over every op, and the prefill / extend bench with peers. Every step time-boxed.
export PYTHONUNBUFFERED=1
ln -sfn ../triton_kernels attn/triton_kernels; ln -sfn ../layouts attn/layouts   # see call1.sh
export PYTHONPATH="$PWD${PYTHONPATH:+:$PYTHONPATH}"
T0=$(date +%s)
step() { local name=$1 limit=$2; shift 2; timeout -k 5 "$limit" "$@" >"$OUT/$name.log" 2>&1;
         echo "rc=$? after $(( $(date +%s) - T0 )) s" >>"$OUT/$name.log"; }
step hopper_tests 100 python -m pytest -m gpu -q -x tests/test_prefill_hopper.py -k "not overlap"
step hopper_overlap 60 python -m pytest -m gpu -q -x tests/test_prefill_hopper.py -k overlap
if grep -q " passed" "$OUT/hopper_tests.log" && ! grep -q "failed\|rc=12[4-9]" "$OUT/hopper_tests.log"; then
  step hopper_probe 120 python benchmarks/hopper_prefill_probe.py
  step tier 190 python ci/gpu_tier.py --deadline 170 --out "$OUT/tier" -n 15 tests/test_prefill.py tests/test_rotary.py
  step memcheck 100 python -m pytest -m gpu -q tests/test_bounds.py
fi
tail -n 6 "$OUT"/*.log
