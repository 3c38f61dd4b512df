#!/usr/bin/env bash
# Thirteenth session, call 3: tiles in snake order against in order (call 2's 16 x 512 fell from
# 312 to 162 TFLOP/s with the snake, 1 x 16384 rose 498 -> 547): the same file with the in-order
# rule, side by side, L2 flushed (do_bench) and warm; the gather with a block's page numbers
# loaded at once (call 2: 839 us at pages of 1, against 615 ragged): its tests and the extend probe.
source benchmarks/results/h200-2026-12-05/setup.sh
sed 's/        t = _snake(rnd)/        t = rnd * gl.num_programs(0) + gl.program_id(0)/' triton_kernels/prefill_hopper.py \
    > triton_kernels/prefill_hopper_inorder.py
step order 130 python benchmarks/results/h200-2026-12-05b/order_ab.py
step gather_tests 110 python -m pytest -m gpu -q -x tests/test_prefill_hopper.py -k "gathered"
step extend 80 python -c "import sys; sys.path.insert(0, 'benchmarks'); import hopper_prefill_probe as p; p.extend()"
tail -n 4 "$OUT"/*.log
