"""Decode batches planned with the config attn.configs looks up ("tuned") and with overrides of it,
side by side on the same inputs, alternated in rounds (graph-timed), outputs compared. Host-side
planning knobs (programs_per_sm, min_chunk_blocks, fit_wave on exp/fit-wave) keep the kernel binary.

    VARIANTS='{"tuned": {}, "fit_wave": {"fit_wave": true}}' LAYOUTS=mixed:HND:16,8x32768:pool:1 \
        python split_ab.py

VARIANTS: name -> kernel_config overrides ("tuned" is the baseline and must be there);
LAYOUTS: shape:layout:page_size, shape one of SHAPES."""
import json
import os
import statistics

import torch

import attn
from attn import benchutil as bu
from attn.tune import mixed_lengths

gen = torch.Generator("cuda").manual_seed(0)
copy = bu.copy_gbs()
SHAPES = {"mixed": mixed_lengths(), "64x4096": [4096] * 64, "8x32768": [32768] * 8, "256x1024": [1024] * 256,
          "1x131072": [131072]}
variants = json.loads(os.environ["VARIANTS"])
print(f"copy {copy:.0f} GB/s  torch {torch.__version__}", flush=True)
print("| layout | variant | items | us | % copy | / tuned | max |diff| |")
print("|---|---|---:|---:|---:|---:|---:|")
for shape, layout, ps in [tuple(x.split(":")) for x in os.environ["LAYOUTS"].split(",")]:
    ps = int(ps)
    lens = SHAPES[shape]
    layout_label = f"{shape} {layout}"
    case = bu.decode_case(lens, layout=layout, page_size=ps, n_sets=2, gen=gen)
    plans, outs, calls = {}, {}, {}
    for name, kc in variants.items():
        plans[name] = attn.BatchDecode(max_batch=len(lens), kernel_config=kc).plan(case.kv, q_heads=32)
        outs[name] = [torch.empty_like(x) for x in case.qs]
        calls[name] = [(lambda i=i, p=plans[name], o=outs[name], c=case: p.run(c.qs[i], c.kvs[i], out=o[i]))
                       for i in range(len(case.qs))]
    t = {n: [] for n in variants}
    for _ in range(3):
        for n in variants:
            t[n].append(bu.gpu_time(calls[n])[0] * 1e3)
    base = statistics.median(t["tuned"])
    for n in variants:
        calls[n][0]()
    torch.cuda.synchronize()
    for n in variants:
        us = statistics.median(t[n])
        diff = (outs[n][0].float() - outs["tuned"][0].float()).abs().max().item()
        print(f"| {layout_label} | {n} | {int(plans[n].work.num_items.item())} | {us:.1f} | "
              f"{100 * case.bytes / (us * 1e-6) / 1e9 / copy:.1f}% | {us / base:.3f} | {diff:.1e} |", flush=True)
    del case, plans, outs, calls
    torch.cuda.empty_cache()
# What bounds a wave here: the compiled kernels' registers and shared memory (this Triton, this GPU).
from attn.tune import compiled_kernels  # noqa: E402
props = torch.cuda.get_device_properties(0)
for k in compiled_kernels().values():
    md = k.metadata
    regs, smem, warps = int(getattr(k, "n_regs", 0) or 0), int(getattr(md, "shared", 0) or 0), int(md.num_warps)
    by_regs = 65536 // max(-(-regs * 32 // 256) * 256 * warps, 1)     # registers are allocated 256 a warp
    by_smem = props.shared_memory_per_multiprocessor // max(smem, 1)
    print(f"{md.name}: {regs} registers, {smem} B shared, {warps} warps -> {min(by_regs, by_smem, 64 // warps)} "
          f"programs an SM (registers {by_regs}, shared memory {by_smem})")
