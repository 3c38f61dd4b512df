"""Issue 5: the fused rotary cache write over vLLM's layout (77-78% of copy) against HND / NHD
(83-86%), one launch of each under ncu (the bench's 8192-token case: q rotated, k rotated and
v written into a page-16 cache at shuffled pages).

    ncu -k regex:_rotary_kernel -s 2 -c 1 ... python ncu_write.py LAYOUT
    python ncu_write.py LAYOUT time       # graph-free eager medians, a sanity check"""
import sys

import torch

from attn import benchutil as bu
from attn.tune import RotaryCase
from attn.triton_kernels.rotary import rotary as launch

layout = sys.argv[1]
gen = torch.Generator("cuda").manual_seed(0)
rc = RotaryCase(8192, gen=gen)
kv = bu.make_kv([8192], layout=layout, page_size=16, gen=gen, device="cuda", dtype=rc.q.dtype)
t = torch.arange(8192, device="cuda")
slots = kv.page_indices.long()[t // 16] * 16 + t % 16
v = torch.randn(rc.ks[0].shape, device="cuda", generator=gen).to(rc.q.dtype)
qo = torch.empty_like(rc.q)


def call():
    launch(rc.q, rc.ks[0], qo, None, rc.cache, 128, True, positions=rc.pos, kv=kv, v=v, slot_mapping=slots)


for _ in range(3):
    call()
torch.cuda.synchronize()
if len(sys.argv) > 2:
    import triton.testing
    ms = triton.testing.do_bench(call, warmup=20, rep=200)
    print(f"{layout}: {ms * 1e3:.1f} us")
