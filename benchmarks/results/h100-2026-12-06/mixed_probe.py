"""Where BatchAttention's mixed batch spends its time on the Hopper kernel (issue 9, NOTES open 4).

The mixed batch (64 decode 1k-8k + 4 prefill chunks) runs in about the sum of its halves' times:
its decode tiles (bandwidth) and prefill tiles (math) barely overlap. This probe times, on one
machine and in one run: the whole batch, each half alone through BatchAttention and through the
separate launches, the decode half on fewer programs (a program's own decode pace: if 66 programs
take twice 132's time, one SM cannot pull more than its share), and kernel variants passed through
prefill_hopper.launch (stages, block_n). Usage: python mixed_probe.py [variant ...]."""
import functools
import importlib
import sys

import numpy as np
import torch

import attn
from attn import bench
from attn import benchutil as bu
from attn.triton_kernels import prefill_hopper as H

ORIG = H.launch


def variant(mod=None, **kw):
    """Route BatchAttention's launches to `mod`'s kernel (a copy of an earlier prefill_hopper, or
    this one) with launch() keywords kw."""
    fn = ORIG if mod is None else importlib.import_module(f"attn.triton_kernels.{mod}").launch
    H.launch = functools.partial(fn, **kw) if kw else fn


def t_us(fn):
    ms, _ = bu.gpu_time([fn])
    return ms * 1e3


def ba(qip, kv, hq, programs=None):
    b = attn.BatchAttention(max_tokens=int(qip[-1]), max_batch=kv.batch_size, num_programs=programs)
    return b.plan(qip, kv, hq)


def main():
    gen = torch.Generator(device="cuda")
    gen.manual_seed(0)
    (kv, q, qip, kv_p, q_p, qip_p, kv_d, q_d), q_lens, kv_lens = bench._mixed_batch(gen, 64, [512, 1024, 2048, 768])
    hq = q.shape[1]
    qip_d = torch.arange(kv_d.batch_size + 1, dtype=torch.int32, device="cuda")
    dec_bytes = sum(kv_lens[:64]) * 8 * 128 * 2 * 2
    ref = attn.reference.prefill(q, kv, qip)
    print(f"decode half reads {dec_bytes / 1e9:.3f} GB; prefill half {bu.causal_flops(q_lens[64:], kv_lens[64:], hq, 128) / 1e9:.1f} GFLOP")

    bd = attn.BatchDecode(max_batch=kv_d.batch_size).plan(kv_d, hq)
    bp = attn.BatchPrefill(max_tokens=q_p.shape[0], max_batch=kv_p.batch_size, num_q_heads=hq)
    bp.plan(qip_p, kv_p)
    print(f"separate: decode {t_us(lambda: bd.run(q_d, kv_d)):.1f} us, prefill {t_us(lambda: bp.run(q_p, kv_p)):.1f} us")

    # base: the kernel before this session (page numbers looked up after the wait for a free stage)
    variants = {"base": dict(mod="prefill_hopper_base"), "ahead": {}, "ahead_n64s4": dict(block_n=64, stages=4),
                "ahead_n64s5": dict(block_n=64, stages=5)}
    names = sys.argv[1:] or list(variants)
    for name in names:
        variant(**variants[name])
        try:
            m = ba(qip, kv, hq)
            out = torch.empty_like(q)
            err = bu.rel_err(m.run(q, kv, out=out), ref)
            tm = t_us(lambda: m.run(q, kv, out=out))
            busy = m.measure(q, kv)[:, 0]
            line = [f"{name}: mixed {tm:.1f} us (err {err:.1e}; busy min/mean/max {busy.min():.0f}/{busy.mean():.0f}/{busy.max():.0f})"]
            d = ba(qip_d, kv_d, hq)
            line.append(f"decode {t_us(lambda: d.run(q_d, kv_d)):.1f}")
            p = ba(qip_p, kv_p, hq)
            line.append(f"prefill {t_us(lambda: p.run(q_p, kv_p)):.1f}")
            for progs in (99, 66, 33):
                dp = ba(qip_d, kv_d, hq, progs)
                tt = t_us(lambda: dp.run(q_d, kv_d))
                line.append(f"decode@{progs} {tt:.1f} ({dec_bytes / tt / 1e3 / progs:.1f} GB/s an SM)")
            print("; ".join(line), flush=True)
        except Exception as e:                       # a variant that does not compile or fit
            print(f"{name}: failed: {type(e).__name__}: {str(e)[:300]}", flush=True)
    variant()


if __name__ == "__main__":
    main()
