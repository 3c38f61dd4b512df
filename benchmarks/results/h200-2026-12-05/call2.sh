#!/usr/bin/env bash
# Twelfth session, call 2: the Hopper prefill dispatched from attn.prefill / BatchPrefill: the
# prefill + rotary GPU tier, memcheck over every op, and the prefill / extend bench with peers.
export PYTHONUNBUFFERED=1
ln -sfn ../triton_kernels attn/triton_kernels; ln -sfn ../layouts attn/layouts   # see call1.sh
export PYTHONPATH="$PWD${PYTHONPATH:+:$PYTHONPATH}"
T0=$(date +%s)
timeout -k 10 260 python ci/gpu_tier.py --deadline 230 --out "$OUT/tier" -n 15 \
    tests/test_prefill.py tests/test_prefill_hopper.py tests/test_rotary.py >"$OUT/tier.log" 2>&1
echo "rc=$? after $(( $(date +%s) - T0 )) s" >>"$OUT/tier.log"
timeout -k 10 120 python -m pytest -m gpu -q tests/test_bounds.py >"$OUT/memcheck.log" 2>&1
echo "rc=$? after $(( $(date +%s) - T0 )) s" >>"$OUT/memcheck.log"
timeout -k 10 170 python -m attn bench --op prefill,extend --peers --no-flex --no-progress \
    --out-dir "$OUT/bench" >"$OUT/bench.log" 2>&1
echo "rc=$? after $(( $(date +%s) - T0 )) s" >>"$OUT/bench.log"
tail -n 4 "$OUT"/*.log
