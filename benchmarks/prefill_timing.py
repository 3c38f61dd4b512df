"""BatchPrefill.run vs SDPA flash / cuDNN (bf16, 32q/8kv, d=128, causal) + extend + 50% masked tail."""
import torch, triton, attn
from attn.layouts import KVCache, convert
from torch.nn.attention import sdpa_kernel, SDPBackend
F = torch.nn.functional.scaled_dot_product_attention
dev, dt, HQ, HK, D = "cuda", torch.bfloat16, 32, 8, 128
bench = lambda f: triton.testing.do_bench(f, warmup=25, rep=200, return_mode="median")
def ragged(kv_lens):
    kr = torch.randn(sum(kv_lens), HK, D, dtype=dt, device=dev); vr = torch.randn_like(kr)
    ip = torch.tensor([0] + kv_lens, device=dev).cumsum(0).int()
    return KVCache.ragged(kr, vr, ip)
def planned(q_lens, kv, **kw):
    qi = torch.tensor([0] + q_lens, device=dev).cumsum(0).int()
    q = torch.randn(sum(q_lens), HQ, D, dtype=dt, device=dev)
    p = attn.BatchPrefill(max_tokens=q.shape[0], max_batch=len(q_lens), device=dev, num_q_heads=HQ).plan(qi, kv, **kw)
    out = torch.empty_like(q)
    return q, qi, p, (lambda: p.run(q, kv, out=out))
for b, n in [(8, 2048), (1, 16384), (16, 512)]:
    kv = ragged([n] * b); q, qi, p, run = planned([n] * b, kv)
    fl = 4 * b * n * n * HQ * D / 2
    t = bench(run); line = f"b={b} n={n}: BatchPrefill {fl/t/1e9:.0f} TFLOP/s ({t:.3f} ms) cfg={p.cfg}"
    tf = bench(lambda: attn.prefill(q, kv, qi, backend="triton")); line += f" | functional {fl/tf/1e9:.0f}"
    qd = q.view(b, n, HQ, D).transpose(1, 2); kd = kv.k.view(b, n, HK, D).transpose(1, 2); vd = kv.v.view(b, n, HK, D).transpose(1, 2)
    for name, be in [("flash", SDPBackend.FLASH_ATTENTION), ("cudnn", SDPBackend.CUDNN_ATTENTION)]:
        try:
            with sdpa_kernel(be):
                ts = bench(lambda: F(qd, kd, vd, is_causal=True, enable_gqa=True))
            line += f" | {name} {fl/ts/1e9:.0f} (x{ts/t:.2f})"
        except Exception as e:
            line += f" | {name} err {type(e).__name__}"
    print(line, flush=True)
# extend: 16 x (2048 cached + 512 new), paged prefix page 16 and 1, vs same-size ragged
for ps in (16, 1):
    kv = ragged([2560] * 16)
    pk = convert(kv, "NHD", page_size=ps) if ps > 1 else KVCache.token_pool(kv.k, kv.v, kv.page_indptr, torch.randperm(kv.k.shape[0], device=dev).int())
    q, qi, p, run = planned([512] * 16, pk); t = bench(run)
    _, _, _, run_r = planned([512] * 16, kv); tr = bench(run_r)
    fl = 4 * 16 * 512 * (2048 + 256) * HQ * D
    print(f"extend page={ps}: {fl/t/1e9:.0f} TFLOP/s ({t:.3f} ms), ragged {tr:.3f} ms, ratio {t/tr:.2f}", flush=True)
# custom mask: 50% masked tail vs all-true (non-causal, b=8 x 2048)
kv = ragged([2048] * 8)
full = torch.ones(8, 2048, 2048, dtype=torch.bool, device=dev)
half = full.clone(); half[:, :, 1024:] = False
ts = []
for m in (None, full, half):
    _, _, _, run = planned([2048] * 8, kv, causal=False, **({} if m is None else dict(custom_mask=m.flatten())))
    ts.append(bench(run))
print(f"mask: none {ts[0]:.3f} ms, all-true {ts[1]:.3f} ms, 50% tail {ts[2]:.3f} ms, ratio {ts[2]/ts[1]:.2f}", flush=True)
# CUDA graph of run()
kv = ragged([2048] * 8); q, qi, p, run = planned([2048] * 8, kv); run(); torch.cuda.synchronize()
g = torch.cuda.CUDAGraph()
with torch.cuda.graph(g):
    run()
print(f"graph replay b=8x2048: {bench(g.replay):.3f} ms vs run {bench(run):.3f} ms")
