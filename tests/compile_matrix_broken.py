"""Deliberately broken compile specs for tests/test_compile_matrix.py (not a test module): one
overflows gfx90a's 64 KB of LDS, one spills registers on sm_80. ci/compile_matrix.py must fail on
each (`--specs-from tests/compile_matrix_broken.py`)."""
import triton
import triton.language as tl


@triton.jit
def _tile_matmul(a, b, c, BM: tl.constexpr, BN: tl.constexpr, BK: tl.constexpr):
    m = tl.arange(0, BM)
    n = tl.arange(0, BN)
    k = tl.arange(0, BK)
    x = tl.load(a + m[:, None] * BK + k[None, :])
    y = tl.load(b + k[:, None] * BN + n[None, :])
    tl.store(c + m[:, None] * BN + n[None, :], tl.dot(x, y))


def compile_specs():
    from attn.triton_kernels.specs import KernelSpec, signature
    out = []
    # 64x1024 + 1024x64 fp16 operands staged through LDS: 128 KB or more, past gfx90a's 64 KB.
    cx = dict(BM=64, BN=64, BK=1024)
    out.append(KernelSpec("broken", "lds_overflow", _tile_matmul,
                          signature(_tile_matmul, cx, a="*fp16", b="*fp16", c="*fp32"), cx,
                          options=dict(num_warps=4, num_stages=1), targets=("gfx90a",)))
    # a 128x128 fp32 accumulator in one warp: 512 values per thread, past 255 registers.
    cx = dict(BM=128, BN=128, BK=32)
    out.append(KernelSpec("broken", "spill", _tile_matmul,
                          signature(_tile_matmul, cx, a="*fp16", b="*fp16", c="*fp32"), cx,
                          options=dict(num_warps=1, num_stages=1), targets=("sm_80",)))
    return out
