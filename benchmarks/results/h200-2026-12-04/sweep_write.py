"""Issue 5: the fused rotary cache write (q rotated, k rotated + v written at shuffled page-16
slots, 8192 tokens, 32 q / 8 kv heads, d128, bf16): k-program shapes beside the launcher's
choice, graph-timed over 2 input sets, % of the bench's byte count at the copy rate measured here.

    python benchmarks/results/h200-2026-12-04/sweep_write.py              # GPU, ~1-2 min
    SMALL=1 TRITON_INTERPRET=1 python .../sweep_write.py                    # the script's own check"""
import os

import torch

from attn import benchutil as bu
from attn.reference.rotary import apply_and_write_kv as ref_write
from attn.triton_kernels.rotary import launch_config, rotary as launch

SMALL = bool(os.environ.get("SMALL"))
dev = "cpu" if SMALL else "cuda"
T = 64 if SMALL else 8192
gen = torch.Generator(dev).manual_seed(0)
from attn.rotary import cos_sin_cache          # noqa: E402
cache = cos_sin_cache(65536, 128, dtype=torch.float32).to(dev)
dt = torch.float32 if SMALL else torch.bfloat16
sets = []
for _ in range(1 if SMALL else 2):
    q = torch.randn(T, 32, 128, device=dev, generator=gen).to(dt)
    k = torch.randn(T, 8, 128, device=dev, generator=gen).to(dt)
    v = torch.randn(T, 8, 128, device=dev, generator=gen).to(dt)
    pos = torch.randint(0, 65536, (T,), device=dev, generator=gen)
    sets.append((q, k, v, pos, torch.empty_like(q)))
work = 2.0 * T * (32 + 2 * 8) * 128 * sets[0][0].element_size()
copy = None if SMALL else bu.copy_gbs()
print(f"copy {copy} GB/s" if copy else "copy: not measured here")
CANDS = {"HND": [None, (4, 8, 4), (4, 8, 8), (8, 4, 4), (8, 8, 4), (8, 8, 8), (2, 16, 4), (4, 4, 4), (16, 2, 4)],
         "vllm": [None, (16, 2, 4), (16, 4, 4), (16, 8, 4), (16, 4, 8), (16, 8, 8), (16, 1, 4), (8, 4, 4), (8, 8, 4)],
         "NHD": [None, (16, 8, 4), (32, 8, 4), (8, 8, 4), (16, 8, 8)]}
print("| layout | k program (tokens x heads, warps) | us | GB/s | of copy |")
print("|---|---|---:|---:|---:|")
for layout, cands in CANDS.items():
    kvs = [bu.make_kv([T], layout=layout, page_size=16, gen=gen, device=dev, dtype=dt) for _ in sets]
    t = torch.arange(T, device=dev)
    slots = [kv.page_indices.long()[t // 16] * 16 + t % 16 for kv in kvs]
    head_major = layout != "NHD"
    base = launch_config(T, 32, 8, 128, "nvidia", 132, True, head_major, 16 if layout == "vllm" else 0)
    for c in cands:
        cfg = dict(base) if c is None else dict(base, BLOCK_TK=c[0], BLOCK_HK=c[1], num_warps=c[2])
        calls = [(lambda i=i: launch(sets[i][0], sets[i][1], sets[i][4], None, cache, 128, True, positions=sets[i][3],
                                     kv=kvs[i], v=sets[i][2], slot_mapping=slots[i], config=cfg)) for i in range(len(sets))]
        try:
            if SMALL:
                kv2 = bu.make_kv([T], layout=layout, page_size=16, gen=gen, device=dev, dtype=dt)
                kv2.k.copy_(kvs[0].k), kv2.v.copy_(kvs[0].v)      # before the launch: wrong slots show
                calls[0]()
                qr = ref_write(sets[0][0], sets[0][1], sets[0][2], cache, kv2, slots[0], "neox", 128, False, positions=sets[0][3])
                err = max(float((qr - sets[0][4]).abs().max()), float((kv2.k - kvs[0].k).abs().max()),
                          float((kv2.v - kvs[0].v).abs().max()))
                print(f"| {layout} | {c or 'launcher'} | err {err:.1e} | | |")
                continue
            ms = bu.gpu_time(calls)[0]
        except Exception as e:             # noqa: BLE001 (a shape that does not compile here)
            print(f"| {layout} | {c} | failed: {type(e).__name__} {str(e)[:60]} | | |")
            continue
        name = (f"launcher {base['BLOCK_TK']}x{base['BLOCK_HK']}, {base['num_warps']}w" if c is None
                else f"{c[0]}x{c[1]}, {c[2]}w")
        gbs = work / ms / 1e6
        print(f"| {layout} | {name} | {ms * 1e3:.1f} | {gbs:.0f} | {gbs / copy:.1%} |" if copy else
              f"| {layout} | {name} | {ms * 1e3:.1f} | {gbs:.0f} | |")
