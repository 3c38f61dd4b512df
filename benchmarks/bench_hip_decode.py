#!/usr/bin/env python
"""Benchmark the HIP paged decode against the Triton decode and the measured copy bandwidth.

    python benchmarks/bench_hip_decode.py                       # issue 6 shapes, HND, page 16, bf16
    python benchmarks/bench_hip_decode.py --layout vllm --splits 1,4,8

Prints per shape: time (median, triton.testing.do_bench), achieved GB/s over the K/V bytes read,
and the fraction of the measured device copy bandwidth; a correctness check against the float32
reference precedes each timing.
"""
from __future__ import annotations

import argparse
import os

import torch
import triton

import attn
from attn.layouts import KVCache

try:
    from attn.hip import backend as hb
except ModuleNotFoundError:       # editable install: see tests/test_hip.py
    attn.__path__.append(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
    from attn.hip import backend as hb


def copy_bandwidth() -> float:
    x = torch.empty(1 << 30, dtype=torch.uint8, device="cuda")
    y = torch.empty_like(x)
    ms = triton.testing.do_bench(lambda: y.copy_(x), warmup=25, rep=200)
    return 2 * x.numel() / (ms * 1e-3) / 1e9


def make(batch, seq, layout, ps, kv_heads, q_heads, d, dtype):
    pages = batch * (seq // ps)
    from attn.layouts.descriptors import get_layout
    lay = get_layout(layout)
    k = torch.randn(lay.shape("k", pages, ps, kv_heads, d, dtype), dtype=dtype, device="cuda")
    v = torch.randn(lay.shape("v", pages, ps, kv_heads, d, dtype), dtype=dtype, device="cuda")
    perm = torch.randperm(pages, device="cuda").to(torch.int32)
    indptr = torch.arange(batch + 1, dtype=torch.int32, device="cuda") * (seq // ps)
    lens = torch.full((batch,), seq, dtype=torch.int32, device="cuda")
    kv = KVCache.paged(k, v, indptr, perm, lens, layout=layout)
    q = torch.randn(batch, q_heads, d, dtype=dtype, device="cuda")
    return q, kv


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--shapes", default="64x4096,8x32768,1x131072,128x1024")
    ap.add_argument("--layout", default="HND")
    ap.add_argument("--page-size", type=int, default=16)
    ap.add_argument("--heads", default="32,8", help="q_heads,kv_heads")
    ap.add_argument("--head-dim", type=int, default=128)
    ap.add_argument("--dtype", default="bf16")
    ap.add_argument("--splits", default="auto", help="comma list of num_splits, or auto")
    a = ap.parse_args()
    dtype = {"bf16": torch.bfloat16, "fp16": torch.float16}[a.dtype]
    qh, kh = (int(x) for x in a.heads.split(","))
    ok, why = hb.status()
    print(f"device: {torch.cuda.get_device_name()}  hip backend: {ok} ({why})")
    bw = copy_bandwidth()
    print(f"measured copy bandwidth: {bw:.0f} GB/s")
    print(f"{'shape':>12} {'backend':>14} {'splits':>6} {'us':>9} {'GB/s':>8} {'of copy':>8}")
    for shape in a.shapes.split(","):
        b, s = (int(x) for x in shape.split("x"))
        q, kv = make(b, s, a.layout, a.page_size, kh, qh, a.head_dim, dtype)
        nbytes = 2 * b * s * kh * a.head_dim * q.element_size() + q.numel() * q.element_size() * 2
        # correctness on the first two sequences (the reference is slow for the full batch)
        small = KVCache.paged(kv.k, kv.v, kv.page_indptr[:3], kv.page_indices, kv.seq_lens[:2], layout=a.layout)
        want = attn.reference.decode(q[:2], small)
        got = attn.decode(q[:2], small, backend="hip")
        err = float((got.float() - want.float()).norm() / want.float().norm())
        splits = [None] if a.splits == "auto" else [int(x) for x in a.splits.split(",")]
        runs = [("hip", sp, lambda sp=sp, p=hb.plan(kv, qh, num_splits=sp, max_seq_len=s): hb.run(p, q, kv))
                for sp in splits]
        try:
            attn.decode(q[:2], small, backend="triton")
            runs.append(("triton", None, lambda: attn.decode(q, kv, backend="triton")))
        except Exception as e:
            print(f"  (triton decode unavailable: {str(e)[:80]})")
        for name, sp, fn in runs:
            ms = triton.testing.do_bench(fn, warmup=25, rep=200)
            gbs = nbytes / (ms * 1e-3) / 1e9
            spn = sp if sp is not None else "auto"
            print(f"{shape:>12} {name:>14} {spn!s:>6} {ms * 1e3:9.1f} {gbs:8.0f} {gbs / bw:8.1%}"
                  + (f"  rel_err={err:.1e}" if name == "hip" else ""))


if __name__ == "__main__":
    main()
