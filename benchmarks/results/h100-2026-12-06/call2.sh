#!/usr/bin/env bash
# Sixteenth session, call 2: the mixed-batch probe (TMA page lookahead; request order against
# interleave(), twice), the mixed bench, BatchAttention's and the Hopper prefill's GPU tests (the
# loader changed for schedules over TMA pages; the plain path is as before).
source benchmarks/results/h200-2026-12-05/setup.sh
# The kernel before this session, made beforehand (the device's git was stale): `git show
# fcb3607:triton_kernels/prefill_hopper.py > benchmarks/results/h100-2026-12-06/prefill_hopper_base.py`
cp benchmarks/results/h100-2026-12-06/prefill_hopper_base.py triton_kernels/prefill_hopper_base.py
nvidia-smi --query-gpu=name,driver_version --format=csv,noheader > "$OUT"/gpu.txt
step probe 120 python benchmarks/results/h100-2026-12-06/mixed_probe.py
step mixed 80 python -m attn bench --op mixed --peers --no-flex --no-progress --out-dir "$OUT/bench_mixed"
step ba 110 python -m pytest -m gpu -q tests/test_batch_attention.py
step hopper 130 python -m pytest -m gpu -q tests/test_prefill_hopper.py -k "(test_matches_reference and dtype0) or custom_mask or graph or replanned"
cat "$OUT"/probe.log; tail -n 8 "$OUT"/mixed.log; tail -n 5 "$OUT"/ba.log "$OUT"/hopper.log
