"""What one CTA's TMA stream can pull (issue 9; seventeenth session). BatchAttention's decode
programs (one CTA an SM, one loader warp, a ring of 2 x 64 KB) reach ~47 GB/s an SM on an idle
HBM whatever the page size (1-8 copies a block), the stage count (d64: 2-5) or the consumer
warpgroups (1 or 2). This kernel only streams: a ring of STAGES buffers of NBOX boxes of BOX rows
x 128 bf16 (32 KB a stage), each waited for and refilled at once, no math. If its GB/s an SM grows
with STAGES, one CTA is latency-bound and the attention kernel's cap lies in its own loop; if it
stays near 47, it is what one CTA's TMA copies can do. Usage: python tma_stream.py [ws] [check] (ws: the warp-specialized ring, below)"""
import sys

import torch
import triton
from triton.experimental import gluon
from triton.experimental.gluon import language as gl
from triton.experimental.gluon.language.nvidia.hopper import mbarrier, tma, warpgroup_mma, warpgroup_mma_wait

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


# ---- call 7: the attention kernel's protocol (a loader warp, a consumer warpgroup, K and V rings
# with ready / free barriers), with and without its math (q K^T and P V of a 64-row tile, wgmma).


@gluon.jit
def _ws_loader(desc, k_bufs, v_bufs, k_ready, v_ready, kv_free, blocks, STAGES: gl.constexpr):
    base = gl.program_id(0) * blocks * 256
    for j in range(blocks):
        s = j % STAGES
        mbarrier.wait(kv_free.index(s), ((j // STAGES) & 1) ^ 1)
        mbarrier.expect(k_ready.index(s), desc.block_type.nbytes)
        tma_load(desc, [base + j * 256, 0], k_ready.index(s), k_bufs.index(s))
        mbarrier.expect(v_ready.index(s), desc.block_type.nbytes)
        tma_load(desc, [base + j * 256 + 128, 0], v_ready.index(s), v_bufs.index(s))


@gluon.jit
def _ws_consumer(q_smem, k_bufs, v_bufs, k_ready, v_ready, kv_free, out_ptr, blocks, STAGES: gl.constexpr,
                 MATH: gl.constexpr):
    s_layout: gl.constexpr = gl.NVMMADistributedLayout(version=[3, 0], warps_per_cta=[4, 1],
                                                       instr_shape=[16, 128, 16])
    p_layout: gl.constexpr = gl.DotOperandLayout(operand_index=0, parent=s_layout, k_width=2)
    acc = gl.zeros([64, 128], gl.float32, s_layout)
    zero = gl.zeros([64, 128], gl.float32, s_layout)
    for j in range(blocks):
        s = j % STAGES
        mbarrier.wait(k_ready.index(s), (j // STAGES) & 1)
        if MATH:
            qk = warpgroup_mma(q_smem, k_bufs.index(s).permute((1, 0)), zero, use_acc=False, is_async=True)
            qk, _, _ = warpgroup_mma_wait(num_outstanding=0, deps=[qk, q_smem, k_bufs.index(s)])
            p = gl.convert_layout(gl.exp2(qk * 0.01).to(gl.bfloat16), p_layout)
        mbarrier.wait(v_ready.index(s), (j // STAGES) & 1)
        if MATH:
            acc = warpgroup_mma(p, v_bufs.index(s), acc, is_async=True)
            acc, _ = warpgroup_mma_wait(num_outstanding=0, deps=[acc, v_bufs.index(s)])
        mbarrier.arrive(kv_free.index(s), count=1)
    gl.store(out_ptr + gl.program_id(0), gl.sum(gl.sum(acc, axis=1), axis=0))


@gluon.jit
def tma_ws_kernel(desc, out_ptr, blocks, STAGES: gl.constexpr, MATH: gl.constexpr):
    q_smem = gl.allocate_shared_memory(desc.dtype, [128, 128], desc.layout)       # a whole box; 64 rows used
    k_bufs = gl.allocate_shared_memory(desc.dtype, [STAGES, 128, 128], desc.layout)
    v_bufs = gl.allocate_shared_memory(desc.dtype, [STAGES, 128, 128], desc.layout)
    k_ready = gl.allocate_shared_memory(gl.int64, [STAGES, 1], mbarrier.MBarrierLayout())
    v_ready = gl.allocate_shared_memory(gl.int64, [STAGES, 1], mbarrier.MBarrierLayout())
    kv_free = gl.allocate_shared_memory(gl.int64, [STAGES, 1], mbarrier.MBarrierLayout())
    for i in gl.static_range(STAGES):
        mbarrier.init(k_ready.index(i), count=1)
        mbarrier.init(v_ready.index(i), count=1)
        mbarrier.init(kv_free.index(i), count=1)
    # q: 64 rows of the tensor, through the K ring's first stage's barrier before the loop
    mbarrier.expect(k_ready.index(0), desc.block_type.nbytes)
    tma_load(desc, [0, 0], k_ready.index(0), q_smem)
    mbarrier.wait(k_ready.index(0), 0)
    mbarrier.invalidate(k_ready.index(0))
    mbarrier.init(k_ready.index(0), count=1)
    gl.warp_specialize([
        (_ws_consumer, (q_smem.slice(0, 64), k_bufs, v_bufs, k_ready, v_ready, kv_free, out_ptr, blocks, STAGES, MATH)),
        (_ws_loader, (desc, k_bufs, v_bufs, k_ready, v_ready, kv_free, blocks, STAGES)),
    ], [1], [40])


def main_ws():
    from triton.experimental.gluon.nvidia.hopper import TensorDescriptor
    from attn import benchutil as bu
    rows = (1 << 30) // 256
    x = torch.randn(rows, 128, dtype=torch.bfloat16, device="cuda")
    desc = TensorDescriptor.from_tensor(x, [128, 128], gl.NVMMASharedLayout.get_default_for([128, 128], gl.bfloat16))
    out = torch.empty(132, dtype=torch.float32, device="cuda")
    for progs in (33, 132):
        line = []
        blocks = rows // 256 // progs
        for math in (False, True):
            for stages in (2, 3):
                ms, _ = bu.gpu_time([lambda: tma_ws_kernel[(progs,)](desc, out, blocks, STAGES=stages, MATH=math,
                                                                      num_warps=4)])
                gbs = progs * blocks * 256 * 256 / ms / 1e6
                line.append(f"{'math' if math else 'no math'} {stages} stages {gbs:.0f} GB/s ({gbs / progs:.1f} an SM)")
        print(f"warp-specialized K+V ring (64 KB a stage), {progs} CTAs: " + "; ".join(line), flush=True)


def check_ws():
    from triton.backends.compiler import GPUTarget
    from triton.experimental.gluon._runtime import GluonASTSource
    lay = gl.NVMMASharedLayout.get_default_for([128, 128], gl.bfloat16)
    for math in (False, True):
        src = GluonASTSource(tma_ws_kernel, signature={"desc": f"tensordesc<bf16[128, 128],{lay!r}>",
                                                       "out_ptr": "*fp32", "blocks": "i32", "STAGES": "constexpr",
                                                       "MATH": "constexpr"},
                             constexprs={"STAGES": 3, "MATH": math})
        k = triton.compile(src, target=GPUTarget("cuda", 90, 32), options={"num_warps": 4})
        print("ws math", math, "shared", k.metadata.shared, k.asm["ptx"].count("wgmma.mma_async"))


if __name__ == "__main__":
    ws, only_check = "ws" in sys.argv[1:], "check" in sys.argv[1:]
    (check_ws if ws else check)() if only_check else (main_ws if ws else main)()
