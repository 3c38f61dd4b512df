#!/usr/bin/env bash
# Thirteenth session, call 1: the persistent Hopper prefill with the in-warpgroup overlap (416fde2,
# with b1497b7's host-side changes) and the cp.async gather for pages TMA cannot copy (token pool,
# pages of 1, 3, 24): its tests, the probe (the dispatched version of call 1, "v1", timed beside
# it), memcheck with the new kernel dispatched. Every step time-boxed (setup.sh).
# Ran on the tree of the commit after 71fae1d (the gather's shared addresses), plus
# triton_kernels/prefill_hopper_v1.py = b1497b7's prefill_hopper.py for the probe's "v1" rows
# (`git show b1497b7:triton_kernels/prefill_hopper.py > triton_kernels/prefill_hopper_v1.py`, and the
# probe of that commit).
source benchmarks/results/h200-2026-12-05/setup.sh
nvidia-smi --query-gpu=name,driver_version --format=csv,noheader >"$OUT/gpu.txt" 2>&1
python -c "import torch, triton; print(torch.__version__, triton.__version__)" >"$OUT/versions.txt" 2>&1
step hopper_tests 160 python -m pytest -m gpu -q -x tests/test_prefill_hopper.py -k "not overlap_matches"
step hopper_overlap 50 python -m pytest -m gpu -q -x tests/test_prefill_hopper.py -k overlap_matches
step hopper_probe 140 python benchmarks/hopper_prefill_probe.py
step memcheck 100 python -m pytest -m gpu -q tests/test_bounds.py
tail -n 6 "$OUT"/*.log
