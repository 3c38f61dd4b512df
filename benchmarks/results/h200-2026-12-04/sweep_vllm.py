"""Issue 5: vLLM's fused cache write after write_tile 4096 (80% of copy; HND 89%): k-program
shapes with the launcher's q programs (1 token x 32 heads), 8192 tokens, page 16, shuffled pages.
Runs shorter than the page store through _write_cache (RUNS 1), whole pages through
_write_page_heads (RUNS 2). Median of 3 rounds of graph-timed medians.

    python benchmarks/results/h200-2026-12-04/sweep_vllm.py              # GPU, ~1 min
    SMALL=1 TRITON_INTERPRET=1 python .../sweep_vllm.py                    # the script's own check"""
import statistics

import torch

from attn import benchutil as bu
from attn.triton_kernels.rotary import launch_config
from write_case import DEV, SMALL, check_write, compiled, inputs, new_regs, paged, write_bytes, write_call

T = 64 if SMALL else 8192
gen = torch.Generator(DEV).manual_seed(0)
copy = None if SMALL else bu.copy_gbs()
print(f"copy {copy:.0f} GB/s" if copy else "copy: not measured here")
sets = inputs(T, 1 if SMALL else 2, gen)
work = write_bytes(T)
kvs, slots = paged("vllm", T, len(sets), gen)
base = launch_config(T, 32, 8, 128, "nvidia", 132, True, True, 16)
runs, regs, times = {}, {}, {}
for tk, hk in ((16, 1), (16, 2), (8, 1), (8, 2), (4, 2), (4, 4), (2, 8), (1, 8)):
    cfg = dict(base, BLOCK_TK=tk, BLOCK_HK=hk)
    name = f"{tk}x{hk} k" + (" (launcher)" if (tk, hk) == (base["BLOCK_TK"], base["BLOCK_HK"]) else "")
    runs[name] = [write_call(s, kv, sl, cfg) for s, kv, sl in zip(sets, kvs, slots)]
    if SMALL:
        print(f"| {name} | err {check_write(sets[0], kvs[0], slots[0], cfg, 'vllm', gen):.1e} |")
        continue
    before = compiled()
    runs[name][0]()
    torch.cuda.synchronize()
    regs[name] = new_regs(before)
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
