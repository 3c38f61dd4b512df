"""Issue 5: ncu (call 2) put the fused cache write at 25-31% occupancy, limited by registers (90
a thread over HND, 116 over vLLM: 5 and 4 blocks an SM) in a kernel that only streams. The q
programs, 2/3 of the bytes, run at the k path's register count (one kernel). Here: ptxas's
ceiling (maxnreg) and smaller q / k tiles, for the write over HND / NHD / vLLM (8192 tokens,
page 16, shuffled pages) and for apply alone, graph-timed over 2 input sets; registers and
spills of each compiled variant.

    python benchmarks/results/h200-2026-12-04/sweep_regs.py               # GPU, ~2 min
    SMALL=1 TRITON_INTERPRET=1 python .../sweep_regs.py                     # the script's own check"""
import os

import torch

from attn import benchutil as bu
from attn.reference.rotary import apply as ref_apply, apply_and_write_kv as ref_write
from attn.rotary import cos_sin_cache
from attn.triton_kernels.rotary import _rotary_kernel, launch_config, rotary as launch

SMALL = bool(os.environ.get("SMALL"))
dev = "cpu" if SMALL else "cuda"
T = 64 if SMALL else 8192
gen = torch.Generator(dev).manual_seed(0)
cache = cos_sin_cache(65536, 128, dtype=torch.float32).to(dev)
dt = torch.float32 if SMALL else torch.bfloat16
sets = []
for _ in range(1 if SMALL else 2):
    q = torch.randn(T, 32, 128, device=dev, generator=gen).to(dt)
    k = torch.randn(T, 8, 128, device=dev, generator=gen).to(dt)
    v = torch.randn(T, 8, 128, device=dev, generator=gen).to(dt)
    pos = torch.randint(0, 65536, (T,), device=dev, generator=gen)
    sets.append((q, k, v, pos, torch.empty_like(q), torch.empty_like(k)))
el = sets[0][0].element_size()
copy = None if SMALL else bu.copy_gbs()
print(f"copy {copy:.0f} GB/s" if copy else "copy: not measured here")
VARIANTS = [("launcher", {}), ("maxnreg 80", dict(maxnreg=80)), ("maxnreg 72", dict(maxnreg=72)),
            ("maxnreg 64", dict(maxnreg=64)), ("q 1 token", dict(BLOCK_TQ=1)),
            ("q 1 token, maxnreg 64", dict(BLOCK_TQ=1, maxnreg=64)),
            ("q 1 token, k half, maxnreg 64", dict(BLOCK_TQ=1, half_k=True, maxnreg=64))]


def compiled():
    try:
        return {id(k): k for k in _rotary_kernel.device_caches[torch.cuda.current_device()][0].values()}
    except Exception:                      # noqa: BLE001 (interpreter, or another Triton's cache shape)
        return {}


print("| case | variant | us | GB/s | of copy | registers / spills |")
print("|---|---|---:|---:|---:|---|")
for layout in ("apply", "HND", "NHD", "vllm"):
    write = layout != "apply"
    if write:
        kvs = [bu.make_kv([T], layout=layout, page_size=16, gen=gen, device=dev, dtype=dt) for _ in sets]
        t = torch.arange(T, device=dev)
        slots = [kv.page_indices.long()[t // 16] * 16 + t % 16 for kv in kvs]
        work = 2.0 * T * (32 + 2 * 8) * 128 * el
    else:
        work = 2.0 * T * (32 + 8) * 128 * el
    base = launch_config(T, 32, 8, 128, "nvidia", 132, write, layout in ("HND", "vllm"), 16 if layout == "vllm" else 0)
    for name, var in VARIANTS:
        cfg = dict(base, **{k: v for k, v in var.items() if k != "half_k"})
        if var.get("half_k"):
            if cfg["BLOCK_HK"] > 1:
                cfg["BLOCK_HK"] //= 2
            else:
                cfg["BLOCK_TK"] //= 2
        if SMALL:
            cfg.pop("maxnreg", None)
            cfg["BLOCK_TQ"], cfg["BLOCK_TK"] = min(cfg["BLOCK_TQ"], 16), min(cfg["BLOCK_TK"], 16)

        def call(i, cfg=cfg):
            q, k, v, pos, qo, ko = sets[i]
            if write:
                launch(q, k, qo, None, cache, 128, True, positions=pos, kv=kvs[i], v=v, slot_mapping=slots[i], config=cfg)
            else:
                launch(q, k, qo, ko, cache, 128, True, positions=pos, config=cfg)
        calls = [(lambda i=i: call(i)) for i in range(len(sets))]
        before = compiled()
        try:
            if SMALL:
                q, k, v, pos, qo, ko = sets[0]
                if write:
                    kv2 = bu.make_kv([T], layout=layout, page_size=16, gen=gen, device=dev, dtype=dt)
                    kv2.k.copy_(kvs[0].k), kv2.v.copy_(kvs[0].v)       # before the launch: wrong slots show
                    calls[0]()
                    qr = ref_write(q, k, v, cache, kv2, slots[0], "neox", 128, False, positions=pos)
                    err = max(float((qr - qo).abs().max()), float((kv2.k - kvs[0].k).abs().max()),
                              float((kv2.v - kvs[0].v).abs().max()))
                else:
                    calls[0]()
                    qr, kr = ref_apply(q, k, cache, "neox", 128, False, positions=pos)
                    err = max(float((qr - qo).abs().max()), float((kr - ko).abs().max()))
                print(f"| {layout} | {name} | err {err:.1e} | | | |")
                continue
            ms = bu.gpu_time(calls)[0]
        except Exception as e:             # noqa: BLE001 (a variant that does not compile here)
            print(f"| {layout} | {name} | failed: {type(e).__name__} {str(e)[:60]} | | | |")
            continue
        new = [k for i, k in compiled().items() if i not in before]
        regs = ", ".join(f"{k.n_regs} / {k.n_spills}" for k in new) or "(cached)"
        gbs = work / ms / 1e6
        print(f"| {layout} | {name} ({cfg['BLOCK_TQ']}x{cfg['BLOCK_HQ']} q, {cfg['BLOCK_TK']}x{cfg['BLOCK_HK']} k) | "
              f"{ms * 1e3:.1f} | {gbs:.0f} | {gbs / copy:.1%} | {regs} |")
