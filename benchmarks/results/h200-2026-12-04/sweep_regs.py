"""Issue 5: ncu (call 2) put the fused cache write at 25-31% occupancy, limited by registers (90
a thread over HND, 116 over vLLM: 5 and 4 blocks an SM) in a kernel that only streams. The q
programs, 2/3 of the bytes, run at the k path's register count (one kernel). Here: ptxas's
ceiling (maxnreg) and smaller q / k tiles, for the write over HND / NHD / vLLM (8192 tokens,
page 16, shuffled pages) and for apply alone, graph-timed over 2 input sets; registers and
spills of each compiled variant. (Call 3 ran it at the launcher of then: write_tile 8192,
vLLM's k programs 16 x 2; the variants apply to today's launcher.)

    python benchmarks/results/h200-2026-12-04/sweep_regs.py               # GPU, ~2 min
    SMALL=1 TRITON_INTERPRET=1 python .../sweep_regs.py                     # the script's own check"""
import torch

from attn import benchutil as bu
from attn.reference.rotary import apply as ref_apply
from attn.triton_kernels.rotary import launch_config, rotary as launch
from write_case import CACHE, DEV, SMALL, check_write, compiled, inputs, new_regs, paged, write_bytes, write_call

T = 64 if SMALL else 8192
gen = torch.Generator(DEV).manual_seed(0)
sets = inputs(T, 1 if SMALL else 2, gen)
k_outs = [torch.empty_like(s[1]) for s in sets]
copy = None if SMALL else bu.copy_gbs()
print(f"copy {copy:.0f} GB/s" if copy else "copy: not measured here")
VARIANTS = [("launcher", {}), ("maxnreg 80", dict(maxnreg=80)), ("maxnreg 72", dict(maxnreg=72)),
            ("maxnreg 64", dict(maxnreg=64)), ("q 1 token", dict(BLOCK_TQ=1)),
            ("q 1 token, maxnreg 64", dict(BLOCK_TQ=1, maxnreg=64)),
            ("q 1 token, k half, maxnreg 64", dict(BLOCK_TQ=1, half_k=True, maxnreg=64))]


def apply_call(i, cfg):
    q, k, v, pos, qo = sets[i]
    return lambda: launch(q, k, qo, k_outs[i], CACHE, 128, True, positions=pos, config=cfg)


def check_apply(cfg):
    q, k, v, pos, qo = sets[0]
    apply_call(0, cfg)()
    qr, kr = ref_apply(q, k, CACHE, "neox", 128, False, positions=pos)
    return max(float((qr - qo).abs().max()), float((kr - k_outs[0]).abs().max()))


print("| case | variant | us | GB/s | of copy | registers / spills |")
print("|---|---|---:|---:|---:|---|")
for layout in ("apply", "HND", "NHD", "vllm"):
    write = layout != "apply"
    if write:
        kvs, slots = paged(layout, T, len(sets), gen)
        work = write_bytes(T)
    else:
        work = 2.0 * T * (32 + 8) * 128 * sets[0][0].element_size()
    base = launch_config(T, 32, 8, 128, "nvidia", 132, write, layout in ("HND", "vllm"), 16 if layout == "vllm" else 0)
    for name, var in VARIANTS:
        cfg = dict(base, **{k: v for k, v in var.items() if k != "half_k"})
        if var.get("half_k"):
            if cfg["BLOCK_HK"] > 1:
                cfg["BLOCK_HK"] //= 2
            elif cfg["BLOCK_TK"] > 1:
                cfg["BLOCK_TK"] //= 2
        if SMALL:
            cfg.pop("maxnreg", None)
            cfg["BLOCK_TQ"], cfg["BLOCK_TK"] = min(cfg["BLOCK_TQ"], 16), min(cfg["BLOCK_TK"], 16)
        calls = [write_call(s, kv, sl, cfg) for s, kv, sl in zip(sets, kvs, slots)] if write else \
            [apply_call(i, cfg) for i in range(len(sets))]
        before = compiled()
        try:
            if SMALL:
                err = check_write(sets[0], kvs[0], slots[0], cfg, layout, gen) if write else check_apply(cfg)
                print(f"| {layout} | {name} | err {err:.1e} | | | |")
                continue
            ms = bu.gpu_time(calls)[0]
        except Exception as e:             # noqa: BLE001 (a variant that does not compile here)
            print(f"| {layout} | {name} | failed: {type(e).__name__} {str(e)[:60]} | | | |")
            continue
        gbs = work / ms / 1e6
        print(f"| {layout} | {name} ({cfg['BLOCK_TQ']}x{cfg['BLOCK_HQ']} q, {cfg['BLOCK_TK']}x{cfg['BLOCK_HK']} k) | "
              f"{ms * 1e3:.1f} | {gbs:.0f} | {gbs / copy:.1%} | {new_regs(before)} |")
