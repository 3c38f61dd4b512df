"""Is BatchAttention's mixed batch slow because the decode stream pushes the prefill tiles' K/V
out of L2? (issue 9; NOTES, BatchAttention open item 4).

The mixed batch's decode half alone runs at the HBM's pace (~399 us) and its prefill half alone in
~129 us, yet together they take ~487 us. The prefill tiles read each (request, kv head)'s K/V once
a query tile: ~425 MB if nothing stayed in L2 (17.8 MB of K/V), ~30 us of HBM time for every 100 MB
re-read. This probe lays the cache out so that all prefill K/V is one address range (V's prefill
pages, then K's: decode pages sit in alternate bands of ids so that no K page aliases a V page) and
times the batch with that range marked persisting in L2 (a stream access-policy window, CUDA driver
API) against none. `ncu` mode runs each kernel once for Nsight Compute (DRAM bytes, L2 hit rate).
`orders` mode: each program's units in the order longest-first assignment gave them out (largest
first, so equal-cost units of all programs run at about the same time: the GQA heads and q tiles
that share a request's K/V read it together) against request order, on bench's batches.
Usage: python l2_probe.py [ncu | orders]"""
import ctypes
import sys

import numpy as np
import torch

import attn
from attn import benchutil as bu

cuda = ctypes.CDLL("libcuda.so.1") if torch.cuda.is_available() else None


class Window(ctypes.Structure):
    _fields_ = [("base_ptr", ctypes.c_void_p), ("num_bytes", ctypes.c_size_t), ("hitRatio", ctypes.c_float),
                ("hitProp", ctypes.c_int), ("missProp", ctypes.c_int)]


class AttrValue(ctypes.Union):
    _fields_ = [("window", Window), ("pad", ctypes.c_char * 64)]


def check(rc, what):
    if rc != 0:
        raise RuntimeError(f"{what}: CUresult {rc}")


def device_attr(code):
    v = ctypes.c_int()
    check(cuda.cuDeviceGetAttribute(ctypes.byref(v), code, torch.cuda.current_device()), f"attr {code}")
    return v.value


def set_window(base=0, nbytes=0):
    """Mark [base, base + nbytes) persisting in L2 for kernels on the current stream (0: none)."""
    val = AttrValue()
    val.window = Window(base, nbytes, 1.0, 2 if nbytes else 0, 1 if nbytes else 0)   # PERSISTING, STREAMING
    check(cuda.cuStreamSetAttribute(ctypes.c_void_p(torch.cuda.current_stream().cuda_stream), 1,
                                    ctypes.byref(val)), "cuStreamSetAttribute")
    check(cuda.cuCtxResetPersistingL2Cache(), "cuCtxResetPersistingL2Cache")


