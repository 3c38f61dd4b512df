"""Issue 4: where the mixed decode batch (b=32, lengths 16..16384, HND page 16: 84-85% of copy,
every other shape 91-99%) loses its time. One plan/run of attn's BatchDecode (the tuned entry),
run three times; under ncu the attention and merge launches are profiled (waves per SM,
occupancy, DRAM throughput).

    ncu -k regex:attention_kernel -s 2 -c 1 ... python ncu_mixed.py mixed|uniform
    SMALL=1 TRITON_INTERPRET=1 python ncu_mixed.py mixed      # the script's own check"""
import os
import sys

import numpy as np
import torch

from attn import benchutil as bu
from attn.tune import mixed_lengths

SMALL = bool(os.environ.get("SMALL"))
dev = "cpu" if SMALL else "cuda"
lens = mixed_lengths() if sys.argv[1] == "mixed" else [4096] * 64
if SMALL:
    lens = [min(int(n), 64) for n in lens[:4]]
gen = torch.Generator(dev).manual_seed(0)
case = bu.decode_case(lens, layout="HND", page_size=16, device=dev, gen=gen)
run = bu.attn_runner(case)
for _ in range(3):
    out = run(0)()
if not SMALL:
    torch.cuda.synchronize()
print(sys.argv[1], "sequences", len(lens), "tokens", int(np.sum(lens)), "out", tuple(out[0].shape if isinstance(out, tuple)
                                                                                        else out.shape))
