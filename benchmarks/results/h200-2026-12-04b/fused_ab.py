"""Issue 4: the split-KV merge folded into the decode launch (BatchDecode's fused_merge: the last
chunk of a sequence to finish merges its parts) against the merge launch after it, and the fused
merge's parts a step (merge_parts), graph-timed in alternating rounds on the same inputs; ratio
to the merge launch. Every variant's output is checked against the merge launch's.
It ran on 0551d8b / 376ac00 (fused_ab_call2.md, fused_ab_call3.md), whose fused_merge knob was
then reverted: it lost (the merge's tile took the decode tile's registers, 1.16-1.40x) or tied
(1 part a step: 0.99-1.01x, and 1.10x on the token pool).

    python benchmarks/results/h200-2026-12-04b/fused_ab.py           # GPU, ~1-2 min
    SMALL=1 TRITON_INTERPRET=1 python .../fused_ab.py                  # the script's own check"""
import os
import statistics

import torch

from attn import benchutil as bu
from attn.tune import mixed_lengths

SMALL = bool(os.environ.get("SMALL"))
dev = "cpu" if SMALL else "cuda"
gen = torch.Generator(dev).manual_seed(0)
VARIANTS = {"merge launch": dict(fused_merge=False), "fused": dict(fused_merge=True),
            "fused, 1 part a step": dict(fused_merge=True, merge_parts=1),
            "fused, 16 parts a step": dict(fused_merge=True, merge_parts=16)}
if os.environ.get("SHAPES"):
    VARIANTS.pop("fused, 16 parts a step")
SHAPES = [("mixed", mixed_lengths(), (("HND", 16), ("NHD", 16), ("vllm", 16), ("pool", 1))),
          ("1x131072", [131072], (("HND", 16),)), ("8x32768", [32768] * 8, (("HND", 16), ("vllm", 16))),
          ("64x4096", [4096] * 64, (("HND", 16),)), ("256x1024", [1024] * 256, (("HND", 16),))]
if os.environ.get("SHAPES"):
    SHAPES = [s for s in SHAPES if s[0] in os.environ["SHAPES"].split(",")]
if SMALL:
    SHAPES = [("small", [3, 300, 41, 700], (("HND", 16), ("pool", 1)))]
print("| shape | layout | variant | parts (most) | us | ratio to merge launch |")
print("|---|---|---|---:|---:|---:|")
for label, lens, layouts in SHAPES:
    for layout, ps in layouts:
        case = bu.decode_case(lens, layout=layout, page_size=ps, n_sets=1 if SMALL else 2, device=dev, gen=gen)
        base = dict(bu.attn_runner(case).cfg)
        base.pop("fused_merge", None)
        if SMALL:
            base.update(programs_per_sm=64, min_chunk_blocks=1)     # split on the CPU's few "SMs"
        runs, outs, parts = {}, {}, {}
        for name, var in VARIANTS.items():
            r = bu.attn_runner(case, dict(base, **var))
            runs[name] = [r(i) for i in range(len(case.qs))]
            outs[name] = runs[name][0]().clone()
            parts[name] = int(r.plan.merge_indptr.diff().max())
            assert r.plan._fused == var["fused_merge"], name
        want = outs["merge launch"].float()
        for name in VARIANTS:
            err = float((outs[name].float() - want).abs().max())
            assert err < 2e-2, (label, layout, name, err)
        if SMALL:
            print(f"| {label} | {layout} | all | {parts['fused']} | checked | |")
            continue
        times = {}
        for _ in range(3):
            for name in VARIANTS:
                times.setdefault(name, []).append(bu.gpu_time(runs[name])[0] * 1e3)
        t0 = statistics.median(times["merge launch"])
        for name in VARIANTS:
            t = statistics.median(times[name])
            print(f"| {label} | {layout} | {name} | {parts[name]} | {t:.1f} | {t / t0:.3f} |", flush=True)


def kernels_compiled():
    """Registers, spills and shared memory of every attention_kernel binary this run compiled."""
    from attn.triton_kernels.attention import attention_kernel
    print("\n| FUSED_MERGE | MERGE_P | BLOCK_N | num_stages | registers | spills | shared bytes |")
    print("|---|---:|---:|---:|---:|---:|---:|")
    for cache in attention_kernel.device_caches.values():
        for k in cache[0].values():
            k._init_handles()
            names = attention_kernel.arg_names
            cx = {names[i[0]] if isinstance(i, tuple) else i: v for i, v in k.src.constants.items()}
            print(f"| {cx.get('FUSED_MERGE')} | {cx.get('MERGE_P')} | {cx.get('BLOCK_N')} | {k.metadata.num_stages} | "
                  f"{k.n_regs} | {k.n_spills} | {k.metadata.shared} |")


if not SMALL:
    try:
        kernels_compiled()
    except Exception as e:                     # noqa: BLE001 (Triton's cache internals vary by version)
        print("kernels_compiled:", type(e).__name__, e)
