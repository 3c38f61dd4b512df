"""BatchAttention config sweep on the mixed batches: same-run ratios against separate launches."""
import sys, torch, attn
from attn import bench as B, benchutil as bu, platform
from attn.triton_kernels.attention import attention_kernel

def regs():
    out = []
    for dc in attention_kernel.device_caches.values():
        for k in dc[0].values():
            out.append((k.n_regs, k.n_spills))
    return out

plat = platform.for_tensor(torch.empty(1, device="cuda"))
sms = plat.num_sms
gen = torch.Generator(device="cuda"); gen.manual_seed(0)
c8 = dict(BLOCK_M=128, BLOCK_N=64, num_warps=8, num_stages=3)
c8 = dict(BLOCK_M=128, BLOCK_N=64, num_warps=8, num_stages=3, block_n_decode=128)
cands = [("8w dec128 s5 (default)", {}, None),
         ("8w dec128 s6", dict(c8, stages_decode=6), None),
         ("8w dec128 s7", dict(c8, stages_decode=7), None)]
specs = [("mixed 64d+4p", 64, [512, 1024, 2048, 768]), ("decode-heavy 128d+1p", 128, [512]),
         ("prefill-heavy 8d+8p", 8, [2048] * 8), ("decode-only 64d (+1 token)", 64, [1])]
seen = set()
for label, n_dec, pre in specs:
    (kv, q, qip, kv_p, q_p, qip_p, kv_d, q_d), q_lens, kv_lens = B._mixed_batch(gen, n_dec, pre)
    out = torch.empty_like(q)
    ref = attn.reference.prefill(q, kv, qip)
    bd = attn.BatchDecode(max_batch=kv_d.batch_size).plan(kv_d, q.shape[1])
    if pre:
        bp = attn.BatchPrefill(max_tokens=q_p.shape[0], max_batch=kv_p.batch_size, num_q_heads=q.shape[1])
        bp.plan(qip_p, kv_p)
        sep = lambda: (bp.run(q_p, kv_p), bd.run(q_d, kv_d))
        tp, _ = bu.gpu_time([lambda: bp.run(q_p, kv_p)])
    else:
        sep = lambda: bd.run(q_d, kv_d)
        tp = 0.0
    td, _ = bu.gpu_time([lambda: bd.run(q_d, kv_d)])
    ts, _ = bu.gpu_time([sep])
    print(f"\n## {label}: separate {ts*1e3:.1f} us (prefill {tp*1e3:.1f}, decode {td*1e3:.1f})", flush=True)
    for name, cfg, per_sm in cands:
        try:
            n_prog = None if per_sm is None else sms * per_sm // kv.num_kv_heads
            ba = attn.BatchAttention(max_tokens=q.shape[0], max_batch=kv.batch_size, kernel_config=cfg,
                                     num_programs=n_prog).plan(qip, kv, q.shape[1])
            err = bu.rel_err(ba.run(q, kv, out=out), ref)
            t, _ = bu.gpu_time([lambda: ba.run(q, kv, out=out)])
            new = [r for r in regs() if r not in seen]; seen.update(new)
            print(f"| {name} | {t*1e3:.1f} us | {ts/t:.2f}x | err {err:.1e} | imb {ba.schedule.imbalance():.2f} | "
                  f"progs {ba.num_programs} | new regs {new}", flush=True)
            ba.measure(q, kv)
            print("    " + ba.describe().splitlines()[-1], flush=True)
        except Exception as e:
            print(f"| {name} | FAILED {type(e).__name__}: {str(e)[:200]}", flush=True)
