"""Packed decode tiles on both consumer warpgroups with a third K/V stage (the working copy: the
merge through q's second half, the epilogue straight from the MMA layout, BATCH_STAGES 3) against
the shipped kernel (prefill_hopper_base.py: 44df04c's) and against itself at 2 stages. Call 7 put
one warpgroup's chain at ~63 GB/s an SM at most, and call 5's split at 2 stages waited on the ring.
The same measurements as ahead_probe.py. Usage: python split3_probe.py"""
import functools
import importlib

import ahead_probe as A

A.KERNELS = {"shipped": importlib.import_module("attn.triton_kernels.prefill_hopper_base").launch,
             "split, 2 stages": functools.partial(A.LAUNCH, stages=2),
             "split, 3 stages": A.LAUNCH}

if __name__ == "__main__":
    A.main()
