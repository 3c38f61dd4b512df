"""Which part of 2e09351 (split decode tiles + 3 stages) failed on the bench's mixed batch?
Runs its kernel (triton_kernels/prefill_hopper_split3.py, untracked: `git show
2e09351:triton_kernels/prefill_hopper.py`) at `stages` on that batch: 20 eager runs (each checked
against the reference), then 200 graph replays. Usage: python split3_diag.py STAGES"""
import functools
import importlib
import sys

import torch

import attn
from attn import bench
from attn import benchutil as bu
from attn.triton_kernels import prefill_hopper as H

stages = int(sys.argv[1])
H.launch = functools.partial(importlib.import_module("attn.triton_kernels.prefill_hopper_split3").launch,
                             stages=stages)
gen = torch.Generator(device="cuda")
gen.manual_seed(0)
(kv, q, qip, *_), _, _ = bench._mixed_batch(gen, 64, [512, 1024, 2048, 768])
ref = attn.reference.prefill(q, kv, qip)
m = attn.BatchAttention(max_tokens=int(qip[-1]), max_batch=kv.batch_size).plan(qip, kv, q.shape[1])
out = torch.empty_like(q)
errs = []
for _ in range(20):
    errs.append(bu.rel_err(m.run(q, kv, out=out), ref))
print(f"stages {stages}: 20 eager runs, rel err max {max(errs):.1e}", flush=True)
g = torch.cuda.CUDAGraph()
with torch.cuda.graph(g):
    m.run(q, kv, out=out)
for _ in range(200):
    g.replay()
torch.cuda.synchronize()
print(f"stages {stages}: 200 graph replays, rel err {bu.rel_err(out, ref):.1e}", flush=True)
