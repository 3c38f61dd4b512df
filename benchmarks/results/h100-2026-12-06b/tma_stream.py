"""What one CTA's TMA stream can pull (issue 9; seventeenth session). BatchAttention's decode
programs (one CTA an SM, one loader warp, a ring of 2 x 64 KB) reach ~47 GB/s an SM on an idle
HBM whatever the page size (1-8 copies a block), the stage count (d64: 2-5) or the consumer
warpgroups (1 or 2). This kernel only streams: a ring of STAGES buffers of NBOX boxes of BOX rows
x 128 bf16 (32 KB a stage), each waited for and refilled at once, no math. If its GB/s an SM grows
with STAGES, one CTA is latency-bound and the attention kernel's cap lies in its own loop; if it
stays near 47, it is what one CTA's TMA copies can do. Usage: python tma_stream.py [check]"""
import sys

import torch
import triton
from triton.experimental import gluon
from triton.experimental.gluon import language as gl
from triton.experimental.gluon.language.nvidia.hopper import mbarrier, tma

tma_load = getattr(tma, "async_load", None) or tma.async_copy_global_to_shared


@gluon.jit
def _issue(desc, bufs, bars, s, row, BOX: gl.constexpr, NBOX: gl.constexpr):
    mbarrier.expect(bars.index(s), NBOX * desc.block_type.nbytes)
    for b in gl.static_range(NBOX):
        tma_load(desc, [row + b * BOX, 0], bars.index(s), bufs.index(s).slice(b * BOX, BOX))


@gluon.jit
def tma_stream_kernel(desc, blocks, STAGES: gl.constexpr, BOX: gl.constexpr, NBOX: gl.constexpr):
    ROWS: gl.constexpr = BOX * NBOX
    bufs = gl.allocate_shared_memory(desc.dtype, [STAGES, ROWS, 128], desc.layout)
    bars = gl.allocate_shared_memory(gl.int64, [STAGES, 1], mbarrier.MBarrierLayout())
    for i in gl.static_range(STAGES):
        mbarrier.init(bars.index(i), count=1)
    base = gl.program_id(0) * blocks * ROWS
    for j in gl.static_range(STAGES):
        _issue(desc, bufs, bars, j, base + j * ROWS, BOX, NBOX)
    for j in range(blocks):
        s = j % STAGES
        mbarrier.wait(bars.index(s), (j // STAGES) & 1)
        if j + STAGES < blocks:
            _issue(desc, bufs, bars, s, base + (j + STAGES) * ROWS, BOX, NBOX)
    for i in gl.static_range(STAGES):
        mbarrier.invalidate(bars.index(i))


def main():
    from triton.experimental.gluon.nvidia.hopper import TensorDescriptor
    from attn import benchutil as bu
    rows = (1 << 30) // 256                                   # 1 GiB of [rows, 128] bf16
    x = torch.randn(rows, 128, dtype=torch.bfloat16, device="cuda")
    for box, nbox in ((128, 1), (16, 8)):
        layout = gl.NVMMASharedLayout.get_default_for([box, 128], gl.bfloat16)
        desc = TensorDescriptor.from_tensor(x, [box, 128], layout)
        for progs in (33, 132):
            line = []
            blocks = rows // (box * nbox) // progs
            for stages in (2, 3, 4, 6):
                ms, _ = bu.gpu_time([lambda: tma_stream_kernel[(progs,)](desc, blocks, STAGES=stages, BOX=box,
                                                                          NBOX=nbox, num_warps=4)])
                gbs = progs * blocks * box * nbox * 256 / ms / 1e6
                line.append(f"{stages} stages {gbs:.0f} GB/s ({gbs / progs:.1f} an SM)")
            print(f"{nbox} box(es) of {box} rows, {progs} CTAs: " + "; ".join(line), flush=True)


def check():
    """Compile for sm_90 without a GPU."""
    from triton.backends.compiler import GPUTarget
    from triton.experimental.gluon._runtime import GluonASTSource
    for box, nbox in ((128, 1), (16, 8)):
        lay = gl.NVMMASharedLayout.get_default_for([box, 128], gl.bfloat16)
        src = GluonASTSource(tma_stream_kernel, signature={"desc": f"tensordesc<bf16[{box}, 128],{lay!r}>",
                                                           "blocks": "i32", "STAGES": "constexpr", "BOX": "constexpr",
                                                           "NBOX": "constexpr"},
                             constexprs={"STAGES": 6, "BOX": box, "NBOX": nbox})
        k = triton.compile(src, target=GPUTarget("cuda", 90, 32), options={"num_warps": 4})
        print(box, nbox, "shared", k.metadata.shared, "cp.async.bulk.tensor" in k.asm["ptx"])


if __name__ == "__main__":
    check() if "check" in sys.argv[1:] else main()
