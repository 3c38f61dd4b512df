"""Rotary embedding: standalone (attn.rotary.apply) and fused with the KV cache write
(attn.rotary.apply_and_write_kv), against separate torch ops and the peers installed here.

Reports GPU time (triton.testing.do_bench, median), bytes moved / time, and the fraction of the
copy bandwidth measured in this run (a large device-to-device copy, read + write bytes counted).
For the decode-step shape (64 tokens, launch-bound) it also reports the time per launch replayed
from a CUDA graph (no Python) and the host wall time per eager call. Last, while the run is under
--sweep-budget seconds, the kernel alone at the largest token count with launch shapes other than
the default (SWEEP), beside the default. About 40-60 s on an H100.

    python benchmarks/bench_rotary.py --out benchmarks/results/rotary_H100.md
"""
from __future__ import annotations

import argparse
import time

import torch
import triton
import triton.testing

import attn
from attn import benchutil as bu
from attn.layouts import KVCache, get_layout, write_kv

HQ, HK, D = 32, 8, 128


def bench(fn, reps=200):
    return triton.testing.do_bench(fn, warmup=25, rep=reps, return_mode="median") * 1e-3   # seconds


def copy_bandwidth(nbytes=2 << 30):
    """Bytes/s of an nbytes device-to-device copy, read + write (attn.benchutil.copy_gbs)."""
    return bu.copy_gbs(nbytes=nbytes) * 1e9


def graph_latency(fn, iters=1000):
    """Seconds per launch replayed from a CUDA graph holding `iters` calls (launch overhead included,
    Python excluded)."""
    s = torch.cuda.Stream()
    s.wait_stream(torch.cuda.current_stream())
    with torch.cuda.stream(s):
        for _ in range(3):
            fn()
    torch.cuda.current_stream().wait_stream(s)
    g = torch.cuda.CUDAGraph()
    with torch.cuda.graph(g):
        for _ in range(iters):
            fn()
    g.replay()
    torch.cuda.synchronize()
    start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
    start.record()
    g.replay()
    end.record()
    torch.cuda.synchronize()
    return start.elapsed_time(end) * 1e-3 / iters


def host_latency(fn, iters=300):
    for _ in range(10):
        fn()
    torch.cuda.synchronize()
    t0 = time.perf_counter()
    for _ in range(iters):
        fn()
    torch.cuda.synchronize()
    return (time.perf_counter() - t0) / iters


# ------------------------------------------------------------------------------------ baselines

def torch_rotary(q, k, positions, cache, out_q=None):
    """What a model does without a kernel: gather cos/sin, rotate_half, in the activations' dtype."""
    cs = cache[positions.long()].to(q.dtype)
    cos, sin = cs.chunk(2, dim=-1)
    cos = torch.cat([cos, cos], -1)[:, None]
    sin = torch.cat([sin, sin], -1)[:, None]

    def rot_half(x):
        x1, x2 = x.chunk(2, dim=-1)
        return torch.cat([-x2, x1], -1)
    return q * cos + rot_half(q) * sin, k * cos + rot_half(k) * sin


def peers(q, k, positions, cache):
    """name -> callable for rotary kernels of other libraries importable here (neox style)."""
    out = {}
    n = q.shape[0]
    try:
        import flashinfer
        qf, kf = q.reshape(n, -1).clone(), k.reshape(n, -1).clone()
        out["flashinfer apply_rope_with_cos_sin_cache_inplace"] = lambda: \
            flashinfer.rope.apply_rope_with_cos_sin_cache_inplace(positions.long(), qf, kf, D, cache, True)
    except Exception:
        pass
    try:
        from vllm import _custom_ops as vops
        qv, kv_ = q.reshape(n, -1).clone(), k.reshape(n, -1).clone()
        pl = positions.long()
        out["vllm rotary_embedding (in place)"] = lambda: vops.rotary_embedding(pl, qv, kv_, D, cache, True)
    except Exception:
        pass
    return out


# ------------------------------------------------------------------------------------ cases

