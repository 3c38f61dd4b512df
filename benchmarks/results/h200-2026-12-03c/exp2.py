"""Call-2 experiments (H200): the cache write's launch shapes (graph-timed); extend and decode with
one page number a run of keys (working tree) against one a key (HEAD's attention.py), same run."""
import importlib.util, sys, torch, triton
import attn
from attn import benchutil as bu, platform
from attn.triton_kernels import attention as A
HQ, HK, D, dt = 32, 8, 128, torch.bfloat16
spec = importlib.util.spec_from_file_location("attn.triton_kernels.attention_perkey", ".gpu/attention_perkey.py")
OLD = importlib.util.module_from_spec(spec); spec.loader.exec_module(OLD)
NEW_LAUNCH = A.launch
def T(calls):
    return bu.gpu_time(calls)[0]
def regs(mod):
    return sorted({(k.n_regs, k.n_spills) for dc in mod.attention_kernel.device_caches.values() for k in dc[0].values()})

def rot_part():
    sys.path.insert(0, "benchmarks")
    from bench_rotary import make_cache
    from attn.triton_kernels import rotary as K
    plat = platform.for_tensor(torch.empty(1, device="cuda"))
    copy = bu.copy_gbs()
    print(f"## cache write, graph-timed; copy {copy:.0f} GB/s", flush=True)
    cache = attn.rotary.cos_sin_cache(32768, D, base=500000.0, device="cuda")
    for n in (8192, 64):
        sets = 3 if n == 8192 else 1
        qs = [torch.randn(n, HQ, D, device="cuda").to(dt) for _ in range(sets)]
        ks = [torch.randn(n, HK, D, device="cuda").to(dt) for _ in range(sets)]
        vs = [torch.randn(n, HK, D, device="cuda").to(dt) for _ in range(sets)]
        qo = [torch.empty_like(q) for q in qs]; ko = [torch.empty_like(k) for k in ks]
        pos = torch.randint(0, 32768, (n,), device="cuda", dtype=torch.int32)
        side = n * 4 + n * D * 4
        cfg = K.launch_config(n, HQ, HK, D, plat.vendor, plat.num_sms)
        t = T([lambda i=i: K.rotary(qs[i], ks[i], qo[i], ko[i], cache, D, True, positions=pos, config=cfg) for i in range(sets)])
        nb = 2 * n * (HQ + HK) * D * 2 + side
        print(f"| apply | {n} | default {cfg} | {t*1e3:.2f} us | {nb/t/1e6:.0f} GB/s | {nb/t/1e6/copy*100:.1f}% |", flush=True)
        nb = 2 * n * HQ * D * 2 + 4 * n * HK * D * 2 + side + n * 8
        for layout in ("NHD", "HND", "vllm"):
            kvs = [make_cache(layout, n, dt) for _ in range(sets)]
            kv0 = kvs[0][0]
            hm = kv0.k_strides.slot < kv0.k_strides.head or kv0.v_strides.slot < kv0.v_strides.head
            for over in ({}, dict(write_num_warps=4), dict(write_num_warps=4, tile=4096), dict(write_num_warps=4, tile=16384),
                         dict(tile=4096), dict(write_num_warps=4, run_tokens=16), dict(write_num_warps=2),
                         dict(write_num_warps=4, max_heads=32)):
                if n == 64 and over not in ({}, dict(write_num_warps=4)):
                    continue
                c = K.launch_config(n, HQ, HK, D, plat.vendor, plat.num_sms, True, hm, kv0.page_size, tuple(over.items()))
                try:
                    t = T([lambda i=i: K.rotary(qs[i], ks[i], qo[i], None, cache, D, True, positions=pos, kv=kvs[i][0],
                                                 v=vs[i], slot_mapping=kvs[i][1], config=c) for i in range(sets)])
                    print(f"| write {layout} | {n} | {over or 'default'} {c} | {t*1e3:.2f} us | {nb/t/1e6:.0f} GB/s | {nb/t/1e6/copy*100:.1f}% |", flush=True)
                except Exception as e:
                    print(f"| write {layout} | {n} | {over} | FAILED {type(e).__name__}: {str(e)[:200]}", flush=True)

