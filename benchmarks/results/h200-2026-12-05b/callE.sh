#!/usr/bin/env bash
# Thirteenth session, call 3: tiles in snake order against in order (call 2's 16 x 512 fell from
# 312 to 162 TFLOP/s with the snake, 1 x 16384 rose 498 -> 547): the same file with the in-order
# rule, side by side, L2 flushed (do_bench) and warm.
source benchmarks/results/h200-2026-12-05/setup.sh
sed 's/        t = _snake(rnd)/        t = rnd * gl.num_programs(0) + gl.program_id(0)/' triton_kernels/prefill_hopper.py \
    > triton_kernels/prefill_hopper_inorder.py
step order 200 python benchmarks/results/h200-2026-12-05b/order_ab.py
cat "$OUT/order.log"
