"""Call-1 experiments (H200): prefill tile variants of attention_kernel vs a minimal TMA-descriptor
flash kernel vs cuDNN, same run; extend stage variants. Ratios, not absolutes, are what matter."""
import math, sys, torch, triton, triton.language as tl
import attn
from attn import benchutil as bu
from attn.triton_kernels.attention import attention_kernel
from torch.nn.attention import sdpa_kernel, SDPBackend
F = torch.nn.functional.scaled_dot_product_attention
HQ, HK, D, dt = 32, 8, 128, torch.bfloat16
triton.set_allocator(lambda size, align, stream: torch.empty(size, dtype=torch.int8, device="cuda"))
seen = set()
def regs():
    out = []
    for dc in attention_kernel.device_caches.values():
        for k in dc[0].values():
            out.append((k.n_regs, k.n_spills))
    new = [r for r in out if r not in seen]; seen.update(new); return new
def T(calls):
    return bu.gpu_time(calls)[0]

@triton.jit
def fa_tma(q_ptr, k_ptr, v_ptr, o_ptr, N, TOTAL, qk_scale, HQ: tl.constexpr, HK: tl.constexpr, D: tl.constexpr,
           BLOCK_M: tl.constexpr, BLOCK_N: tl.constexpr, CAUSAL: tl.constexpr, STAGES: tl.constexpr):
    n_m = tl.cdiv(N, BLOCK_M)
    pid_m = n_m - 1 - tl.program_id(0)
    bh = tl.program_id(1)
    b = bh // HQ
    h = bh % HQ
    hk = h // (HQ // HK)
    qd = tl.make_tensor_descriptor(q_ptr + h * D, shape=[TOTAL, D], strides=[HQ * D, 1], block_shape=[BLOCK_M, D])
    od = tl.make_tensor_descriptor(o_ptr + h * D, shape=[TOTAL, D], strides=[HQ * D, 1], block_shape=[BLOCK_M, D])
    kd = tl.make_tensor_descriptor(k_ptr + hk * D, shape=[TOTAL, D], strides=[HK * D, 1], block_shape=[BLOCK_N, D])
    vd = tl.make_tensor_descriptor(v_ptr + hk * D, shape=[TOTAL, D], strides=[HK * D, 1], block_shape=[BLOCK_N, D])
    row0 = b * N
    start_m = pid_m * BLOCK_M
    q = qd.load([row0 + start_m, 0])
    acc = tl.zeros((BLOCK_M, D), tl.float32)
    m_i = tl.full((BLOCK_M,), -float("inf"), tl.float32)
    l_i = tl.zeros((BLOCK_M,), tl.float32)
    hi_full = start_m if CAUSAL else N
    for s in tl.range(0, hi_full, BLOCK_N, num_stages=STAGES):
        k = kd.load([row0 + s, 0])
        qk = tl.dot(q, k.T)
        m_new = tl.maximum(m_i, tl.max(qk, 1) * qk_scale)
        p = tl.math.exp2(qk * qk_scale - m_new[:, None])
        alpha = tl.math.exp2(m_i - m_new)
        l_i = l_i * alpha + tl.sum(p, 1)
        v = vd.load([row0 + s, 0])
        acc = acc * alpha[:, None] + tl.dot(p.to(v.dtype), v)
        m_i = m_new
    if CAUSAL:
        offs_m = start_m + tl.arange(0, BLOCK_M)
        for s in range(start_m, start_m + BLOCK_M, BLOCK_N):
            k = kd.load([row0 + s, 0])
            qk = tl.dot(q, k.T)
            qk = tl.where(offs_m[:, None] >= s + tl.arange(0, BLOCK_N)[None, :], qk * qk_scale, -float("inf"))
            m_new = tl.maximum(m_i, tl.max(qk, 1))
            p = tl.math.exp2(qk - m_new[:, None])
            alpha = tl.math.exp2(m_i - m_new)
            l_i = l_i * alpha + tl.sum(p, 1)
            v = vd.load([row0 + s, 0])
            acc = acc * alpha[:, None] + tl.dot(p.to(v.dtype), v)
            m_i = m_new
    od.store([row0 + start_m, 0], (acc / l_i[:, None]).to(o_ptr.dtype.element_ty))

def tma_runner(q, k, v, o, b, n, bm, bn, warps, stages, causal=True):
    grid = (triton.cdiv(n, bm), b * HQ)
    def run():
        fa_tma[grid](q, k, v, o, n, b * n, (1 / math.sqrt(D)) * 1.4426950408889634, HQ=HQ, HK=HK, D=D,
                     BLOCK_M=bm, BLOCK_N=bn, CAUSAL=causal, STAGES=stages, num_warps=warps, num_stages=stages)
    return run

