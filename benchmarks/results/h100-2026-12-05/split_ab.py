"""Fourteenth session, call 4 (H100): the gather issuing all of a block's K, then its V, each
with its barrier (the working tree's prefill_hopper), against K and V copied slice by slice with
one arrival for both (e97285c's, copied to prefill_hopper_base.py for the call), the probe's
extend shapes, alternating three times in one process."""
import sys

sys.path.insert(0, "benchmarks")
import hopper_prefill_probe as probe  # noqa: E402

from attn.triton_kernels import prefill_hopper, prefill_hopper_base  # noqa: E402

for rnd in range(3):
    for name, mod in (("K and V together (e97285c)", prefill_hopper_base), ("K, then V", prefill_hopper)):
        print(f"round {rnd}: {name}", flush=True)
        probe.ph = mod
        probe.extend()
