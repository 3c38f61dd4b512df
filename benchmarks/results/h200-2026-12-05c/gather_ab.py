"""Fourteenth session, call 1: the gather's page lookups a block at once (the working tree's
prefill_hopper) against a slice at a time (5c0adfe's, copied to prefill_hopper_base.py for the
call), the probe's extend shapes, alternating twice in one process."""
import sys

sys.path.insert(0, "benchmarks")
import hopper_prefill_probe as probe  # noqa: E402

from attn.triton_kernels import prefill_hopper, prefill_hopper_base  # noqa: E402

for rnd in range(2):
    for name, mod in (("slice-at-once (5c0adfe)", prefill_hopper_base), ("block-at-once", prefill_hopper)):
        print(f"round {rnd}: {name}", flush=True)
        probe.ph = mod
        probe.extend()
