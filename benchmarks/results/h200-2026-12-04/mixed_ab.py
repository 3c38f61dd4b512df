"""Issue 4: the mixed decode batch's split knobs, after ncu (ncu_mixed_call7.txt): 784 programs
for 660 resident slots (5 blocks an SM at 94 registers), 1.19 waves; SMs active 86% of the
kernel on average (uniform 64 x 4096: 92%), busiest 93%. Variants of the tuned entry (pps 4,
min_chunk_blocks 8, longest_first, BLOCK_N 32): items fitted to one wave of 5 an SM (fit_wave,
pps 5) or two (pps 10), and pps 5 without fitting; graph-timed in alternating rounds, HND / NHD /
token pool, ratio to the tuned entry. (Call 9 also ran whole_waves rows, on 2c4d141, where that
option existed: the long sequences given exactly pps x SMs / kv heads chunks, the short ones on
top. It lost, 1.03-1.15x, and was reverted; mixed_ab_call9.md.)

    python benchmarks/results/h200-2026-12-04/mixed_ab.py            # GPU, ~1 min
    SMALL=1 TRITON_INTERPRET=1 python .../mixed_ab.py                  # the script's own check"""
import os
import statistics

import numpy as np
import torch

from attn import benchutil as bu
from attn.triton_kernels.decode import choose_splits
from attn.tune import mixed_lengths

SMALL = bool(os.environ.get("SMALL"))
dev = "cpu" if SMALL else "cuda"
lens = mixed_lengths()
if SMALL:
    lens = [min(int(n), 96) for n in lens[:6]]
gen = torch.Generator(dev).manual_seed(0)
VARIANTS = {"tuned": {}, "fit_wave pps 5": dict(fit_wave=True, programs_per_sm=5),
            "fit_wave pps 5, min 4 blocks": dict(fit_wave=True, programs_per_sm=5, min_chunk_blocks=4),
            "fit_wave pps 10": dict(fit_wave=True, programs_per_sm=10), "pps 5": dict(programs_per_sm=5),
            "fit_wave pps 4": dict(fit_wave=True, programs_per_sm=4)}
print("| layout | variant | programs (items x kv heads) | us | ratio to tuned |")
print("|---|---|---:|---:|---:|")
for layout, ps in (("HND", 16), ("NHD", 16), ("pool", 1)):
    case = bu.decode_case(lens, layout=layout, page_size=ps, n_sets=1 if SMALL else 2, device=dev, gen=gen)
    base = bu.attn_runner(case)
    tuned = dict(base.cfg)
    runs, items, times, outs = {}, {}, {}, {}
    for name, var in VARIANTS.items():
        cfg = dict(tuned, **var)
        r = base if not var else bu.attn_runner(case, cfg)
        runs[name] = [r(i) for i in range(len(case.qs))]
        items[name] = int(choose_splits(np.asarray(lens), 8, 4 if SMALL else 132, cfg).sum()) * 8
        outs[name] = runs[name][0]()
    want = outs["tuned"].float()
    for name in VARIANTS:                   # every variant computes the same attention
        err = float((outs[name].float() - want).abs().max())
        assert err < 2e-2, (layout, name, err)
    if SMALL:
        print(f"| {layout} | all | {items} | checked | |")
        continue
    for _ in range(3):
        for name in VARIANTS:
            times.setdefault(name, []).append(bu.gpu_time(runs[name])[0] * 1e3)
    t0 = statistics.median(times["tuned"])
    for name in VARIANTS:
        t = statistics.median(times[name])
        print(f"| {layout} | {name} | {items[name]} | {t:.1f} | {t / t0:.3f} |")
