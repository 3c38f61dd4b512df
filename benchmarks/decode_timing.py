"""Quick decode timing on one GPU (issue 4): attn.BatchDecode.run in a CUDA graph vs the measured copy
bandwidth, with PyTorch SDPA on a dense padded cache (cuDNN / flash / efficient) as the peer.

    python decode_timing.py                 # heuristic config, every shape and layout (< 2 min)
    python decode_timing.py --sweep         # also a small config sweep on three shapes
    python decode_timing.py --shapes b64x4096 --layouts HND/16 --config BLOCK_N=128,num_warps=8

GB/s = bytes of live K+V / time (the q, out and partials traffic is not counted).
Copy bandwidth = 2 * bytes / time of a 1 GiB device-to-device copy (read + write), as the issue asks,
timed eagerly (attn.benchutil.copy_gbs: a graph-captured copy reads lower).
"""
import argparse
import time

import torch

import attn
from attn import benchutil as bu
from attn.layouts import KVCache
from attn.layouts.descriptors import get_layout

HQ, HKV, D, DT = 32, 8, 128, torch.bfloat16
SHAPES = {"b64x4096": [4096] * 64, "b8x32768": [32768] * 8, "b256x1024": [1024] * 256, "b1x131072": [131072]}
LAYOUTS = ["HND/16", "NHD/16", "vllm/16", "token_pool/1", "HND/1"]


def mixed_lens():
    g = torch.Generator().manual_seed(0)
    return torch.randint(16, 16385, (64,), generator=g).tolist()


def graph_time(fn):
    """Seconds per call of fn replayed from a CUDA graph (attn.benchutil.gpu_time: median of the
    replays); raises where fn cannot be captured."""
    ms, mode = bu.gpu_time([fn])
    if mode != "graph":
        raise RuntimeError("not capturable in a CUDA graph")
    return ms * 1e-3


