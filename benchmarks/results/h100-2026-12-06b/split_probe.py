"""A packed decode tile on both consumer warpgroups, every other block each, their softmax states
merged through shared memory (working copy) against the first warpgroup alone (HEAD's kernel as
prefill_hopper_base.py): call 4 showed a decode program's pace set by one warpgroup's chain of
waits a block (~0.72 us fixed + 94 GB/s; not the ring, the page lookups or the copies' count).
The same measurements as ahead_probe.py. Usage: python split_probe.py"""
import importlib

import ahead_probe as A

A.KERNELS = {"one warpgroup": importlib.import_module("attn.triton_kernels.prefill_hopper_base").launch,
             "both warpgroups": A.LAUNCH}

if __name__ == "__main__":
    A.main()