def prefill_part():
    print("## prefill (ragged, causal, bf16, 32q/8kv, d128)", flush=True)
    variants = [("128x64 8w 3s (heur)", None), ("128x64 8w 4s", dict(BLOCK_M=128, BLOCK_N=64, num_warps=8, num_stages=4)),
                ("128x64 8w 2s", dict(BLOCK_M=128, BLOCK_N=64, num_warps=8, num_stages=2)),
                ("128x128 8w 2s", dict(BLOCK_M=128, BLOCK_N=128, num_warps=8, num_stages=2)),
                ("128x128 8w 3s", dict(BLOCK_M=128, BLOCK_N=128, num_warps=8, num_stages=3))]
    tmas = [(128, 64, 8, 3), (128, 128, 8, 2), (128, 128, 8, 3), (128, 64, 4, 3)]
    for b, n in [(8, 2048), (1, 16384), (16, 512)]:
        fl = 4 * b * n * n * HQ * D / 2
        kv = bu.make_kv([n] * b, layout="ragged", page_size=1)
        qi = torch.arange(0, b * n + 1, n, dtype=torch.int32, device="cuda")
        q = torch.randn(b * n, HQ, D, device="cuda").to(dt)
        out = torch.empty_like(q)
        p = attn.BatchPrefill(max_tokens=b * n, max_batch=b, num_q_heads=HQ).plan(qi, kv)
        base = dict(p._planned["cfg"])
        qd = q.view(b, n, HQ, D).transpose(1, 2); kd = kv.k.view(b, n, HK, D).transpose(1, 2); vd = kv.v.view(b, n, HK, D).transpose(1, 2)
        with sdpa_kernel(SDPBackend.CUDNN_ATTENTION):
            ref = F(qd, kd, vd, is_causal=True, enable_gqa=True)
            tc = T([lambda: F(qd, kd, vd, is_causal=True, enable_gqa=True)])
        ref = ref.transpose(1, 2).reshape(b * n, HQ, D)
        print(f"### b={b} n={n}: cuDNN {tc*1e3:.1f} us {fl/tc/1e9:.0f} TFLOP/s; base cfg {base}", flush=True)
        for name, cfg in variants:
            p._planned["cfg"] = dict(base) if cfg is None else dict(base, **cfg)
            try:
                t = T([lambda: p.run(q, kv, out=out)])
                err = ((out.float() - ref.float()).abs().max()).item()
                print(f"| attn {name} | {t*1e3:.1f} us | {fl/t/1e9:.0f} TFLOP/s | {tc/t:.2f}x cuDNN | err {err:.3f} | {regs()}", flush=True)
            except Exception as e:
                print(f"| attn {name} | FAILED {type(e).__name__}: {str(e)[:200]}", flush=True)
        p._planned["cfg"] = base
        o = torch.empty_like(q)
        for bm, bn, w, s in tmas:
            try:
                r = tma_runner(q, kv.k, kv.v, o, b, n, bm, bn, w, s)
                t = T([r])
                err = ((o.float() - ref.float()).abs().max()).item()
                ks = [(k.n_regs, k.n_spills) for dc in fa_tma.device_caches.values() for k in dc[0].values()]
                print(f"| tma {bm}x{bn} {w}w {s}s | {t*1e3:.1f} us | {fl/t/1e9:.0f} TFLOP/s | {tc/t:.2f}x cuDNN | err {err:.3f} | {ks[-1:]}", flush=True)
            except Exception as e:
                print(f"| tma {bm}x{bn} {w}w {s}s | FAILED {type(e).__name__}: {str(e)[:300]}", flush=True)

def extend_part():
    print("## extend 16 x (2048 + 512) causal", flush=True)
    fl = 4 * 16 * 512 * (2048 + 256) * HQ * D
    qi = torch.arange(0, 16 * 512 + 1, 512, dtype=torch.int32, device="cuda")
    q = torch.randn(16 * 512, HQ, D, device="cuda").to(dt)
    out = torch.empty_like(q)
    for layout, ps, stages in (("NHD", 16, (5, 6, 7, 4)), ("pool", 1, (5, 6)), ("ragged", 1, (3, 4, 5))):
        kv = bu.make_kv([2560] * 16, layout=layout, page_size=ps)
        p = attn.BatchPrefill(max_tokens=q.shape[0], max_batch=16, num_q_heads=HQ).plan(qi, kv)
        base = dict(p._planned["cfg"])
        ref = attn.reference.prefill(q[:512 * 2], kv, qi[:3]) if False else None
        for s in stages:
            p._planned["cfg"] = dict(base, BLOCK_M=128, BLOCK_N=64, num_warps=8, num_stages=s)
            try:
                t = T([lambda: p.run(q, kv, out=out)])
                print(f"| {layout} ps{ps} 128x64 8w {s}s | {t*1e3:.1f} us | {fl/t/1e9:.0f} TFLOP/s | base {base} | {regs()}", flush=True)
            except Exception as e:
                print(f"| {layout} ps{ps} {s}s | FAILED {type(e).__name__}: {str(e)[:200]}", flush=True)

if __name__ == "__main__":
    parts = sys.argv[1:] or ["prefill", "extend"]
    for part in parts:
        globals()[part + "_part"]()
