"""Issue 4: the new tuned entries (rows: occupancy 6 + pps 5; vLLM and the token pool: guided
chunks) against the entries they replace, on the mixed batch and on the uniform shape of the
same bucket (b=32 x 2048), graph-timed in alternating rounds on the same inputs; outputs
checked against the float32 reference. The registers of the binary each launch runs.

    python benchmarks/results/h200-2026-12-04c/final_ab.py              # GPU, ~1 min"""
import statistics

import torch

from attn import benchutil as bu
from attn.tune import mixed_lengths

gen = torch.Generator("cuda").manual_seed(0)
OLD = {"HND": dict(BLOCK_M=16, BLOCK_N=32, num_warps=4, num_stages=3, cache_modifier=".cg", programs_per_sm=4,
                   min_chunk_blocks=8, longest_first=True),
       "vllm": dict(BLOCK_M=16, BLOCK_N=64, num_warps=4, num_stages=4, cache_modifier=".cg", programs_per_sm=6,
                    min_chunk_blocks=4, k_by_group=2, fit_wave=True, longest_first=True),
       "pool": dict(BLOCK_M=16, BLOCK_N=64, num_warps=4, num_stages=2, cache_modifier=".cg", programs_per_sm=4,
                    min_chunk_blocks=4, fit_wave=True)}
OLD["NHD"] = OLD["HND"]
copy = bu.copy_gbs()
print("| shape | layout | entry | config | registers | items | us | ratio to previous | % of copy | rel err |")
print("|---|---|---|---|---:|---:|---:|---:|---:|---:|")
for label, lens in (("mixed 16..16384", mixed_lengths()), ("32 x 2048", [2048] * 32)):
    for layout, ps in (("HND", 16), ("NHD", 16), ("vllm", 16), ("pool", 1)):
        case = bu.decode_case(lens, layout=layout, page_size=ps, n_sets=2, device="cuda", gen=gen)
        ref = bu.reference(case, 0)
        runs, info = {}, {}
        for name, cfg in (("previous", OLD[layout]), ("new", None)):
            r = bu.attn_runner(case, cfg)
            runs[name] = [r(i) for i in range(len(case.qs))]
            err = bu.rel_err(runs[name][0](), ref)
            out = torch.empty_like(case.q)
            k = r.plan._launch(case.q, case.kv, out, None, compile_only=True)
            k._init_handles()
            shown = {x: v for x, v in r.plan.cfg.items() if x in ("guided", "occupancy", "maxnreg", "programs_per_sm")}
            info[name] = (shown, f"{k.n_regs} / {k.n_spills}", int(r.plan.work.num_items.item()), err)
        t = {}
        for _ in range(7):
            for name in runs:
                t.setdefault(name, []).append(bu.gpu_time(runs[name])[0] * 1e3)
        t0 = statistics.median(t["previous"])
        for name in runs:
            m = statistics.median(t[name])
            shown, regs, n, err = info[name]
            print(f"| {label} | {layout} | {name} | {shown} | {regs} | {n} | {m:.1f} | {m / t0:.3f} | "
                  f"{case.bytes / m / 1e3 / copy:.1%} | {err:.1e} |", flush=True)
print(f"\ncopy {copy:.0f} GB/s")
