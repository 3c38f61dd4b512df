"""Issue 5: the fused rotary cache write (q rotated, k rotated + v written at shuffled page-16
slots, 8192 tokens, 32 q / 8 kv heads, d128, bf16): k-program shapes beside the launcher's
choice, graph-timed over 2 input sets, % of the bench's byte count at the copy rate measured here.
(Call 2 ran it at the launcher of then: write_tile 8192, vLLM runs of 16 slots.)

    python benchmarks/results/h200-2026-12-04/sweep_write.py              # GPU, ~1-2 min
    SMALL=1 TRITON_INTERPRET=1 python .../sweep_write.py                    # the script's own check"""
import torch

from attn import benchutil as bu
from attn.triton_kernels.rotary import launch_config
from write_case import DEV, SMALL, check_write, inputs, paged, write_bytes, write_call

T = 64 if SMALL else 8192
gen = torch.Generator(DEV).manual_seed(0)
sets = inputs(T, 1 if SMALL else 2, gen)
work = write_bytes(T)
copy = None if SMALL else bu.copy_gbs()
print(f"copy {copy} GB/s" if copy else "copy: not measured here")
CANDS = {"HND": [None, (4, 8, 4), (4, 8, 8), (8, 4, 4), (8, 8, 4), (8, 8, 8), (2, 16, 4), (4, 4, 4), (16, 2, 4)],
         "vllm": [None, (16, 2, 4), (16, 4, 4), (16, 8, 4), (16, 4, 8), (16, 8, 8), (16, 1, 4), (8, 4, 4), (8, 8, 4)],
         "NHD": [None, (16, 8, 4), (32, 8, 4), (8, 8, 4), (16, 8, 8)]}
print("| layout | k program (tokens x heads, warps) | us | GB/s | of copy |")
print("|---|---|---:|---:|---:|")
for layout, cands in CANDS.items():
    kvs, slots = paged(layout, T, len(sets), gen)
    base = launch_config(T, 32, 8, 128, "nvidia", 132, True, layout != "NHD", 16 if layout == "vllm" else 0)
    for c in cands:
        cfg = dict(base) if c is None else dict(base, BLOCK_TK=c[0], BLOCK_HK=c[1], num_warps=c[2])
        calls = [write_call(s, kv, sl, cfg) for s, kv, sl in zip(sets, kvs, slots)]
        try:
            if SMALL:
                err = check_write(sets[0], kvs[0], slots[0], cfg, layout, gen)
                print(f"| {layout} | {c or 'launcher'} | err {err:.1e} | | |")
                continue
            ms = bu.gpu_time(calls)[0]
        except Exception as e:             # noqa: BLE001 (a shape that does not compile here)
            print(f"| {layout} | {c} | failed: {type(e).__name__} {str(e)[:60]} | | |")
            continue
        name = (f"launcher {base['BLOCK_TK']}x{base['BLOCK_HK']}, {base['num_warps']}w" if c is None
                else f"{c[0]}x{c[1]}, {c[2]}w")
        gbs = work / ms / 1e6
        print(f"| {layout} | {name} | {ms * 1e3:.1f} | {gbs:.0f} | {gbs / copy:.1%} |")
