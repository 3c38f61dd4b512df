"""Issue 5: the fused cache write's launcher now against before (write_tile 8192, vLLM's k
programs 16 slots x 2 heads), side by side in alternating rounds, 8192 tokens (and the 64-token
decode step) over HND / NHD / vLLM, page 16, shuffled pages; for vLLM also ptxas ceilings. Median
of 3 rounds of graph-timed medians; registers / spills of each compiled variant. (Call 4 ran it
between the two changes: "now" was write_tile 4096 with vLLM's k programs at 16 x 1, before
slot_run_heads; since then vLLM's are 8 x 1, sweep_vllm.py.)

    python benchmarks/results/h200-2026-12-04/sweep_tile.py              # GPU, ~1-2 min
    SMALL=1 TRITON_INTERPRET=1 python .../sweep_tile.py                    # the script's own check"""
import statistics

import torch

from attn import benchutil as bu
from attn.triton_kernels.rotary import launch_config
from write_case import DEV, SMALL, check_write, compiled, inputs, new_regs, paged, write_bytes, write_call

gen = torch.Generator(DEV).manual_seed(0)
copy = None if SMALL else bu.copy_gbs()
print(f"copy {copy:.0f} GB/s" if copy else "copy: not measured here")
BEFORE = (("write_tile", 8192), ("slot_run_tokens", 16), ("slot_run_heads", 16))
VARIANTS = {"before (write_tile 8192)": BEFORE, "now": (), "now + maxnreg 96": (), "now + maxnreg 80": ()}
NREG = {"now + maxnreg 96": 96, "now + maxnreg 80": 80}
print("| tokens | layout | variant | us (3 rounds' median) | GB/s | of copy | registers / spills |")
print("|---:|---|---|---:|---:|---:|---|")
for T in ((64,) if SMALL else (8192, 64)):
    sets = inputs(T, 1 if SMALL or T < 1024 else 2, gen)
    work = write_bytes(T)
    for layout in ("HND", "NHD", "vllm"):
        kvs, slots = paged(layout, T, len(sets), gen)
        hm, ps = layout != "NHD", 16 if layout == "vllm" else 0
        runs, times, regs, names = {}, {}, {}, {}
        for name, over in VARIANTS.items():
            if name in NREG and (layout != "vllm" or SMALL):
                continue
            cfg = dict(launch_config(T, 32, 8, 128, "nvidia", 132, True, hm, ps, over))
            if name in NREG:
                cfg["maxnreg"] = NREG[name]
            names[name] = f"{cfg['BLOCK_TQ']}x{cfg['BLOCK_HQ']} q, {cfg['BLOCK_TK']}x{cfg['BLOCK_HK']} k"
            runs[name] = [write_call(s, kv, sl, cfg) for s, kv, sl in zip(sets, kvs, slots)]
            if SMALL:
                err = check_write(sets[0], kvs[0], slots[0], cfg, layout, gen)
                print(f"| {T} | {layout} | {name} ({names[name]}) | err {err:.1e} | | | |")
                continue
            before = compiled()
            runs[name][0]()
            torch.cuda.synchronize()
            regs[name] = new_regs(before)
        if SMALL:
            continue
        for _ in range(3):
            for name in runs:
                times.setdefault(name, []).append(bu.gpu_time(runs[name])[0])
        for name in runs:
            ms = statistics.median(times[name])
            gbs = work / ms / 1e6
            print(f"| {T} | {layout} | {name} ({names[name]}) | {ms * 1e3:.1f} | {gbs:.0f} | {gbs / copy:.1%} | "
                  f"{regs[name]} |")
