"""Issue 4, second round: guided split-KV chunks sized to the programs really resident (pps 5:
the mixed entry's 94-register binary holds 5 programs an SM), with higher floors (fewer items),
against the tuned entry on the mixed batch in every layout. Graph-timed in alternating rounds:
run() (attention + merge) and the attention launch alone (merge stubbed out), and each
variant's one-launch timeline span (BatchDecode.measure, median of 3). Outputs are checked
against the float32 reference.

    python benchmarks/results/h200-2026-12-04c/guided_ab2.py            # GPU, ~2 min"""
import statistics

import numpy as np
import torch

import attn.triton_kernels.merge as M
from attn import benchutil as bu, platform
from attn.timeline import summary
from attn.tune import mixed_lengths

gen = torch.Generator("cuda").manual_seed(0)
VARIANTS = {"entry": {}, "g.25 pps5": dict(guided=0.25, programs_per_sm=5),
            "g.5 pps5": dict(guided=0.5, programs_per_sm=5), "g.7 pps5": dict(guided=0.7, programs_per_sm=5),
            "g.5 pps5 min16": dict(guided=0.5, programs_per_sm=5, min_chunk_blocks=16),
            "g.5 pps6": dict(guided=0.5, programs_per_sm=6), "g.5 pps4": dict(guided=0.5, programs_per_sm=4)}
sms = platform.get(0).num_sms
real = M.merge_segments
print("| layout | variant | items | run() us | ratio | attention alone us | ratio | span us (measure) | SM busy | rel err |")
print("|---|---|---:|---:|---:|---:|---:|---:|---:|---:|")
for layout, ps in (("HND", 16), ("NHD", 16), ("vllm", 16), ("pool", 1)):
    case = bu.decode_case(mixed_lengths(), layout=layout, page_size=ps, n_sets=2, device="cuda", gen=gen)
    ref = bu.reference(case, 0)
    base = dict(bu.attn_runner(case).cfg)
    runs, info = {}, {}
    for name, var in VARIANTS.items():
        r = bu.attn_runner(case, dict(base, **var))
        runs[name] = [r(i) for i in range(len(case.qs))]
        err = bu.rel_err(runs[name][0](), ref)
        spans = [summary(r.plan.measure(case.qs[0], case.kvs[0]), sms) for _ in range(3)]
        info[name] = (int(r.plan.work.num_items.item()), err, statistics.median(s["span_us"] for s in spans),
                      statistics.median(s["sm_busy_mean"] for s in spans))
    t = {}
    for _ in range(5):
        for name in VARIANTS:
            M.merge_segments = real
            t.setdefault((name, "full"), []).append(bu.gpu_time(runs[name])[0] * 1e3)
            M.merge_segments = lambda *a, **k: None
            t.setdefault((name, "attn"), []).append(bu.gpu_time(runs[name])[0] * 1e3)
    M.merge_segments = real
    f0, a0 = statistics.median(t[("entry", "full")]), statistics.median(t[("entry", "attn")])
    for name in VARIANTS:
        f, a = statistics.median(t[(name, "full")]), statistics.median(t[(name, "attn")])
        n, err, span, busy = info[name]
        print(f"| {layout} | {name} | {n} | {f:.1f} | {f / f0:.3f} | {a:.1f} | {a / a0:.3f} | {span:.1f} | {busy:.2f} | "
              f"{err:.1e} |", flush=True)
print(f"\ncopy {bu.copy_gbs():.0f} GB/s; mixed batch bytes {2 * sum(mixed_lengths()) * 8 * 128 * 2 / 1e6:.1f} MB")
