#!/usr/bin/env python
"""Benchmark the HIP paged decode against the Triton decode and the measured copy bandwidth.

    python benchmarks/bench_hip_decode.py                       # issue 6 shapes, HND, page 16, bf16
    python benchmarks/bench_hip_decode.py --layout vllm --splits 1,4,8 --out hip_decode.md

Both backends are timed the way a serving loop runs them: planned once (HIP: attn.hip.backend.plan;
Triton: attn.BatchDecode(...).plan), then run() calls captured in a CUDA graph and replayed; the
time is the best of a few replays divided by the calls in the graph. Each shape gets enough copies
of its K/V cache (own storage, same page map) that the calls of a graph, rotating over the copies,
read at least 4x the L2 cache (50 MB on an H100) between two reads of one copy: L2 serves nothing.

GB/s = bytes of K+V read (live tokens only; q, out and split partials are not counted) / time.
"of copy" = that / the device's copy bandwidth measured in the same run (a 2 GiB device-to-device
copy timed eagerly, read + write bytes: attn.benchutil.copy_gbs; captured in a graph it reads ~20%
lower on the H100). rel_err = ||out - ref|| / ||ref|| on the first sequences against attn's float32
reference. Runs in well under a minute on an H100.
"""
from __future__ import annotations

import argparse
import math
import time
from dataclasses import replace

import torch

import attn
from attn import benchutil as bu
from attn.hip import backend as hb                # editable installs: attn/__init__.py maps hip/
from attn.layouts import KVCache
from attn.layouts.descriptors import get_layout

L2_BYTES = 50 << 20


def graph_time(calls, iters: int) -> float:
    """Seconds per call: `iters` calls (calls[i % len(calls)]) captured in one CUDA graph, best of 5
    replays. Each callable runs once eagerly first (compiles, loads)."""
    for c in calls:
        c()
    torch.cuda.synchronize()
    s = torch.cuda.Stream()
    s.wait_stream(torch.cuda.current_stream())
    with torch.cuda.stream(s):
        for c in calls:
            c()
    torch.cuda.current_stream().wait_stream(s)
    g = torch.cuda.CUDAGraph()
    with torch.cuda.graph(g):
        for i in range(iters):
            calls[i % len(calls)]()
    g.replay()
    torch.cuda.synchronize()
    e0, e1 = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
    best = math.inf
    for _ in range(5):
        e0.record()
        g.replay()
        e1.record()
        torch.cuda.synchronize()
        best = min(best, e0.elapsed_time(e1) / 1e3 / iters)
    del g
    return best