def make_cache(layout, n_tokens, dtype, page_size=16):
    """A cache with room for every new token in shuffled pages, and the slot mapping."""
    lay = get_layout(layout)
    ps = page_size if lay.paged else 1
    n_pages = triton.cdiv(n_tokens, ps) + 8
    kc = torch.empty(lay.shape("k", n_pages, ps, HK, D, dtype), dtype=dtype, device="cuda")
    vc = torch.empty(lay.shape("v", n_pages, ps, HK, D, dtype), dtype=dtype, device="cuda")
    perm = torch.randperm(n_pages, device="cuda").to(torch.int32)
    need = triton.cdiv(n_tokens, ps)
    indptr = torch.tensor([0, need], dtype=torch.int32, device="cuda")
    lens = torch.tensor([n_tokens], dtype=torch.int32, device="cuda")
    if lay.paged:
        kv = KVCache.paged(kc, vc, indptr, perm[:need], lens, layout=lay)
    else:
        kv = KVCache.token_pool(kc, vc, torch.tensor([0, n_tokens], dtype=torch.int32, device="cuda"),
                                perm[:n_tokens])
    t = torch.arange(n_tokens, device="cuda")
    slots = (perm[: need].long()[t // ps] * ps + t % ps).to(torch.int64)
    return kv, slots


# Launch-shape alternatives to the vendor default (triton_kernels/rotary.py _CONFIGS), timed at the
# largest token count: the kernel alone (outputs preallocated), so the rows compare tile shapes only.
SWEEP = (
    ("apply neox", None, dict(tile=4096, num_warps=4, max_heads=8)),
    ("apply neox", None, dict(tile=16384, num_warps=8)),
    ("apply neox", None, dict(tile=8192, num_warps=4)),
    ("apply_and_write_kv NHD", "NHD", dict(tile=16384, write_num_warps=8)),
    ("apply_and_write_kv HND", "HND", dict(run_tokens=8)),
    ("apply_and_write_kv HND", "HND", dict(tile=16384, write_num_warps=8)),
    ("apply_and_write_kv vllm", "vllm", dict(slot_run_tokens=8)),
    ("apply_and_write_kv vllm", "vllm", dict(tile=16384, write_num_warps=8)),
    ("apply_and_write_kv NHD", "NHD", dict(write_num_warps=4)),
    ("apply_and_write_kv NHD", "NHD", dict(tile=4096)),
    ("apply_and_write_kv HND", "HND", dict(write_num_warps=4)),
    ("apply_and_write_kv HND", "HND", dict(tile=4096)),
    ("apply_and_write_kv HND", "HND", dict(run_tokens=16, tile=16384)),
    ("apply_and_write_kv vllm", "vllm", dict(write_num_warps=4)),
)


def sweep(args, dtype, cache, row, t_start):
    from attn.platform import for_tensor
    from attn.triton_kernels import rotary as K
    n = max(args.tokens)
    el = torch.empty((), dtype=dtype).element_size()
    q = torch.randn(n, HQ, D, dtype=dtype, device="cuda")
    k = torch.randn(n, HK, D, dtype=dtype, device="cuda")
    v = torch.randn(n, HK, D, dtype=dtype, device="cuda")
    qo, ko = torch.empty_like(q), torch.empty_like(k)
    pos = torch.randint(0, args.max_position, (n,), device="cuda", dtype=torch.int32)
    side = n * 4 + n * D * cache.element_size()
    plat = for_tensor(q)
    for op, layout, over in (("apply neox", None, {}),) + SWEEP + tuple(
            (f"apply_and_write_kv {lay}", lay, {}) for lay in args.layouts):
        if time.perf_counter() - t_start > args.sweep_budget:
            print("sweep stopped: time budget")
            break
        label = "kernel only, " + (", ".join(f"{a}={b}" for a, b in over.items()) or "default config")
        if layout is None:
            cfg = K.launch_config(n, HQ, HK, D, plat.vendor, plat.num_sms, overrides=tuple(over.items()))
            f = lambda: K.rotary(q, k, qo, ko, cache, D, True, positions=pos, config=cfg)   # noqa: E731
            nbytes = 2 * n * (HQ + HK) * D * el + side
        else:
            kv, slots = make_cache(layout, n, dtype)
            ks, vs = kv.k_strides, kv.v_strides
            cfg = K.launch_config(n, HQ, HK, D, plat.vendor, plat.num_sms, True,
                                  ks.slot < ks.head or vs.slot < vs.head, kv.page_size, tuple(over.items()))
            f = lambda: K.rotary(q, k, qo, None, cache, D, True, positions=pos, kv=kv, v=v,  # noqa: E731
                                 slot_mapping=slots, config=cfg)
            nbytes = 2 * n * HQ * D * el + 4 * n * HK * D * el + side + n * 8
        try:
            row(op, n, f"{label} {cfg}", bench(f), nbytes, 1)
        except Exception as e:   # noqa: BLE001
            print(f"sweep {op} {over} skipped: {type(e).__name__}: {e}")


def fused_into_attention(cache, row_fused, rounds=3):
    """Rotary fused into attention (q rotated on load, attn.Rotary): the same plan with and without
    it, prefill b=8 x 2048 (ragged, causal) and decode b=64 x 4096 (HND, page 16), bf16. Timed
    alternately (graph replays, attn.benchutil.gpu_time) over `rounds` rounds; medians compared."""
    import statistics
    rot = attn.Rotary(cache, style="neox")
    dt = torch.bfloat16
    cases = []
    kv = bu.make_kv([2048] * 8, layout="ragged", page_size=1, kv_heads=HK, head_dim=D, dtype=dt)
    qi = torch.arange(0, 8 * 2048 + 1, 2048, dtype=torch.int32, device="cuda")
    q = torch.randn(8 * 2048, HQ, D, dtype=dt, device="cuda")
    out = torch.empty_like(q)
    plans = [attn.BatchPrefill(max_tokens=q.shape[0], max_batch=8, num_q_heads=HQ).plan(qi, kv, rotary=r)
             for r in (None, rot)]
    cases.append(("prefill b=8 x 2048", [lambda p=p: p.run(q, kv, out=out) for p in plans]))
    kvd = bu.make_kv([4096] * 64, layout="HND", page_size=16, kv_heads=HK, head_dim=D, dtype=dt)
    qd = torch.randn(64, HQ, D, dtype=dt, device="cuda")
    outd = torch.empty_like(qd)
    dplans = [attn.BatchDecode(max_batch=64).plan(kvd, HQ, rotary=r) for r in (None, rot)]
    cases.append(("decode b=64 x 4096", [lambda p=p: p.run(qd, kvd, out=outd) for p in dplans]))
    for label, (plain, fused) in cases:
        tp, tf = [], []
        for _ in range(rounds):
            tp.append(bu.gpu_time([plain])[0])
            tf.append(bu.gpu_time([fused])[0])
        mp, mf = statistics.median(tp), statistics.median(tf)
        row_fused(label, mp, mf)


def run(args):
    t_start = time.perf_counter()
    dev = torch.cuda.get_device_name()
    dtype = getattr(torch, args.dtype)
    el = torch.empty((), dtype=dtype).element_size()
    bw = copy_bandwidth()
    rows = []

    def row(op, n, impl, sec, nbytes, launches="", graph=None, host=None):
        rows.append(dict(op=op, tokens=n, impl=impl, us=sec * 1e6, gbs=nbytes / sec / 1e9, frac=nbytes / sec / bw,
                         launches=launches, graph=None if graph is None else graph * 1e6,
                         host=None if host is None else host * 1e6))

    cache = attn.rotary.cos_sin_cache(args.max_position, D, base=500000.0, device="cuda")
    for n in args.tokens:
        q = torch.randn(n, HQ, D, dtype=dtype, device="cuda")
        k = torch.randn(n, HK, D, dtype=dtype, device="cuda")
        v = torch.randn(n, HK, D, dtype=dtype, device="cuda")
        pos = torch.randint(0, args.max_position, (n,), device="cuda", dtype=torch.int32)
        side = n * 4 + n * D * cache.element_size()             # positions + the cos/sin rows read
        rot_bytes = 2 * n * (HQ + HK) * D * el + side            # q, k read once and written once
        small = n <= 256

        for style in ("neox", "gptj"):
            f = lambda: attn.rotary.apply(q, k, pos, cache, style=style)              # noqa: E731
            fi = lambda: attn.rotary.apply(q, k, pos, cache, style=style, inplace=True)  # noqa: E731
            row(f"apply {style}", n, "attn triton", bench(f), rot_bytes, 1,
                graph_latency(f) if small else None, host_latency(f) if small else None)
            row(f"apply {style} inplace", n, "attn triton", bench(fi), rot_bytes, 1,
                graph_latency(fi) if small else None, host_latency(fi) if small else None)
        row("apply neox", n, "torch eager ops", bench(lambda: torch_rotary(q, k, pos, cache)), rot_bytes, "many")
        try:
            comp = torch.compile(torch_rotary, dynamic=False)
            comp(q, k, pos, cache)
            row("apply neox", n, "torch.compile", bench(lambda: comp(q, k, pos, cache)), rot_bytes, "1-2")
        except Exception as e:       # noqa: BLE001
            print(f"torch.compile baseline skipped: {type(e).__name__}: {e}")
        for name, fn in peers(q, k, pos, cache).items():
            try:
                row("apply neox inplace", n, name, bench(fn), rot_bytes, 1)
            except Exception as e:   # noqa: BLE001
                print(f"peer {name} skipped: {type(e).__name__}: {e}")

        # q read+written, k and v read, k and v written into the cache, slots.
        fused_bytes = 2 * n * HQ * D * el + 4 * n * HK * D * el + side + n * 8
        for layout in args.layouts:
            kv, slots = make_cache(layout, n, dtype)
            f = lambda: attn.rotary.apply_and_write_kv(q, k, v, pos, cache, kv, slots)  # noqa: E731
            row(f"apply_and_write_kv {layout}", n, "attn triton (fused)", bench(f), fused_bytes, 1,
                graph_latency(f) if small else None, host_latency(f) if small else None)

            def separate():
                qo, ko = attn.rotary.apply(q, k, pos, cache)
                write_kv(kv, ko, v, slots, backend="triton")
            row(f"apply_and_write_kv {layout}", n, "attn apply + write_kv (2 launches)", bench(separate),
                fused_bytes, 2)

            def torch_sep():
                qo, ko = torch_rotary(q, k, pos, cache)
                write_kv(kv, ko, v, slots, backend="torch")
            row(f"apply_and_write_kv {layout}", n, "torch ops + torch write", bench(torch_sep), fused_bytes, "many")

    fused_rows = []
    if args.attention:
        fused_into_attention(cache, lambda label, mp, mf: fused_rows.append((label, mp, mf)))
    if args.sweep and time.perf_counter() - t_start < args.sweep_budget:
        sweep(args, dtype, cache, row, t_start)

    lines = [f"# rotary on {dev}", "",
             f"dtype {args.dtype}, q_heads {HQ}, kv_heads {HK}, head_dim {D}; measured copy bandwidth "
             f"{bw / 1e9:.0f} GB/s (device-to-device copy of 2 GiB, read + write bytes). Times: do_bench median "
             "GPU time; graph: per launch replayed from a CUDA graph; host: eager wall time per call.", "",
             "| op | tokens | impl | launches | time (us) | GB/s | of copy BW | graph (us) | host (us) |",
             "|---|---:|---|---:|---:|---:|---:|---:|---:|"]
    for r in rows:
        g = "" if r["graph"] is None else f"{r['graph']:.2f}"
        h = "" if r["host"] is None else f"{r['host']:.1f}"
        lines.append(f"| {r['op']} | {r['tokens']} | {r['impl']} | {r['launches']} | {r['us']:.2f} | "
                     f"{r['gbs']:.0f} | {100 * r['frac']:.1f}% | {g} | {h} |")
    if fused_rows:
        lines += ["", "Rotary fused into attention (q rotated on load; median of alternating graph-timed rounds):", "",
                  "| attention | without rotary (us) | with fused rotary (us) | overhead |", "|---|---:|---:|---:|"]
        for label, mp, mf in fused_rows:
            lines.append(f"| {label} | {mp * 1e3:.1f} | {mf * 1e3:.1f} | {100 * (mf / mp - 1):+.1f}% |")
    text = "\n".join(lines) + "\n"
    print(text)
    if args.out:
        with open(args.out, "w") as fh:
            fh.write(text)
        print(f"wrote {args.out}")


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--tokens", type=int, nargs="+", default=[8192, 64])
    ap.add_argument("--dtype", default="bfloat16", choices=["bfloat16", "float16", "float32"])
    ap.add_argument("--layouts", nargs="+", default=["NHD", "HND", "vllm"])
    ap.add_argument("--max-position", type=int, default=32768)
    ap.add_argument("--out", default=None, help="write the markdown table here")
    ap.add_argument("--no-sweep", dest="sweep", action="store_false",
                    help="skip the launch-shape sweep at the largest token count")
    ap.add_argument("--sweep-budget", type=float, default=40.0,
                    help="seconds since start after which the sweep stops (keeps the run under a minute)")
    ap.add_argument("--no-attention", dest="attention", action="store_false",
                    help="skip the fused-into-attention overhead (prefill 8 x 2048, decode 64 x 4096)")
    args = ap.parse_args()
    if not torch.cuda.is_available():
        raise SystemExit("bench_rotary needs a GPU")
    run(args)


if __name__ == "__main__":
    main()
