#!/usr/bin/env bash
# Twelfth session, call 3: the prefill / extend bench with peers through attn's plan/run path (the
# Hopper kernel where it runs, the portable one beside it), and the graph-replay GPU tests.
export PYTHONUNBUFFERED=1
ln -sfn ../triton_kernels attn/triton_kernels; ln -sfn ../layouts attn/layouts   # see call1.sh
export PYTHONPATH="$PWD${PYTHONPATH:+:$PYTHONPATH}"
T0=$(date +%s)
step() { local name=$1 limit=$2; shift 2; timeout -k 5 "$limit" "$@" >"$OUT/$name.log" 2>&1;
         echo "rc=$? after $(( $(date +%s) - T0 )) s" >>"$OUT/$name.log"; }
step bench 400 python -m attn bench --op prefill,extend --peers --no-flex --no-progress --out-dir "$OUT/bench"
tail -n 30 "$OUT"/bench.log
