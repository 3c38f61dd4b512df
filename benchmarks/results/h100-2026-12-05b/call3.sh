#!/usr/bin/env bash
# Fifteenth session, call 3 (~3 minutes of device time left): the Hopper-schedule tests after the
# GROUP 1 fix (call 2 stopped on Triton 3.6's crash there) and the one-graph replay test.
source benchmarks/results/h200-2026-12-05/setup.sh
step ba 150 python -m pytest -m gpu -q tests/test_batch_attention.py -k "hopper_kernel or graph"
tail -n 30 "$OUT"/ba.log
