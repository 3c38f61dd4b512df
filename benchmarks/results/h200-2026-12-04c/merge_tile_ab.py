"""Issue 4: the segmented merge's part tile (MERGE_BLOCK_P: parts loaded together; more parts a
row are walked tile by tile, each a dependent round trip) crossed with the split policies of
guided_ab2.py. Graph-timed run() in alternating rounds, ratio to (entry, 16); outputs checked
against the float32 reference.

    python benchmarks/results/h200-2026-12-04c/merge_tile_ab.py          # GPU, ~3 min"""
import statistics

import torch

import attn.triton_kernels.merge as M
from attn import benchutil as bu
from attn.tune import mixed_lengths

gen = torch.Generator("cuda").manual_seed(0)
POLICIES = {"entry": {}, "g.25 pps5": dict(guided=0.25, programs_per_sm=5), "g.5 pps4": dict(guided=0.5, programs_per_sm=4),
            "g.5 pps5 min16": dict(guided=0.5, programs_per_sm=5, min_chunk_blocks=16)}
TILES = (16, 32, 64)
SHAPES = [("mixed", mixed_lengths(), (("HND", 16), ("NHD", 16), ("vllm", 16), ("pool", 1))),
          ("1x131072", [131072], (("HND", 16),)), ("8x32768", [32768] * 8, (("HND", 16),))]
print("| shape | layout | policy | merge tile | items | max parts | us | ratio | % of copy | rel err |")
print("|---|---|---|---:|---:|---:|---:|---:|---:|---:|")
copy = bu.copy_gbs()
for label, lens, layouts in SHAPES:
    pols = POLICIES if label == "mixed" else {"entry": {}}
    for layout, ps in layouts:
        case = bu.decode_case(lens, layout=layout, page_size=ps, n_sets=2, device="cuda", gen=gen)
        ref = bu.reference(case, 0)
        base = dict(bu.attn_runner(case).cfg)
        runs, info = {}, {}
        for name, var in pols.items():
            r = bu.attn_runner(case, dict(base, **var))
            mi = r.plan.merge_indptr.cpu()
            info[name] = (int(r.plan.work.num_items.item()), int((mi[1:] - mi[:-1]).max()))
            for tile in TILES:
                M.MERGE_BLOCK_P = tile
                runs[(name, tile)] = [r(i) for i in range(len(case.qs))]
                info[(name, tile)] = bu.rel_err(runs[(name, tile)][0](), ref)
        t = {}
        for _ in range(5):
            for key in runs:
                M.MERGE_BLOCK_P = key[1]
                t.setdefault(key, []).append(bu.gpu_time(runs[key])[0] * 1e3)
        t0 = statistics.median(t[("entry", 16)])
        for key in runs:
            m = statistics.median(t[key])
            n, parts = info[key[0]]
            print(f"| {label} | {layout} | {key[0]} | {key[1]} | {n} | {parts} | {m:.1f} | {m / t0:.3f} | "
                  f"{case.bytes / m / 1e3 / copy:.1%} | {info[key]:.1e} |", flush=True)
print(f"\ncopy {copy:.0f} GB/s")
