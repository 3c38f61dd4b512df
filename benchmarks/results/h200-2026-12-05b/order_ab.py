"""Tiles in snake order (prefill_hopper) vs in order (the same file with t = rnd * programs + pid),
side by side in one run, alternating, on issue 3's shapes (bf16, 32 q / 8 kv heads, d 128, causal)."""
import importlib
import numpy as np
import torch
import triton
from attn.layouts import KVCache
from attn.scheduling import WorkList
from attn.triton_kernels.prefill import ordered_items

mods = {"snake": importlib.import_module("attn.triton_kernels.prefill_hopper"),
        "inorder": importlib.import_module("attn.triton_kernels.prefill_hopper_inorder")}
dev, dt, HQ, HK, D = "cuda", torch.bfloat16, 32, 8, 128
for b, n in [(16, 512), (8, 2048), (1, 16384), (16, 512)]:
    kr = torch.randn(b * n, HK, D, dtype=dt, device=dev)
    qi = torch.arange(0, b + 1, device=dev, dtype=torch.int32) * n
    kv = KVCache.ragged(kr, torch.randn_like(kr), qi.clone())
    q = torch.randn(b * n, HQ, D, dtype=dt, device=dev)
    flops = 4 * b * n * n * HQ * D / 2
    work = WorkList.build(ordered_items(np.full(b, n), np.full(b, n), 128, True, -1), dev)
    line = f"b={b} n={n}:"
    for rep in range(2):
        for name, m in mods.items():
            got = torch.empty_like(q)
            for cache in (True, False):
                f = lambda: m.launch(q, kv, qi, work, got, None, causal=True, sm_scale=D ** -0.5)  # noqa: E731
                if cache:
                    t = triton.testing.do_bench(f, warmup=25, rep=150, return_mode="median")
                    line += f" {name} {flops / t / 1e9:.0f}"
                else:
                    # warm L2 (no flush between launches): CUDA-graph-free back-to-back launches
                    f(); torch.cuda.synchronize()
                    s, e = torch.cuda.Event(True), torch.cuda.Event(True)
                    s.record()
                    for _ in range(50):
                        f()
                    e.record(); torch.cuda.synchronize()
                    line += f" (warm {flops / (s.elapsed_time(e) / 50) / 1e9:.0f})"
    print(line, flush=True)
