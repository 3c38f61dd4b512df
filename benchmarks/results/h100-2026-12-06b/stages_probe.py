"""Is a decode program's pace (~47 GB/s an SM) bound by its K/V ring (2 stages of 128 keys in
flight against the memory's latency) or by its math (a 64-row MMA for 4 live rows)? At head_dim
64 a block is half the bytes and half the math: a ring-bound program halves its GB/s, a math-bound
one keeps it; more stages (which fit at d64) then speed up only a ring-bound one.
Usage: python stages_probe.py"""
import functools

import torch

import attn
from attn import bench
from attn import benchutil as bu
from attn.triton_kernels import prefill_hopper as H
from l2_probe import ba, us

LAUNCH = H.launch



def main():
    for d, stages_list in ((128, (2,)), (64, (2, 3, 4, 5))):
        gen = torch.Generator(device="cuda")
        gen.manual_seed(5)
        (kv, q, qip, kv_p, q_p, qip_p, kv_d, q_d), _, kv_lens = bench._mixed_batch(gen, 64, [512, 1024, 2048, 768],
                                                                                   d=d)
        hq = q.shape[1]
        dec_bytes = sum(kv_lens[:64]) * kv.num_kv_heads * d * 2 * 2
        qip_d = torch.arange(kv_d.batch_size + 1, dtype=torch.int32, device="cuda")
        ref = attn.reference.prefill(q, kv, qip)
        for stages in stages_list:
            H.launch = functools.partial(LAUNCH, stages=stages)
            m = ba(qip, kv, hq)
            out = torch.empty_like(q)
            err = bu.rel_err(m.run(q, kv, out=out), ref)
            line = [f"d{d} stages {stages}: mixed {us(lambda: m.run(q, kv, out=out)):.1f} us (err {err:.1e})"]
            for progs in (None, 33):
                dd = ba(qip_d, kv_d, hq, progs)
                t = us(lambda: dd.run(q_d, kv_d))
                line.append(f"decode half at {dd.num_programs} programs {t:.1f} us "
                            f"({dec_bytes / t / 1e3 / dd.num_programs:.1f} GB/s an SM)")
            print("; ".join(line), flush=True)
        H.launch = LAUNCH


if __name__ == "__main__":
    main()
