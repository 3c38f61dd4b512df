"""BatchAttention's decode tiles: K's page numbers looked up two blocks ahead against one
(issue 9; seventeenth session).

Call 1 (l2_probe.py) showed the mixed batch is not short of L2: Nsight Compute counted 1.274 GB
read from DRAM against 1.181 + 0.054 GB for its halves run apart, and it moved 2.69 TB/s where the
decode half alone moves 3.06. The decode programs are short of bytes in flight: ~47 GB/s an SM at
most on an idle HBM, ~30 under the mixed load. A TMA loader that waits for the next block's page
numbers before issuing its copies puts one lookup latency in front of every block.
Both kernels run side by side in one process: prefill_hopper_base.py is HEAD's kernel (one block
ahead; `git show <commit>:triton_kernels/prefill_hopper.py`), prefill_hopper.py the working copy.
Usage: python ahead_probe.py"""
import importlib

import torch

import attn
from attn import bench
from attn import benchutil as bu
from attn.triton_kernels import prefill_hopper as H
from l2_probe import BATCHES, ba, separate_launches, us

LAUNCH = H.launch
KERNELS = {"one ahead": importlib.import_module("attn.triton_kernels.prefill_hopper_base").launch,
           "two ahead": LAUNCH}


def main():
    gen = torch.Generator(device="cuda")
    gen.manual_seed(3)
    for rnd in range(2):
        for label, n_dec, pre in BATCHES:
            (kv, q, qip, kv_p, q_p, qip_p, kv_d, q_d), _, kv_lens = bench._mixed_batch(gen, n_dec, pre)
            hq = q.shape[1]
            dec_bytes = sum(kv_lens[:n_dec]) * kv.num_kv_heads * kv.head_dim * 2 * 2
            qip_d = torch.arange(kv_d.batch_size + 1, dtype=torch.int32, device="cuda")
            ref = attn.reference.prefill(q, kv, qip) if rnd == 0 else None
            separate = separate_launches(kv_p, q_p, qip_p, kv_d, q_d, hq)
            line = [f"{label} (round {rnd}): separate {us(separate):.1f} us"]
            for name, launch in KERNELS.items():
                H.launch = launch
                m = ba(qip, kv, hq)
                out = torch.empty_like(q)
                err = bu.rel_err(m.run(q, kv, out=out), ref) if ref is not None else float("nan")
                t = us(lambda: m.run(q, kv, out=out))
                d = ba(qip_d, kv_d, hq)
                td = us(lambda: d.run(q_d, kv_d))
                d33 = ba(qip_d, kv_d, hq, 33)
                t33 = us(lambda: d33.run(q_d, kv_d))
                busy = m.measure(q, kv)[:, 0]
                line.append(f"{name}: {t:.1f} us (err {err:.1e}, busy max/mean {busy.max() / busy.mean():.2f}), "
                            f"decode half {td:.1f} us, at 33 programs {dec_bytes / t33 / 1e3 / 33:.1f} GB/s an SM")
            H.launch = LAUNCH
            print("; ".join(line), flush=True)


if __name__ == "__main__":
    main()
