"""Fourteenth session, call 5 (H100): the gather looking a block's page numbers up one block
ahead, before the wait for a free stage (the working tree's prefill_hopper, loader 64 registers),
against e97285c's lookup after the wait (loader 48; prefill_hopper_base.py for the call) and the
same with 64 (prefill_hopper_regs64.py): the probe's extend shapes, alternating twice."""
import sys

sys.path.insert(0, "benchmarks")
import hopper_prefill_probe as probe  # noqa: E402

from attn.triton_kernels import prefill_hopper, prefill_hopper_base, prefill_hopper_regs64  # noqa: E402

for rnd in range(2):
    for name, mod in (("after the wait, 48 (e97285c)", prefill_hopper_base),
                      ("after the wait, 64", prefill_hopper_regs64), ("a block ahead, 64", prefill_hopper)):
        print(f"round {rnd}: {name}", flush=True)
        probe.ph = mod
        probe.extend()
