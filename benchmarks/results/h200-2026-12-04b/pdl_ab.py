"""Issue 4: BatchDecode's merge launch as a programmatic dependent launch (pdl_merge: the attention
programs let it be scheduled once they have all started, it waits for their writes with
griddepcontrol.wait) against a plain launch, graph-timed in alternating rounds on the same
inputs; ratio to the plain launch. Outputs checked equal.
It ran on the commit that added pdl_merge (call4.sh, pdl_ab_call4.md: 0.996-1.013x, no gain),
which was then reverted.

    python benchmarks/results/h200-2026-12-04b/pdl_ab.py             # GPU (sm_90+), ~1 min"""
import statistics

import torch

from attn import benchutil as bu
from attn.tune import mixed_lengths

gen = torch.Generator("cuda").manual_seed(0)
VARIANTS = {"plain merge launch": dict(pdl_merge=False), "PDL merge launch": dict(pdl_merge=True)}
SHAPES = [("mixed", mixed_lengths(), (("HND", 16), ("NHD", 16), ("vllm", 16), ("pool", 1))),
          ("1x131072", [131072], (("HND", 16),)), ("8x32768", [32768] * 8, (("HND", 16),)),
          ("64x4096", [4096] * 64, (("HND", 16),)), ("256x1024", [1024] * 256, (("HND", 16),))]
print("| shape | layout | variant | us | ratio to plain |")
print("|---|---|---|---:|---:|")
for label, lens, layouts in SHAPES:
    for layout, ps in layouts:
        case = bu.decode_case(lens, layout=layout, page_size=ps, n_sets=2, device="cuda", gen=gen)
        base = dict(bu.attn_runner(case).cfg)
        runs, outs = {}, {}
        for name, var in VARIANTS.items():
            r = bu.attn_runner(case, dict(base, **var))
            assert r.plan._pdl == var["pdl_merge"]
            runs[name] = [r(i) for i in range(len(case.qs))]
            outs[name] = runs[name][0]().clone()
        assert torch.equal(outs["plain merge launch"], outs["PDL merge launch"]), (label, layout)
        times = {}
        for _ in range(5):
            for name in VARIANTS:
                times.setdefault(name, []).append(bu.gpu_time(runs[name])[0] * 1e3)
        t0 = statistics.median(times["plain merge launch"])
        for name in VARIANTS:
            t = statistics.median(times[name])
            print(f"| {label} | {layout} | {name} | {t:.1f} | {t / t0:.3f} |", flush=True)
