"""Split-KV decode, BatchDecode's merge one way against the other: `python merge_ab.py KEY` plans
every layout and shape twice, with kernel_config {KEY: True} and {KEY: False} (fuse_merge: the
merge fused into the attention launch, on exp/fused-merge; pdl: the merge launched
programmatically dependent, on exp/pdl-merge), on the same inputs, alternated in rounds
(graph-timed), outputs compared. Prints a table: time, % of copy bandwidth, ratio."""
import statistics
import sys

import torch

import attn
import attn.platform
from attn import benchutil as bu
from attn.tune import mixed_lengths

key = sys.argv[1]
gen = torch.Generator("cuda").manual_seed(0)
copy = bu.copy_gbs()
l2 = bu.l2_bytes()
shapes = [("b=64 x 4096", [4096] * 64), ("b=8 x 32768", [32768] * 8), ("b=256 x 1024", [1024] * 256),
          ("b=1 x 131072", [131072]), ("b=32 mixed 16..16384", mixed_lengths())]
print(f"copy {copy:.0f} GB/s  torch {torch.__version__}", flush=True)
print(f"| shape | layout | {key} on (us) | % copy | {key} off (us) | % copy | on / off | max |diff| |")
print("|---|---|---:|---:|---:|---:|---:|---:|")
for label, lens in shapes:
    per = sum(lens) * 8 * 128 * 2 * 2
    for layout, ps in (("HND", 16), ("NHD", 16), ("vllm", 16), ("pool", 1)):
        case = bu.decode_case(lens, layout=layout, page_size=ps, n_sets=bu.sets_for(per, l2), gen=gen)
        b = len(lens)
        runs, outs = {}, {}
        for on in (True, False):
            plan = attn.BatchDecode(max_batch=b, kernel_config={key: on}).plan(case.kv, q_heads=32)
            o = [torch.empty_like(x) for x in case.qs]
            runs[on] = [(lambda i=i, p=plan, o=o, c=case: p.run(c.qs[i], c.kvs[i], out=o[i])) for i in range(len(case.qs))]
            outs[on] = o
        t = {True: [], False: []}
        for _ in range(3):
            for on in (True, False):
                t[on].append(bu.gpu_time(runs[on])[0] * 1e3)
        for on in (True, False):
            runs[on][0]()
        torch.cuda.synchronize()
        diff = (outs[True][0].float() - outs[False][0].float()).abs().max().item()
        ft, lt = statistics.median(t[True]), statistics.median(t[False])
        gbs = lambda us, n=case.bytes: n / (us * 1e-6) / 1e9  # noqa: E731
        print(f"| {label} | {layout} ps={ps} | {ft:.1f} | {100 * gbs(ft) / copy:.0f}% | {lt:.1f} | "
              f"{100 * gbs(lt) / copy:.0f}% | {ft / lt:.3f} | {diff:.1e} |", flush=True)
        del case, runs, outs
        torch.cuda.empty_cache()
print("pdl available:", attn.platform.pdl_supported(attn.platform.get()) if hasattr(attn.platform, "pdl_supported")
      else "no (not this tree)")
