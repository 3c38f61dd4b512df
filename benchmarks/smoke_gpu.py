"""First GPU look: correctness of prefill/decode in bf16 and rough timings beside SDPA."""
import math, time, torch, triton
import attn
from attn.layouts import KVCache, convert
from torch.nn.attention import sdpa_kernel, SDPBackend

dev = "cuda"
torch.manual_seed(0)
def bench(fn):
    return triton.testing.do_bench(fn, warmup=25, rep=100, return_mode="median")

def ragged(lens, H, D, dtype=torch.bfloat16):
    lens = torch.tensor(lens, dtype=torch.int32, device=dev)
    kr = torch.randn(int(lens.sum()), H, D, dtype=dtype, device=dev); vr = torch.randn_like(kr)
    ip = torch.zeros(len(lens)+1, dtype=torch.int32, device=dev); ip[1:] = torch.cumsum(lens, 0)
    return KVCache.ragged(kr, vr, ip), ip

def rel(a,b): return ((a.float()-b.float()).norm()/b.float().norm()).item()
# correctness
kv, ip = ragged([300, 1, 0, 513], 8, 128)
for lay, ps in [("ragged", 1), ("HND", 16), ("NHD", 3), ("vllm", 16)]:
    c = kv if lay == "ragged" else convert(kv, lay, page_size=ps)
    q = torch.randn(int(ip[-1]), 32, 128, dtype=torch.bfloat16, device=dev)
    o = attn.prefill(q, c, ip, backend="triton"); r = attn.prefill(q, c, ip, backend="torch")
    qd = torch.randn(4, 32, 128, dtype=torch.bfloat16, device=dev)
    od = attn.decode(qd, c, backend="triton"); rd = attn.decode(qd, c, backend="torch")
    print(f"{lay:6s} prefill rel {rel(o, r):.2e}  decode rel {rel(od, rd):.2e}")

# ceilings
x = torch.empty(2**30 // 2, dtype=torch.bfloat16, device=dev).normal_(); y = torch.empty_like(x)
t = bench(lambda: y.copy_(x)); copy_bw = 2 * x.numel() * 2 / t / 1e6
a = torch.randn(8192, 8192, dtype=torch.bfloat16, device=dev); bm = torch.randn_like(a)
t = bench(lambda: a @ bm); mm = 2 * 8192**3 / t / 1e9
print(f"copy {copy_bw:.0f} GB/s  matmul {mm:.0f} TFLOP/s")
del x, y, a, bm

# prefill
for b, n in [(8, 2048), (1, 16384), (16, 512)]:
    kv, ip = ragged([n] * b, 8, 128)
    q = torch.randn(b * n, 32, 128, dtype=torch.bfloat16, device=dev)
    fl = 4 * b * n * n * 32 * 128 / 2
    t = bench(lambda: attn.prefill(q, kv, ip, backend="triton"))
    qd = q.view(b, n, 32, 128).transpose(1, 2); kd = kv.k.view(b, n, 8, 128).transpose(1, 2); vd = kv.v.view(b, n, 8, 128).transpose(1, 2)
    res = f"b={b} n={n}: attn {fl/t/1e9:.0f} TFLOP/s ({t:.3f} ms)"
    for name, be in [("flash", SDPBackend.FLASH_ATTENTION), ("cudnn", SDPBackend.CUDNN_ATTENTION)]:
        try:
            with sdpa_kernel(be):
                ts = bench(lambda: torch.nn.functional.scaled_dot_product_attention(qd, kd, vd, is_causal=True, enable_gqa=True))
            res += f"  {name} {fl/ts/1e9:.0f}"
        except Exception as e:
            res += f"  {name} err {type(e).__name__}"
    print(res)

# decode
for b, n, ps in [(64, 4096, 16), (8, 32768, 16), (1, 131072, 16), (64, 4096, 1)]:
    kv, ip = ragged([n] * b, 8, 128)
    c = convert(kv, "HND", page_size=ps) if ps > 1 else KVCache.token_pool(kv.k, kv.v, ip, torch.randperm(b * n, device=dev).int())
    q = torch.randn(b, 32, 128, dtype=torch.bfloat16, device=dev)
    byts = 2 * b * n * 8 * 128 * 2
    t = bench(lambda: attn.decode(q, c, backend="triton"))
    print(f"decode b={b} n={n} ps={ps}: {byts/t/1e6:.0f} GB/s ({t*1000:.1f} us) = {byts/t/1e6/copy_bw:.0%} of copy")