def make_cache(lens, form, page_size):
    lens_t = torch.tensor(lens, dtype=torch.int32, device="cuda")
    if form == "token_pool":
        total = sum(lens)
        k = torch.randn(total, HKV, D, dtype=DT, device="cuda")
        v = torch.randn_like(k)
        indptr = torch.tensor([0] + lens, device="cuda").cumsum(0).to(torch.int32)
        return KVCache.token_pool(k, v, indptr, torch.randperm(total, device="cuda").to(torch.int32))
    lay = get_layout(form)
    need = [(n + page_size - 1) // page_size for n in lens]
    pages = sum(need)
    k = torch.randn(lay.shape("k", pages, page_size, HKV, D, DT), dtype=DT, device="cuda")
    v = torch.randn(lay.shape("v", pages, page_size, HKV, D, DT), dtype=DT, device="cuda")
    indptr = torch.tensor([0] + need, device="cuda").cumsum(0).to(torch.int32)
    return KVCache.paged(k, v, indptr, torch.randperm(pages, device="cuda").to(torch.int32), lens_t, layout=form)


def time_attn(lens, form, page_size, cfg=None):
    kv = make_cache(lens, form, page_size)
    q = torch.randn(len(lens), HQ, D, dtype=DT, device="cuda")
    dec = attn.BatchDecode(max_batch=len(lens), kernel_config=cfg).plan(kv, q_heads=HQ)
    out = torch.empty_like(q)
    t = graph_time(lambda: dec.run(q, kv, out=out))
    ref = attn.decode(q[:4], _first(kv, lens, 4), backend="torch") if sum(lens[:4]) <= 300_000 else None
    err = float((out[:4].float() - ref.float()).norm() / ref.float().norm()) if ref is not None else float("nan")
    items = int(dec.work.num_items.item())
    return t, err, items


def _first(kv, lens, n):
    """kv restricted to its first n sequences (for the reference check)."""
    from dataclasses import replace
    n = min(n, len(lens))
    return replace(kv, page_indptr=kv.page_indptr[:n + 1], seq_lens=kv.seq_lens[:n])


def time_sdpa(lens):
    from torch.nn.attention import SDPBackend, sdpa_kernel
    import torch.nn.functional as F
    b, L = len(lens), max(lens)
    if b * L * HKV * D * 2 * 2 > 6e9:
        return {}
    k = torch.randn(b, HKV, L, D, dtype=DT, device="cuda")
    v = torch.randn_like(k)
    q = torch.randn(b, HQ, 1, D, dtype=DT, device="cuda")
    mask = None
    if min(lens) != L:                  # padded: mask the padding (an attention mask disables flash)
        mask = torch.arange(L, device="cuda")[None, :] < torch.tensor(lens, device="cuda")[:, None]
        mask = mask[:, None, None, :]
    res = {}
    for name, be in (("cudnn", SDPBackend.CUDNN_ATTENTION), ("flash", SDPBackend.FLASH_ATTENTION),
                     ("efficient", SDPBackend.EFFICIENT_ATTENTION)):
        try:
            with sdpa_kernel([be]):
                fn = lambda: F.scaled_dot_product_attention(q, k, v, attn_mask=mask, enable_gqa=True)  # noqa: E731
                fn()
                res[name] = graph_time(fn)
        except Exception as e:  # noqa: BLE001 - a backend that does not run this shape
            res[name] = f"n/a ({type(e).__name__})"
    return res


def parse_cfg(s):
    if not s:
        return None
    out = {}
    for part in s.split(","):
        k, v = part.split("=")
        out[k] = v if k == "cache_modifier" else (float(v) if "." in v else int(v))
    return out


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--shapes", default=",".join(list(SHAPES) + ["mixed"]))
    ap.add_argument("--layouts", default=",".join(LAYOUTS))
    ap.add_argument("--config", default="")
    ap.add_argument("--sweep", action="store_true")
    ap.add_argument("--no-sdpa", action="store_true")
    a = ap.parse_args()
    t0 = time.time()
    print(torch.cuda.get_device_name(), "torch", torch.__version__, "triton", __import__("triton").__version__)
    cbw = bu.copy_gbs()
    print(f"copy bandwidth (read+write): {cbw:.0f} GB/s\n")
    cfg = parse_cfg(a.config)
    print(f"{'shape':12} {'layout':14} {'us':>9} {'GB/s':>7} {'%copy':>6} {'items':>6} {'err':>8}")
    for sname in a.shapes.split(","):
        lens = mixed_lens() if sname == "mixed" else SHAPES[sname]
        nbytes = sum(lens) * HKV * D * 2 * 2
        for lay in a.layouts.split(","):
            form, ps = lay.split("/")
            t, err, items = time_attn(lens, form, int(ps), cfg)
            print(f"{sname:12} {lay:14} {t * 1e6:9.1f} {nbytes / t / 1e9:7.0f} {100 * nbytes / t / 1e9 / cbw:5.1f}% "
                  f"{items:6d} {err:8.1e}", flush=True)
        if not a.no_sdpa:
            for name, t in time_sdpa(lens).items():
                if isinstance(t, str):
                    print(f"{sname:12} {'sdpa-' + name:14} {t}")
                else:
                    print(f"{sname:12} {'sdpa-' + name:14} {t * 1e6:9.1f} {nbytes / t / 1e9:7.0f} "
                          f"{100 * nbytes / t / 1e9 / cbw:5.1f}%   (dense, padded to max)", flush=True)
        torch.cuda.empty_cache()
    if a.sweep:
        print("\nsweep (HND/16; best per shape last)")
        grid = [dict(BLOCK_N=bn, num_warps=w, num_stages=st, programs_per_sm=pp)
                for bn in (64, 128) for w in (4, 8) for st in (2, 3) for pp in (2, 4, 8)]
        for sname in ("b64x4096", "b1x131072", "mixed"):
            lens = mixed_lens() if sname == "mixed" else SHAPES[sname]
            nbytes = sum(lens) * HKV * D * 2 * 2
            best = None
            for c in grid:
                try:
                    t, err, _ = time_attn(lens, "HND", 16, c)
                except Exception as e:  # noqa: BLE001 - out of resources etc.
                    print(sname, c, type(e).__name__)
                    continue
                pct = 100 * nbytes / t / 1e9 / cbw
                print(f"{sname:10} {c} {t * 1e6:8.1f} us {pct:5.1f}%", flush=True)
                if best is None or t < best[0]:
                    best = (t, c, pct)
            print(f"BEST {sname}: {best[1]} {best[0] * 1e6:.1f} us {best[2]:.1f}%")
    print(f"\n{time.time() - t0:.0f} s")


if __name__ == "__main__":
    main()
