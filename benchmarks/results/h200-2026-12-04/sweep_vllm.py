"""Issue 5: vLLM's fused cache write after write_tile 4096 (80% of copy; HND 89%): k-program
shapes with the launcher's q programs (1 token x 32 heads), 8192 tokens, page 16, shuffled pages.
Runs shorter than the page store through _write_cache (RUNS 1), whole pages through
_write_page_heads (RUNS 2). Median of 3 rounds of graph-timed medians.

    python benchmarks/results/h200-2026-12-04/sweep_vllm.py              # GPU, ~1 min
    SMALL=1 TRITON_INTERPRET=1 python .../sweep_vllm.py                    # the script's own check"""
import os
import statistics

import torch

from attn import benchutil as bu
from attn.reference.rotary import apply_and_write_kv as ref_write
from attn.rotary import cos_sin_cache
from attn.triton_kernels.rotary import _rotary_kernel, launch_config, rotary as launch

SMALL = bool(os.environ.get("SMALL"))
dev = "cpu" if SMALL else "cuda"
T = 64 if SMALL else 8192
gen = torch.Generator(dev).manual_seed(0)
cache = cos_sin_cache(65536, 128, dtype=torch.float32).to(dev)
dt = torch.float32 if SMALL else torch.bfloat16
copy = None if SMALL else bu.copy_gbs()
print(f"copy {copy:.0f} GB/s" if copy else "copy: not measured here")
sets = []
for _ in range(1 if SMALL else 2):
    q = torch.randn(T, 32, 128, device=dev, generator=gen).to(dt)
    k = torch.randn(T, 8, 128, device=dev, generator=gen).to(dt)
    v = torch.randn(T, 8, 128, device=dev, generator=gen).to(dt)
    pos = torch.randint(0, 65536, (T,), device=dev, generator=gen)
    sets.append((q, k, v, pos, torch.empty_like(q)))
work = 2.0 * T * (32 + 2 * 8) * 128 * sets[0][0].element_size()
kvs = [bu.make_kv([T], layout="vllm", page_size=16, gen=gen, device=dev, dtype=dt) for _ in sets]
t = torch.arange(T, device=dev)
slots = [kv.page_indices.long()[t // 16] * 16 + t % 16 for kv in kvs]
base = launch_config(T, 32, 8, 128, "nvidia", 132, True, True, 16)


def compiled():
    try:
        return {id(k): k for k in _rotary_kernel.device_caches[torch.cuda.current_device()][0].values()}
    except Exception:                      # noqa: BLE001 (interpreter, or another Triton's cache shape)
        return {}


runs, names, regs, times = {}, {}, {}, {}
for tk, hk in ((16, 1), (16, 2), (8, 1), (8, 2), (4, 2), (4, 4), (2, 8), (1, 8)):
    cfg = dict(base, BLOCK_TK=tk, BLOCK_HK=hk)
    name = f"{tk}x{hk} k" + (" (launcher)" if (tk, hk) == (base["BLOCK_TK"], base["BLOCK_HK"]) else "")
    runs[name] = [(lambda i=i, cfg=cfg: launch(sets[i][0], sets[i][1], sets[i][4], None, cache, 128, True,
                                               positions=sets[i][3], kv=kvs[i], v=sets[i][2], slot_mapping=slots[i],
                                               config=cfg)) for i in range(len(sets))]
    if SMALL:
        q, k, v, pos, qo = sets[0]
        kv2 = bu.make_kv([T], layout="vllm", page_size=16, gen=gen, device=dev, dtype=dt)
        kv2.k.copy_(kvs[0].k), kv2.v.copy_(kvs[0].v)       # before the launch: wrong slots show
        runs[name][0]()
        qr = ref_write(q, k, v, cache, kv2, slots[0], "neox", 128, False, positions=pos)
        err = max(float((qr - qo).abs().max()), float((kv2.k - kvs[0].k).abs().max()),
                  float((kv2.v - kvs[0].v).abs().max()))
        print(f"| {name} | err {err:.1e} |")
        continue
    before = compiled()
    runs[name][0]()
    torch.cuda.synchronize()
    regs[name] = ", ".join(f"{k.n_regs} / {k.n_spills}" for i, k in compiled().items() if i not in before) or "(cached)"
if not SMALL:
    for _ in range(3):
        for name in runs:
            times.setdefault(name, []).append(bu.gpu_time(runs[name])[0])
    print("| k program (1x32 q) | us | GB/s | of copy | registers / spills |")
    print("|---|---:|---:|---:|---|")
    for name in runs:
        ms = statistics.median(times[name])
        gbs = work / ms / 1e6
        print(f"| {name} | {ms * 1e3:.1f} | {gbs:.0f} | {gbs / copy:.1%} | {regs[name]} |")
