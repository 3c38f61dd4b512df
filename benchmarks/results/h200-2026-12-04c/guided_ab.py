"""Issue 4: split-KV chunks of decreasing length (guided self-scheduling, config `guided` = the
smallest chunk as a fraction of the first) against each shape's tuned entry, graph-timed in
alternating rounds on the same inputs; ratio to the entry. Each variant's output is checked
against the float32 reference, and on the mixed batch (HND) each variant's per-program timeline
(BatchDecode.measure) is summarized: SM busy share, when the last program started, the tail.

    python benchmarks/results/h200-2026-12-04c/guided_ab.py          # GPU, ~2 min"""
import statistics
import sys

import numpy as np
import torch

from attn import benchutil as bu, platform
from attn.timeline import summary
from attn.tune import mixed_lengths

gen = torch.Generator("cuda").manual_seed(0)
VARIANTS = {"entry": {}, "g.25": dict(guided=0.25), "g.5": dict(guided=0.5), "g.25 pps5": dict(guided=0.25, programs_per_sm=5),
            "g.1": dict(guided=0.1), "g.25 min4": dict(guided=0.25, min_chunk_blocks=4)}
if len(sys.argv) > 1:
    VARIANTS = {k: v for k, v in VARIANTS.items() if k == "entry" or k in sys.argv[1:]}
SHAPES = [("mixed", mixed_lengths(), (("HND", 16), ("NHD", 16), ("vllm", 16), ("pool", 1))),
          ("1x131072", [131072], (("HND", 16),)), ("8x32768", [32768] * 8, (("HND", 16),)),
          ("64x4096", [4096] * 64, (("HND", 16),)), ("256x1024", [1024] * 256, (("HND", 16),))]
sms = platform.get(0).num_sms
print("| shape | layout | variant | items | us | ratio to entry | GB/s | rel err |")
print("|---|---|---|---:|---:|---:|---:|---:|")
timelines = []
for label, lens, layouts in SHAPES:
    for layout, ps in layouts:
        case = bu.decode_case(lens, layout=layout, page_size=ps, n_sets=2, device="cuda", gen=gen)
        ref = bu.reference(case, 0)
        base = dict(bu.attn_runner(case).cfg)
        runs, errs, items = {}, {}, {}
        for name, var in VARIANTS.items():
            r = bu.attn_runner(case, dict(base, **var))
            runs[name] = [r(i) for i in range(len(case.qs))]
            errs[name] = bu.rel_err(runs[name][0](), ref)
            items[name] = int(r.plan.work.num_items.item())
            if label == "mixed" and layout in ("HND", "pool"):
                r.plan.run(case.qs[0], case.kvs[0])
                s = summary(r.plan.measure(case.qs[0], case.kvs[0]), sms)
                timelines.append((layout, name, s))
        times = {}
        for _ in range(5):
            for name in VARIANTS:
                times.setdefault(name, []).append(bu.gpu_time(runs[name])[0] * 1e3)
        t0 = statistics.median(times["entry"])
        for name in VARIANTS:
            t = statistics.median(times[name])
            print(f"| {label} | {layout} | {name} | {items[name]} | {t:.1f} | {t / t0:.3f} | "
                  f"{case.bytes / t / 1e3:.0f} | {errs[name]:.1e} |", flush=True)
print("\ntimelines (mixed batch, measure(): one launch, clocks in it)\n")
print("| layout | variant | span us | SM busy mean / min / max | last start us | tail share | peak live |")
print("|---|---|---:|---|---:|---:|---:|")
for layout, name, s in timelines:
    print(f"| {layout} | {name} | {s['span_us']:.1f} | {s['sm_busy_mean']:.2f} / {s['sm_busy_min']:.2f} / "
          f"{s['sm_busy_max']:.2f} | {s['last_start_us']:.1f} | {s['tail_share']:.2f} | {s['peak_live']} |")
