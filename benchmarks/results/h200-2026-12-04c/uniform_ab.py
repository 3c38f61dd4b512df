"""Issue 4: the uniform decode shapes against cuDNN's dense decode (the issue's "within 10%"),
each shape's tuned entry beside other tuned tiles and the occupancy ceiling, all graph-timed
in alternating rounds with SDPA-cuDNN on the same (dense) data; ratio to the entry and cuDNN
time / attn time (> 1: attn faster). Outputs checked against the float32 reference.

    python benchmarks/results/h200-2026-12-04c/uniform_ab.py           # GPU, ~2 min"""
import statistics

import torch

from attn import benchutil as bu
from attn.peers import sdpa_peers

gen = torch.Generator("cuda").manual_seed(0)
T = dict(BLOCK_M=16, num_warps=4, cache_modifier=".cg")
V = {"entry": None,
     "entry + occupancy 4": "occ4",
     "n32 s5 pps2 (vLLM 64x4096's)": dict(T, BLOCK_N=32, num_stages=5, programs_per_sm=2, min_chunk_blocks=4),
     "n64 s2 pps4 fit_wave (pool's)": dict(T, BLOCK_N=64, num_stages=2, programs_per_sm=4, min_chunk_blocks=4,
                                           fit_wave=True),
     "n32 s3 occ6 pps5 (mixed rows')": dict(T, BLOCK_N=32, num_stages=3, programs_per_sm=5, min_chunk_blocks=8,
                                            occupancy=6, longest_first=True),
     "n32 s6 pps4 min8 (8x32768's)": dict(T, BLOCK_N=32, num_stages=6, programs_per_sm=4, min_chunk_blocks=8)}
copy = bu.copy_gbs()
print("| shape | layout | variant | registers | us | ratio to entry | % of copy | cuDNN us | cuDNN / attn | rel err |")
print("|---|---|---|---:|---:|---:|---:|---:|---:|---:|")
for (b, n), layouts in (((64, 4096), ("HND", "NHD")), ((256, 1024), ("HND",)), ((8, 32768), ("HND",)),
                        ((1, 131072), ("HND",))):
    for layout in layouts:
        case = bu.decode_case([n] * b, layout=layout, page_size=16, n_sets=2, device="cuda", gen=gen)
        ref = bu.reference(case, 0)
        base = dict(bu.attn_runner(case).cfg)
        runs, info = {}, {}
        for name, cfg in V.items():
            if cfg == "occ4":
                cfg = dict(base, occupancy=4)
            r = bu.attn_runner(case, cfg)
            runs[name] = [r(i) for i in range(len(case.qs))]
            err = bu.rel_err(runs[name][0](), ref)
            k = r.plan._launch(case.q, case.kv, torch.empty_like(case.q), None, compile_only=True)
            k._init_handles()
            info[name] = (f"{k.n_regs} / {k.n_spills}", err)
        cud = sdpa_peers(case)["sdpa-cudnn"]
        runs["cuDNN"] = [cud(i) for i in range(len(case.qs))]
        t = {}
        for _ in range(5):
            for name in runs:
                t.setdefault(name, []).append(bu.gpu_time(runs[name])[0] * 1e3)
        t0, tc = statistics.median(t["entry"]), statistics.median(t["cuDNN"])
        for name in V:
            m = statistics.median(t[name])
            regs, err = info[name]
            print(f"| {b} x {n} | {layout} | {name} | {regs} | {m:.1f} | {m / t0:.3f} | "
                  f"{case.bytes / m / 1e3 / copy:.1%} | {tc:.1f} | {tc / m:.3f} | {err:.1e} |", flush=True)
print(f"\ncopy {copy:.0f} GB/s")
