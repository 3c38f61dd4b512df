"""Issue 4: how much of a split decode's time is the merge launch. BatchDecode.run (attention +
segmented merge) against the attention launch alone (merge_segments stubbed out), both
graph-timed in alternating rounds on the same plan, mixed batch (HND / NHD / token pool) and
the long uniform shapes. The difference bounds what folding the merge into the attention
launch can save.

    python benchmarks/results/h200-2026-12-04b/merge_share.py      # GPU, < 1 min"""
import statistics

import torch

import attn.triton_kernels.merge as M
from attn import benchutil as bu
from attn.tune import mixed_lengths

gen = torch.Generator("cuda").manual_seed(0)
real = M.merge_segments
print("| shape | layout | run() us | attention alone us | merge share |")
print("|---|---|---:|---:|---:|")
for label, lens, layouts in (("mixed", mixed_lengths(), (("HND", 16), ("NHD", 16), ("pool", 1))),
                             ("1x131072", [131072], (("HND", 16),)), ("8x32768", [32768] * 8, (("HND", 16),)),
                             ("64x4096", [4096] * 64, (("HND", 16),))):
    for layout, ps in layouts:
        case = bu.decode_case(lens, layout=layout, page_size=ps, n_sets=2, device="cuda", gen=gen)
        run = bu.attn_runner(case)
        calls = [run(i) for i in range(len(case.qs))]
        t = {"full": [], "attn": []}
        for _ in range(3):
            M.merge_segments = real
            t["full"].append(bu.gpu_time(calls)[0] * 1e3)
            M.merge_segments = lambda *a, **k: None
            t["attn"].append(bu.gpu_time(calls)[0] * 1e3)
        M.merge_segments = real
        f, a = statistics.median(t["full"]), statistics.median(t["attn"])
        print(f"| {label} | {layout} | {f:.1f} | {a:.1f} | {(f - a) / f:.1%} |", flush=True)
