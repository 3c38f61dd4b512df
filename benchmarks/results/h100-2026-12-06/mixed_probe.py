"""Where BatchAttention's mixed batch spends its time on the Hopper kernel (issue 9, NOTES open 4).

The mixed batch (64 decode 1k-8k + 4 prefill chunks) runs in about the sum of its halves' times:
its decode tiles (bandwidth) and prefill tiles (math) barely overlap. This probe times, on one
machine and in one run: the whole batch, each half alone through BatchAttention and through the
separate launches, the decode half on fewer programs (a program's own decode pace: if 66 programs
take twice 132's time, one SM cannot pull more than its share), the kernel before this session
against its TMA page lookahead, and the schedule (persistent_schedule.replay against
longest-first assignment in request order).
Usage: python mixed_probe.py [orders] (orders: the schedules only; the A/B against
persistent_schedule.replay needs 82b4161, where call 3 measured it; later, longest first alone). The kernel before this session,
prefill_hopper_base.py: `git show fcb3607:triton_kernels/prefill_hopper.py`."""
import functools
import importlib
import sys

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
    # base: the kernel before this session (page numbers looked up after the wait for a free stage)
    for name, mod in () if "orders" in sys.argv[1:] else (("base", "prefill_hopper_base"), ("ahead", None)):
        variant(mod)
        m = ba(qip, kv, hq)
        out = torch.empty_like(q)
        err = bu.rel_err(m.run(q, kv, out=out), ref)
        line = [f"{name}: mixed {t_us(lambda: m.run(q, kv, out=out)):.1f} us (err {err:.1e})"]
        d = ba(qip_d, kv_d, hq)
        line.append(f"decode {t_us(lambda: d.run(q_d, kv_d)):.1f}")
        p = ba(qip_p, kv_p, hq)
        line.append(f"prefill {t_us(lambda: p.run(q_p, kv_p)):.1f}")
        for progs in (99, 66, 33):
            dp = ba(qip_d, kv_d, hq, progs)
            tt = t_us(lambda: dp.run(q_d, kv_d))
            line.append(f"decode@{progs} {tt:.1f} ({dec_bytes / tt / 1e3 / progs:.1f} GB/s an SM)")
        print("; ".join(line), flush=True)
    variant()
    for _ in range(2):
        orders(gen)


def orders(gen):
    """The schedule before this session (longest first, each program in request order: assign())
    against replay()'s, on the bench's three batches, and the separate launches."""
    from attn import persistent_schedule as ps
    replay = getattr(ps, "replay", None)           # removed after call 3: then longest first only
    for label, n_dec, pre in (("mixed", 64, [512, 1024, 2048, 768]), ("decode-heavy", 128, [512]),
                              ("prefill-heavy", 8, [2048] * 8)):
        (kv, q, qip, kv_p, q_p, qip_p, kv_d, q_d), _, _ = bench._mixed_batch(gen, n_dec, pre)
        hq = q.shape[1]
        ref = attn.reference.prefill(q, kv, qip)
        bd = attn.BatchDecode(max_batch=kv_d.batch_size).plan(kv_d, hq)
        bp = attn.BatchPrefill(max_tokens=q_p.shape[0], max_batch=kv_p.batch_size, num_q_heads=hq)
        bp.plan(qip_p, kv_p)

        def separate():
            bp.run(q_p, kv_p)
            bd.run(q_d, kv_d)
        sep = t_us(separate)
        line = [f"{label}: separate {sep:.1f} us"]
        for name in ("longest first", "replay") if replay else ("longest first",):
            if replay:
                ps.replay = (lambda cost, kind, order, programs: ps.assign(cost, programs)) if name != "replay" \
                    else replay
            m = ba(qip, kv, hq)
            out = torch.empty_like(q)
            err = bu.rel_err(m.run(q, kv, out=out), ref)
            tt = t_us(lambda: m.run(q, kv, out=out))
            busy = m.measure(q, kv)[:, 0]
            line.append(f"{name} {tt:.1f} ({sep / tt:.3f}x, err {err:.1e}, busy max/mean {busy.max() / busy.mean():.2f})")
        if replay:
            ps.replay = replay
        print("; ".join(line), flush=True)


if __name__ == "__main__":
    main()
