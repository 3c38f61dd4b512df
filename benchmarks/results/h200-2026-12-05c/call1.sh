#!/usr/bin/env bash
# Fourteenth session, call 1: the Hopper prefill with custom masks (block lists) and the gather's
# block-at-once page lookup: their tests, an A/B of the lookup against 5c0adfe's on the extend
# shapes (triton_kernels/prefill_hopper_base.py = `git show 5c0adfe:triton_kernels/prefill_hopper.py`
# for the call), then `python -m attn bench --op prefill,extend` (the 50% mask row included).
source benchmarks/results/h200-2026-12-05/setup.sh
nvidia-smi --query-gpu=name,driver_version --format=csv,noheader >"$OUT/gpu.txt" 2>&1
python -c "import torch, triton; print(torch.__version__, triton.__version__)" >"$OUT/versions.txt" 2>&1
step hopper_tests 200 python -m pytest -m gpu -q -x tests/test_prefill_hopper.py -k "mask or graph or gathered"
step gather_ab 100 python benchmarks/results/h200-2026-12-05c/gather_ab.py
step bench 250 python -m attn bench --op prefill,extend --peers --no-flex --no-progress --out-dir "$OUT/bench"
tail -n 8 "$OUT"/*.log
