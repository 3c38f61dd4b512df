"""What bounds a decode program's pace on the Hopper kernel (~47 GB/s an SM on an idle HBM)?
Call 2 ruled out the page lookup (two blocks ahead: no change). Here the page size varies the TMA
copies a 128-key block takes (pages of 16: 8 boxes each for K and V; of 128: one): if the count
of copies bounds the pace, larger pages run faster per SM. Usage: python boxes_probe.py"""
import torch

from attn import bench
from l2_probe import ba, us



def main():
    for ps in (16, 32, 64, 128, 16):
        gen = torch.Generator(device="cuda")
        gen.manual_seed(4)
        (kv, q, qip, kv_p, q_p, qip_p, kv_d, q_d), _, kv_lens = bench._mixed_batch(gen, 64, [512, 1024, 2048, 768],
                                                                                   ps=ps)
        hq = q.shape[1]
        dec_bytes = sum(kv_lens[:64]) * kv.num_kv_heads * kv.head_dim * 2 * 2
        qip_d = torch.arange(kv_d.batch_size + 1, dtype=torch.int32, device="cuda")
        m = ba(qip, kv, hq)
        out = torch.empty_like(q)
        line = [f"page {ps}: mixed {us(lambda: m.run(q, kv, out=out)):.1f} us"]
        for progs in (None, 66, 33):
            d = ba(qip_d, kv_d, hq, progs)
            t = us(lambda: d.run(q_d, kv_d))
            n = d.num_programs
            line.append(f"decode half at {n} programs {t:.1f} us ({dec_bytes / t / 1e3:.0f} GB/s, "
                        f"{dec_bytes / t / 1e3 / n:.1f} an SM)")
        print("; ".join(line), flush=True)


if __name__ == "__main__":
    main()