def make(batch, seq, layout, ps, kv_heads, q_heads, d, dtype, copies):
    """`copies` caches with their own K/V storage and one shared page map (pages shuffled)."""
    pages = batch * (-(-seq // ps))
    lay = get_layout(layout)
    perm = torch.randperm(pages, device="cuda").to(torch.int32)
    indptr = torch.arange(batch + 1, dtype=torch.int32, device="cuda") * (-(-seq // ps))
    lens = torch.full((batch,), seq, dtype=torch.int32, device="cuda")
    kvs = []
    for _ in range(copies):
        k = torch.randn(lay.shape("k", pages, ps, kv_heads, d, dtype), dtype=dtype, device="cuda")
        v = torch.randn(lay.shape("v", pages, ps, kv_heads, d, dtype), dtype=dtype, device="cuda")
        kvs.append(KVCache.paged(k, v, indptr, perm, lens, layout=layout))
    q = torch.randn(batch, q_heads, d, dtype=dtype, device="cuda")
    return q, kvs


def rel_err(out, q, kv, n=2):
    n = min(n, q.shape[0])
    small = replace(kv, page_indptr=kv.page_indptr[:n + 1], seq_lens=kv.seq_lens[:n])
    want = attn.reference.decode(q[:n], small).float()
    return float((out[:n].float() - want).norm() / want.norm())


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--shapes", default="64x4096,8x32768,1x131072,128x1024", help="comma list of BATCHxLEN")
    ap.add_argument("--layout", default="HND")
    ap.add_argument("--page-size", type=int, default=16)
    ap.add_argument("--heads", default="32,8", help="q_heads,kv_heads")
    ap.add_argument("--head-dim", type=int, default=128)
    ap.add_argument("--dtype", default="bf16")
    ap.add_argument("--splits", default="auto", help="comma list of HIP num_splits, or auto")
    ap.add_argument("--no-triton", action="store_true", help="time the HIP kernel only")
    ap.add_argument("--iters", type=int, default=0, help="calls per graph (0: ~0.1 s of work per graph)")
    ap.add_argument("--out", help="also write the results as a Markdown table to this file")
    a = ap.parse_args()
    t_start = time.perf_counter()
    dtype = {"bf16": torch.bfloat16, "fp16": torch.float16}[a.dtype]
    qh, kh = (int(x) for x in a.heads.split(","))
    ok, why = hb.status()
    dev = torch.cuda.get_device_name()
    print(f"device: {dev}  hip backend: {ok} ({why})")
    bw = bu.copy_gbs(nbytes=2 << 30)
    print(f"measured copy bandwidth (2 GiB D2D, read + write): {bw:.0f} GB/s")
    head = f"{'shape':>12} {'backend':>8} {'splits':>6} {'us':>9} {'GB/s':>8} {'of copy':>8} {'rel_err':>8}"
    print(head)
    rows = []
    for shape in a.shapes.split(","):
        b, s = (int(x) for x in shape.split("x"))
        nbytes = 2 * b * s * kh * a.head_dim * torch.tensor([], dtype=dtype).element_size()
        copies = max(1, min(16, -(-4 * L2_BYTES // nbytes)))
        q, kvs = make(b, s, a.layout, a.page_size, kh, qh, a.head_dim, dtype, copies)
        iters = a.iters or max(copies, min(200, int(0.1 / (nbytes / (0.8 * bw * 1e9)))))
        iters = -(-iters // copies) * copies
        out = torch.empty_like(q)
        runs = []
        splits = [None] if a.splits == "auto" else [int(x) for x in a.splits.split(",")]
        for sp in splits:
            p = hb.plan(kvs[0], qh, num_splits=sp, max_seq_len=s)
            calls = [lambda kv=kv, p=p: hb.run(p, q, kv, out=out) for kv in kvs]
            runs.append(("hip", p.num_splits, calls))
        if not a.no_triton:
            try:
                decs = [attn.BatchDecode(max_batch=b).plan(kv, q_heads=qh) for kv in kvs]
                calls = [lambda kv=kv, d=d: d.run(q, kv, out=out) for kv, d in zip(kvs, decs)]
                runs.append(("triton", "auto", calls))
            except Exception as e:  # noqa: BLE001 - report, keep timing the HIP kernel
                print(f"  (triton decode unavailable: {type(e).__name__}: {str(e)[:100]})")
        for name, sp, calls in runs:
            out.fill_(float("nan"))
            t = graph_time(calls, iters)
            err = rel_err(out, q, kvs[(iters - 1) % copies])
            gbs = nbytes / t / 1e9
            row = dict(shape=shape, backend=name, splits=sp, us=t * 1e6, gbs=gbs, frac=gbs / bw, err=err)
            rows.append(row)
            print(f"{shape:>12} {name:>8} {sp!s:>6} {t * 1e6:9.1f} {gbs:8.0f} {gbs / bw:8.1%} {err:8.1e}")
        runs = kvs = calls = decs = p = None     # free this shape's caches before the next one
        torch.cuda.empty_cache()
    took = time.perf_counter() - t_start
    print(f"total {took:.0f} s")
    if a.out:
        lines = [f"# HIP paged decode vs Triton decode ({dev})", "",
                 f"Layout {a.layout}, page_size {a.page_size}, {a.dtype}, {qh} q heads / {kh} kv heads, "
                 f"head_dim {a.head_dim}. Both backends through plan/run in a CUDA graph, K/V copies rotated "
                 f"past L2. GB/s = K+V bytes read / time; copy bandwidth {bw:.0f} GB/s (2 GiB D2D copy, "
                 f"read + write, same run). Command: `python benchmarks/bench_hip_decode.py "
                 f"--shapes {a.shapes} --layout {a.layout} --page-size {a.page_size}`", "",
                 "| shape (b x len) | backend | splits | time (us) | GB/s | of copy | rel_err |",
                 "|---|---|---|---|---|---|---|"]
        for r in rows:
            lines.append(f"| {r['shape']} | {r['backend']} | {r['splits']} | {r['us']:.1f} | {r['gbs']:.0f} | "
                         f"{r['frac']:.1%} | {r['err']:.1e} |")
        with open(a.out, "w") as f:
            f.write("\n".join(lines) + "\n")
        print(f"wrote {a.out}")


if __name__ == "__main__":
    main()
