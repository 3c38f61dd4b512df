"""vLLM cache write: whole-page stores (RUNS 2) against page runs (RUNS 1), same run, graph-timed."""
import torch
from attn import benchutil as bu
from attn.tune import RotaryCase
import attn.triton_kernels.rotary as R
gen = torch.Generator("cuda").manual_seed(0)
copy = bu.copy_gbs()
rc = RotaryCase(8192, n_sets=4, gen=gen)
sets = []
for i in range(rc.n_sets):
    kv = bu.make_kv([8192], layout="vllm", page_size=16, gen=gen, device="cuda", dtype=rc.q.dtype)
    t = torch.arange(8192, device="cuda")
    slots = kv.page_indices.long()[t // 16] * 16 + t % 16
    v = torch.randn(rc.ks[i].shape, device="cuda", generator=gen).to(rc.q.dtype)
    sets.append((kv, slots, v, torch.empty_like(rc.qs[i])))
work = 2.0 * 8192 * (32 + 16) * 128 * 2 + 8 * 8192
orig = R.dense_page_heads
for rnd in range(2):
    for name, flag in (("whole pages (RUNS 2)", True), ("page runs (RUNS 1)", False)):
        R.dense_page_heads = (lambda kv: orig(kv)) if flag else (lambda kv: False)
        calls = [(lambda i=i, s=s: R.rotary(rc.qs[i], rc.ks[i], s[3], None, rc.cache, 128, True, positions=rc.pos,
                                             kv=s[0], v=s[2], slot_mapping=s[1])) for i, s in enumerate(sets)]
        ms, mode = bu.gpu_time(calls)
        print(f"| round {rnd} | {name} | {ms*1e3:.1f} us | {work/ms/1e6/copy*100:.1f}% of copy |", flush=True)