def ext_part():
    print("## extend 16 x (2048 + 512) causal: per-key page numbers (HEAD) vs one a run (tree)", flush=True)
    fl = 4 * 16 * 512 * (2048 + 256) * HQ * D
    qi = torch.arange(0, 16 * 512 + 1, 512, dtype=torch.int32, device="cuda")
    q = torch.randn(16 * 512, HQ, D, device="cuda").to(dt)
    out = torch.empty_like(q)
    kvr = bu.make_kv([2560] * 16, layout="ragged", page_size=1)
    ref = None
    for layout, ps in (("NHD", 16), ("HND", 16), ("NHD", 64), ("pool", 1)):
        kv = bu.make_kv([2560] * 16, layout=layout, page_size=ps)
        p = attn.BatchPrefill(max_tokens=q.shape[0], max_batch=16, num_q_heads=HQ).plan(qi, kv)
        base = dict(p._planned["cfg"])
        for name, mod in (("per-key", OLD), ("per-run", A)):
            A.launch = mod.launch
            for cm in ("", ".cg"):
                for st in (5, 3):
                    if layout == "pool" and (st == 3 or name == "per-run"):
                        continue
                    p._planned["cfg"] = dict(base, num_stages=st, cache_modifier=cm)
                    try:
                        t = T([lambda: p.run(q, kv, out=out)])
                        print(f"| {layout} ps{ps} | {name} | {st}s {cm or 'ca'} | {t*1e3:.1f} us | {fl/t/1e9:.0f} TFLOP/s | {regs(mod)} |", flush=True)
                    except Exception as e:
                        print(f"| {layout} ps{ps} | {name} | {st}s {cm} | FAILED {type(e).__name__}: {str(e)[:200]}", flush=True)
            A.launch = NEW_LAUNCH
        o2 = p.run(q, kv).float()
        ref = o2 if ref is None else ref
        print(f"   max diff vs first layout: {(o2 - ref).abs().max().item():.4f}", flush=True)
    p = attn.BatchPrefill(max_tokens=q.shape[0], max_batch=16, num_q_heads=HQ).plan(qi, kvr)
    base = dict(p._planned["cfg"])
    for st in (3, 5):
        p._planned["cfg"] = dict(base, num_stages=st, cache_modifier="")
        t = T([lambda: p.run(q, kvr, out=out)])
        print(f"| ragged | {st}s | {t*1e3:.1f} us | {fl/t/1e9:.0f} TFLOP/s |", flush=True)
    print(f"   ragged max diff: {(p.run(q, kvr).float() - ref).abs().max().item():.4f}", flush=True)

def dec_part():
    print("## decode (tuned configs): per-key vs per-run page numbers", flush=True)
    copy = bu.copy_gbs()
    for b, n, layout in ((64, 4096, "HND"), (8, 32768, "HND"), (1, 131072, "HND"), (64, 4096, "vllm"), (8, 32768, "vllm")):
        kvs = [bu.make_kv([n] * b, layout=layout, page_size=16) for _ in range(2 if b * n < 300000 else 1)]
        q = torch.randn(b, HQ, D, device="cuda").to(dt)
        out = torch.empty_like(q)
        p = attn.BatchDecode(max_batch=b).plan(kvs[0], HQ)
        nb = b * n * HK * D * 2 * 2
        for name, mod in (("per-key", OLD), ("per-run", A)):
            A.launch = mod.launch
            t = T([lambda kv=kv: p.run(q, kv, out=out) for kv in kvs])
            print(f"| {b}x{n} {layout} | {name} | {t*1e3:.1f} us | {nb/t/1e6:.0f} GB/s | {nb/t/1e6/copy*100:.1f}% | {p.cfg} | {regs(mod)} |", flush=True)
            A.launch = NEW_LAUNCH

if __name__ == "__main__":
    for part in sys.argv[1:]:
        globals()[part + "_part"]()
