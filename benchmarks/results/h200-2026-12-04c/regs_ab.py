"""Issue 4: the mixed decode batch with more programs an SM (ptxas register ceilings: maxnreg 80
fits 6 programs of 4 warps where the entry's 94 registers fit 5) and deeper K/V pipelines
(stages 5-6: two blocks in flight a program), alone and with guided chunks. Graph-timed run()
in alternating rounds, ratio to the tuned entry; each variant's registers and spills from the
compiled binary; outputs checked against the float32 reference.

    python benchmarks/results/h200-2026-12-04c/regs_ab.py           # GPU, ~3 min"""
import statistics

import torch

from attn import benchutil as bu
from attn.triton_kernels.attention import attention_kernel
from attn.tune import mixed_lengths

gen = torch.Generator("cuda").manual_seed(0)
V = {"entry": {}, "r80": dict(maxnreg=80), "r80 pps5": dict(maxnreg=80, programs_per_sm=5),
     "r80 pps6": dict(maxnreg=80, programs_per_sm=6), "s5": dict(num_stages=5), "s6": dict(num_stages=6),
     "r80 s5": dict(maxnreg=80, num_stages=5), "r80 s5 pps5": dict(maxnreg=80, num_stages=5, programs_per_sm=5),
     "g.5 pps4": dict(guided=0.5, programs_per_sm=4), "r80 g.5 pps5": dict(maxnreg=80, guided=0.5, programs_per_sm=5),
     "r80 g.25 pps6": dict(maxnreg=80, guided=0.25, programs_per_sm=6)}


def binaries():
    out = set()
    for cache in attention_kernel.device_caches.values():
        for k in cache[0].values():
            out.add((id(k), k.n_regs, k.n_spills))
    return out


print("| layout | variant | registers / spills | items | us | ratio | % of copy | rel err |")
print("|---|---|---|---:|---:|---:|---:|---:|")
copy = bu.copy_gbs()
for layout, ps in (("HND", 16), ("NHD", 16), ("vllm", 16), ("pool", 1)):
    case = bu.decode_case(mixed_lengths(), layout=layout, page_size=ps, n_sets=2, device="cuda", gen=gen)
    ref = bu.reference(case, 0)
    base = dict(bu.attn_runner(case).cfg)
    runs, info = {}, {}
    for name, var in V.items():
        before = binaries()
        r = bu.attn_runner(case, dict(base, **var))
        runs[name] = [r(i) for i in range(len(case.qs))]
        err = bu.rel_err(runs[name][0](), ref)
        new = binaries() - before
        regs = ", ".join(f"{n}/{s}" for _, n, s in sorted(new)) or "(cached)"
        info[name] = (regs, int(r.plan.work.num_items.item()), err)
    t = {}
    for _ in range(5):
        for name in V:
            t.setdefault(name, []).append(bu.gpu_time(runs[name])[0] * 1e3)
    t0 = statistics.median(t["entry"])
    for name in V:
        m = statistics.median(t[name])
        regs, n, err = info[name]
        print(f"| {layout} | {name} | {regs} | {n} | {m:.1f} | {m / t0:.3f} | {case.bytes / m / 1e3 / copy:.1%} | "
              f"{err:.1e} |", flush=True)
print(f"\ncopy {copy:.0f} GB/s")
