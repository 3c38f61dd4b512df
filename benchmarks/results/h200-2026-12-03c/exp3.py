"""Call-5 experiments: cache-write tile shapes for HND/vLLM; 1 x 131072 decode over shuffled vs
in-order pages; one extend launch per layout for ncu."""
import sys, torch
import attn
from attn import benchutil as bu, platform
HQ, HK, D, dt = 32, 8, 128, torch.bfloat16
def T(calls):
    return bu.gpu_time(calls)[0]

def rot_part():
    sys.path.insert(0, "benchmarks")
    from bench_rotary import make_cache
    from attn.triton_kernels import rotary as K
    plat = platform.for_tensor(torch.empty(1, device="cuda"))
    copy = bu.copy_gbs()
    print(f"## cache write, graph-timed; copy {copy:.0f} GB/s", flush=True)
    cache = attn.rotary.cos_sin_cache(32768, D, base=500000.0, device="cuda")
    n, sets = 8192, 3
    qs = [torch.randn(n, HQ, D, device="cuda").to(dt) for _ in range(sets)]
    ks = [torch.randn(n, HK, D, device="cuda").to(dt) for _ in range(sets)]
    vs = [torch.randn(n, HK, D, device="cuda").to(dt) for _ in range(sets)]
    qo = [torch.empty_like(q) for q in qs]
    pos = torch.randint(0, 32768, (n,), device="cuda", dtype=torch.int32)
    nb = 2 * n * HQ * D * 2 + 4 * n * HK * D * 2 + n * 4 + n * D * 4 + n * 8
    for layout, overs in (("NHD", ({},)), ("HND", ({}, dict(run_tokens=4), dict(run_tokens=2), dict(run_tokens=4, tile=16384), dict(run_tokens=16))),
                          ("vllm", ({}, dict(run_tokens=16), dict(run_tokens=16, tile=16384), dict(run_tokens=4)))):
        kvs = [make_cache(layout, n, dt) for _ in range(sets)]
        kv0 = kvs[0][0]
        hm = kv0.k_strides.slot < kv0.k_strides.head or kv0.v_strides.slot < kv0.v_strides.head
        for over in overs:
            c = K.launch_config(n, HQ, HK, D, plat.vendor, plat.num_sms, True, hm, kv0.page_size, tuple(over.items()))
            try:
                t = T([lambda i=i: K.rotary(qs[i], ks[i], qo[i], None, cache, D, True, positions=pos, kv=kvs[i][0],
                                             v=vs[i], slot_mapping=kvs[i][1], config=c) for i in range(sets)])
                print(f"| write {layout} | {over or 'default'} {c} | {t*1e3:.2f} us | {nb/t/1e6:.0f} GB/s | {nb/t/1e6/copy*100:.1f}% |", flush=True)
            except Exception as e:
                print(f"| write {layout} | {over} | FAILED {type(e).__name__}: {str(e)[:200]}", flush=True)

def dec_part():
    copy = bu.copy_gbs()
    print(f"## decode 1 x 131072 HND ps16, tuned config; copy {copy:.0f} GB/s", flush=True)
    nb = 131072 * HK * D * 2 * 2
    q = torch.randn(1, HQ, D, device="cuda").to(dt)
    out = torch.empty_like(q)
    kvs = {name: bu.make_kv([131072], layout="HND", page_size=16, shuffle=sh) for name, sh in (("shuffled", True), ("in order", False))}
    plans = {name: attn.BatchDecode(max_batch=1).plan(kv, HQ) for name, kv in kvs.items()}
    for rnd in range(3):
        for name, kv in kvs.items():
            t = T([lambda: plans[name].run(q, kv, out=out)])
            print(f"| round {rnd} | {name} | {t*1e3:.1f} us | {nb/t/1e6/copy*100:.1f}% | {plans[name].cfg} |", flush=True)

def ncu_part():
    layout, ps = sys.argv[2], int(sys.argv[3])
    qi = torch.arange(0, 16 * 512 + 1, 512, dtype=torch.int32, device="cuda")
    q = torch.randn(16 * 512, HQ, D, device="cuda").to(dt)
    kv = bu.make_kv([2560] * 16, layout=layout, page_size=ps)
    p = attn.BatchPrefill(max_tokens=q.shape[0], max_batch=16, num_q_heads=HQ).plan(qi, kv)
    out = torch.empty_like(q)
    for _ in range(3):
        p.run(q, kv, out=out)
    torch.cuda.synchronize()
    print(layout, ps, p.cfg, flush=True)

if __name__ == "__main__":
    globals()[sys.argv[1] + "_part"]()
