#!/usr/bin/env bash
# Sixteenth session, call 1: where the mixed batch's time goes (mixed_probe.py: the kernel before
# this session against the TMA page lookahead, 64-key blocks), then BatchAttention's GPU tests
# (the GQA-group-1 fix and the graph replay not yet run on a GPU).
source benchmarks/results/h200-2026-12-05/setup.sh
# The kernel before this session, made beforehand (the device's git was stale): `git show
# fcb3607:triton_kernels/prefill_hopper.py > benchmarks/results/h100-2026-12-06/prefill_hopper_base.py`
cp benchmarks/results/h100-2026-12-06/prefill_hopper_base.py triton_kernels/prefill_hopper_base.py
step probe 240 python benchmarks/results/h100-2026-12-06/mixed_probe.py
step ba 200 python -m pytest -m gpu -q tests/test_batch_attention.py
cat "$OUT"/probe.log; tail -n 15 "$OUT"/ba.log