def banded_batch(gen, n_dec, pre, lo=1024, hi=8192, ps=16, hkv=8, hq=32, d=128):
    """bench._mixed_batch's batch with all prefill K/V in one range: V id i at buf[i], K id i at
    buf[B + i] (B: prefill pages), prefill ids [0, B) (so V's then K's prefill pages fill
    buf[0, 2B)), decode ids in the bands [2mB, (2m+1)B), m >= 1 (K id i - B, its alias, unused)."""
    dec = torch.randint(lo, hi + 1, (n_dec,), generator=gen, device="cuda").tolist()
    q_lens, kv_lens = [1] * n_dec + list(pre), dec + list(pre)
    need = [(n + ps - 1) // ps for n in kv_lens]
    B, P_dec = sum(need[n_dec:]), sum(need[:n_dec])
    bands = -(-P_dec // B)
    dec_ids = np.concatenate([np.arange(2 * m * B, (2 * m + 1) * B) for m in range(1, bands + 1)])[:P_dec]
    N = int(dec_ids.max()) + 1
    buf = torch.randn(N + B, hkv, ps, d, dtype=torch.bfloat16, device="cuda", generator=gen)
    v, k = buf[:N], buf[B:B + N]
    ids = np.concatenate([np.random.default_rng(0).permutation(dec_ids),
                          np.random.default_rng(1).permutation(B)]).astype(np.int32)
    starts = np.concatenate([[0], np.cumsum(need)])

    def sub(idx):
        ip = torch.tensor(np.concatenate([[0], np.cumsum([need[i] for i in idx])]), dtype=torch.int32, device="cuda")
        pages = torch.tensor(np.concatenate([ids[starts[i]:starts[i + 1]] for i in idx]), device="cuda")
        lens = torch.tensor([kv_lens[i] for i in idx], dtype=torch.int32, device="cuda")
        kv = attn.KVCache.paged(k, v, ip, pages, lens, layout="HND")
        qip = torch.tensor(np.concatenate([[0], np.cumsum([q_lens[i] for i in idx])]), dtype=torch.int32,
                           device="cuda")
        q = torch.randn(int(qip[-1]), hq, d, dtype=torch.bfloat16, device="cuda", generator=gen)
        return kv, q, qip

    order = torch.randperm(len(q_lens), generator=gen, device="cuda").tolist()
    window = (buf.data_ptr(), 2 * B * buf[0].numel() * buf.element_size())
    return (sub(order), sub(list(range(n_dec, len(q_lens)))), sub(list(range(n_dec))), window,
            sum(kv_lens[:n_dec]) * hkv * d * 2 * 2)


def eager_us(fn, n=20):
    for _ in range(3):
        fn()
    s, e = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
    torch.cuda.synchronize()
    s.record()
    for _ in range(n):
        fn()
    e.record()
    torch.cuda.synchronize()
    return s.elapsed_time(e) / n * 1e3


# bench's three batches (attn/bench.py suite_mixed): label, decode requests, prefill chunks
BATCHES = (("mixed", 64, [512, 1024, 2048, 768]), ("decode-heavy", 128, [512]), ("prefill-heavy", 8, [2048] * 8))


def ba(qip, kv, hq, programs=None):
    """A BatchAttention plan of the batch (the probes of this folder share these helpers)."""
    return attn.BatchAttention(max_tokens=int(qip[-1]), max_batch=kv.batch_size, num_programs=programs).plan(
        qip, kv, hq)


def us(fn):
    """Microseconds a call, graph-timed."""
    return bu.gpu_time([fn])[0] * 1e3


def separate_launches(kv_p, q_p, qip_p, kv_d, q_d, hq):
    """The batch's halves as attn's separate launches: BatchPrefill then BatchDecode, planned."""
    bd = attn.BatchDecode(max_batch=kv_d.batch_size).plan(kv_d, hq)
    bp = attn.BatchPrefill(max_tokens=q_p.shape[0], max_batch=kv_p.batch_size, num_q_heads=hq)
    bp.plan(qip_p, kv_p)

    def separate():
        bp.run(q_p, kv_p)
        bd.run(q_d, kv_d)
    return separate


def main(ncu=False):
    print(f"L2 {torch.cuda.get_device_properties(0).L2_cache_size >> 20} MiB; max persisting "
          f"{device_attr(108) / 2**20:.1f} MiB, max window {device_attr(109) / 2**20:.1f} MiB")
    gen = torch.Generator(device="cuda")
    for seed in (0, 1):
        gen.manual_seed(seed)
        (kv, q, qip), (kv_p, q_p, qip_p), (kv_d, q_d, qip_d), (base, nbytes), dec_bytes = banded_batch(
            gen, 64, [512, 1024, 2048, 768])
        hq = q.shape[1]
        check(cuda.cuCtxSetLimit(6, min(nbytes, device_attr(108))), "cuCtxSetLimit")
        m, mp, md = ba(qip, kv, hq), ba(qip_p, kv_p, hq), ba(qip_d, kv_d, hq)
        out = torch.empty_like(q)
        err = 0.0 if ncu else bu.rel_err(m.run(q, kv, out=out), attn.reference.prefill(q, kv, qip))
        separate = separate_launches(kv_p, q_p, qip_p, kv_d, q_d, hq)
        runs = {"mixed": lambda: m.run(q, kv, out=out), "prefill half": lambda: mp.run(q_p, kv_p),
                "decode half": lambda: md.run(q_d, kv_d), "separate": separate}
        if ncu:
            # The Hopper kernel's launches, in order (ncu flushes caches before each): a warm-up
            # of each run (compiles), then each with no window, then each with the window.
            for w in (None, False, True):
                set_window(base, nbytes) if w else set_window()
                for name, fn in runs.items():
                    print(f"ncu launch: {name} window={w}", flush=True)
                    fn()
                    torch.cuda.synchronize()
            set_window()
            return
        print(f"seed {seed}: window {nbytes / 2**20:.1f} MiB, decode half reads {dec_bytes / 1e9:.3f} GB, "
              f"err {err:.1e}")
        for rnd in range(2):
            line = []
            for name, fn in runs.items():
                t = {}
                for w in (False, True):
                    set_window(base, nbytes) if w else set_window()
                    t[w] = eager_us(fn)
                set_window()
                line.append(f"{name} {t[False]:.1f} / {t[True]:.1f} us")
            print(f"  round {rnd} (no window / prefill K/V persisting): " + "; ".join(line), flush=True)


def cost_order_assign(cost, num_programs):
    """persistent_schedule.assign, each program's units in assignment order (largest first)."""
    import heapq
    heap = [(0.0, p) for p in range(num_programs)]
    owner = np.zeros(len(cost), np.int64)
    rank = np.zeros(len(cost), np.int64)
    for r, i in enumerate(np.argsort(-cost, kind="stable")):
        load, p = heapq.heappop(heap)
        owner[i], rank[i] = p, r
        heapq.heappush(heap, (load + cost[i], p))
    counts = np.bincount(owner, minlength=num_programs)
    return np.concatenate([[0], np.cumsum(counts)]), np.lexsort((rank, owner))


def orders():
    from attn import bench
    from attn import persistent_schedule as ps
    request_order = ps.assign
    gen = torch.Generator(device="cuda")
    gen.manual_seed(2)
    for rnd in range(2):
        for label, n_dec, pre in BATCHES:
            (kv, q, qip, kv_p, q_p, qip_p, kv_d, q_d), _, _ = bench._mixed_batch(gen, n_dec, pre)
            hq = q.shape[1]
            ref = attn.reference.prefill(q, kv, qip) if rnd == 0 else None
            separate = separate_launches(kv_p, q_p, qip_p, kv_d, q_d, hq)
            sep = us(separate)
            line = [f"{label}: separate {sep:.1f} us"]
            for name, fn in (("request order", request_order), ("cost order", cost_order_assign)):
                ps.assign = fn
                m = ba(qip, kv, hq)
                ps.assign = request_order
                out = torch.empty_like(q)
                err = bu.rel_err(m.run(q, kv, out=out), ref) if ref is not None else float("nan")
                t = us(lambda: m.run(q, kv, out=out))
                busy = m.measure(q, kv)[:, 0]
                line.append(f"{name} {t:.1f} ({sep / t:.3f}x, err {err:.1e}, busy max/mean "
                            f"{busy.max() / busy.mean():.2f})")
            print("; ".join(line), flush=True)


if __name__ == "__main__":
    orders() if "orders" in sys.argv[1:] else main("ncu" in sys.argv[1:])
