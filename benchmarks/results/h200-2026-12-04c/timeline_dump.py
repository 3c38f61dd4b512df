"""Issue 4: raw per-program timelines (BatchDecode.measure: start, end, SM, item, kv head) of the
mixed decode batch and of b=64 x 4096 (HND page 16, tuned entries; the mixed batch also with the
guided pps 5 split), three launches each after a warm one, with each item's KV range; saved to
timelines.npz for analysis off the GPU (timeline_read.py).

    python benchmarks/results/h200-2026-12-04c/timeline_dump.py OUT.npz"""
import sys

import numpy as np
import torch

from attn import benchutil as bu
from attn.tune import mixed_lengths

gen = torch.Generator("cuda").manual_seed(0)
CASES = [("mixed_entry", mixed_lengths(), {}), ("mixed_g25pps5", mixed_lengths(), dict(guided=0.25, programs_per_sm=5)),
         ("u64x4096_entry", [4096] * 64, {})]
out = {}
for name, lens, var in CASES:
    case = bu.decode_case(lens, layout="HND", page_size=16, n_sets=1, device="cuda", gen=gen)
    base = dict(bu.attn_runner(case).cfg)
    r = bu.attn_runner(case, dict(base, **var))
    plan = r.plan
    plan.run(case.q, case.kv)
    torch.cuda.synchronize()
    n = int(plan.work.num_items.item())
    out[f"{name}_items"] = np.stack([plan.work.req[:n].cpu().numpy(), plan.work.kv_start[:n].cpu().numpy(),
                                     plan.work.kv_end[:n].cpu().numpy()], 1)
    for k in range(3):
        out[f"{name}_t{k}"] = plan.measure(case.q, case.kv)
    print(name, n, "items", out[f"{name}_t0"].shape, "span", out[f"{name}_t0"][:, 1].max())
np.savez(sys.argv[1], **out)
