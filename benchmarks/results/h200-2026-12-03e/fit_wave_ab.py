"""The mixed decode batch (32 lengths 16..16384) planned with the tuned config as it is and with
config fit_wave (chunks fitted to one wave of programs; exp/fit-wave), side by side on the same
inputs, alternated in rounds (graph-timed), outputs compared; each layout. Host-side planning
only: the kernel binaries are the same."""
import statistics

import torch

import attn
from attn import benchutil as bu
from attn.tune import mixed_lengths

gen = torch.Generator("cuda").manual_seed(0)
copy = bu.copy_gbs()
lens = mixed_lengths()
variants = {"tuned": {}, "fit_wave": dict(fit_wave=True), "fit_wave pps4": dict(fit_wave=True, programs_per_sm=4)}
print(f"copy {copy:.0f} GB/s  torch {torch.__version__}", flush=True)
print("| layout | variant | items | us | % copy | / tuned | max |diff| |")
print("|---|---|---:|---:|---:|---:|---:|")
for layout, ps in (("HND", 16), ("vllm", 16), ("NHD", 16), ("pool", 1)):
    case = bu.decode_case(lens, layout=layout, page_size=ps, n_sets=2, gen=gen)
    plans, outs, calls = {}, {}, {}
    for name, kc in variants.items():
        plans[name] = attn.BatchDecode(max_batch=len(lens), kernel_config=kc).plan(case.kv, q_heads=32)
        outs[name] = [torch.empty_like(x) for x in case.qs]
        calls[name] = [(lambda i=i, p=plans[name], o=outs[name]: p.run(case.qs[i], case.kvs[i], out=o[i]))
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
        print(f"| {layout} | {n} | {int(plans[n].work.num_items.item())} | {us:.1f} | "
              f"{100 * case.bytes / (us * 1e-6) / 1e9 / copy:.1f}% | {us / base:.3f} | {diff:.1e} |", flush=True)
    del case, plans, outs, calls
    torch.cuda.empty_cache()
