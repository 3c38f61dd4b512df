"""write_kv: scatter new tokens' K and V into a cache at a slot mapping (vLLM's reshape_and_cache),
for every layout through its strides."""
import torch
import triton
import triton.language as tl

from .addressing import kv_offset


@triton.jit
def _kv_write_kernel(
    k_new, v_new, slot_mapping, k_cache, v_cache,
    s_kn_t, s_kn_h, s_vn_t, s_vn_h,
    ks_page, ks_head, ks_slot, ks_dhi, ks_dlo,
    vs_page, vs_head, vs_slot, vs_dhi, vs_dlo,
    PAGE_SIZE, H, D,
    K_SPLIT: tl.constexpr, V_SPLIT: tl.constexpr, BLOCK_H: tl.constexpr, BLOCK_D: tl.constexpr,
):
    t = tl.program_id(0)
    slot = tl.load(slot_mapping + t).to(tl.int64)
    if slot < 0:            # vLLM pads batches with slot -1: nothing to write
        return
    page = slot // PAGE_SIZE
    in_page = slot % PAGE_SIZE
    h = tl.arange(0, BLOCK_H)[:, None]
    d = tl.arange(0, BLOCK_D)[None, :]
    mask = (h < H) & (d < D)
    k = tl.load(k_new + t.to(tl.int64) * s_kn_t + h * s_kn_h + d, mask=mask)
    v = tl.load(v_new + t.to(tl.int64) * s_vn_t + h * s_vn_h + d, mask=mask)
    k_off = kv_offset(page, h, in_page, d, ks_page, ks_head, ks_slot, ks_dhi, ks_dlo, K_SPLIT)
    v_off = kv_offset(page, h, in_page, d, vs_page, vs_head, vs_slot, vs_dhi, vs_dlo, V_SPLIT)
    tl.store(k_cache + k_off, k.to(k_cache.dtype.element_ty), mask=mask)
    tl.store(v_cache + v_off, v.to(v_cache.dtype.element_ty), mask=mask)


def kv_write(kv, k_new: torch.Tensor, v_new: torch.Tensor, slot_mapping: torch.Tensor) -> None:
    """k_new, v_new [tokens, kv_heads, d] (unit stride along d); slot_mapping int [tokens]."""
    n, h, d = k_new.shape
    if n == 0:
        return
    ks, vs = kv.k_strides, kv.v_strides
    _kv_write_kernel[(n,)](
        k_new, v_new, slot_mapping, kv.k, kv.v,
        k_new.stride(0), k_new.stride(1), v_new.stride(0), v_new.stride(1),
        ks.page, ks.head, ks.slot, ks.dhi, ks.dlo,
        vs.page, vs.head, vs.slot, vs.dhi, vs.dlo,
        kv.page_size, h, d,
        K_SPLIT=ks.split, V_SPLIT=vs.split,
        BLOCK_H=triton.next_power_of_2(h), BLOCK_D=triton.next_power_of_2(d),
        num_warps=_num_warps(triton.next_power_of_2(h), triton.next_power_of_2(d)),
    )


def _num_warps(block_h: int, block_d: int) -> int:
    # Measured by ci/compile_matrix.py (Triton 3.6 and 3.9, sm_80/sm_90): 16 elements per thread
    # spill at ptxas's 64-register choice (the 64-bit cache offsets cost two registers each);
    # 8 per thread, or 32 at 8192-element tiles, do not.
    elems = block_h * block_d
    return 8 if elems >= 8192 else max(4, elems // 256)


# Every variant the launcher can pick (see attn.triton_kernels.specs): BLOCK_H = next_pow2(kv_heads)
# for kv_heads up to 32, BLOCK_D = next_pow2(head_dim) for head dims 64..256,
# the vLLM K split (x = 8 for 16-bit caches) or none (NHD, HND and ragged compile to one binary).
# The JIT specializes integer arguments equal to 1 into constants: the unit head-dim strides are
# constexprs here as they are at run time. Strides are multiples of 16 for page_size 16.
def compile_specs():
    from .specs import KernelSpec, signature
    specs = []
    per_layout = (
        ("NHD|HND|ragged", dict(K_SPLIT=1, ks_dhi=1, vs_dhi=1),
         ("ks_page", "ks_head", "ks_slot", "vs_page", "vs_head", "vs_slot")),
        ("vllm", dict(K_SPLIT=8, ks_dlo=1),
         ("ks_page", "ks_head", "ks_dhi", "vs_page", "vs_head", "vs_dhi")),
    )
    for layouts, layout_cx, aligned in per_layout:
        for dt in ("fp16", "bf16"):
            for slot_t in ("i64", "i32"):
                for block_h in (1, 2, 4, 8, 16, 32):
                    for block_d in (64, 128, 256):
                        if slot_t == "i32" and (block_h, block_d) != (8, 128):
                            continue        # the index dtype changes one load; one size is enough
                        cx = dict(layout_cx, V_SPLIT=1, BLOCK_H=block_h, BLOCK_D=block_d)
                        sig = signature(_kv_write_kernel, cx, k_new=f"*{dt}", v_new=f"*{dt}",
                                        k_cache=f"*{dt}", v_cache=f"*{dt}", slot_mapping=f"*{slot_t}")
                        specs.append(KernelSpec(
                            "kv_write", f"{layouts}/{dt}/slot_{slot_t}/h{block_h}/d{block_d}",
                            _kv_write_kernel, sig, cx, options=dict(num_warps=_num_warps(block_h, block_d)),
                            aligned=("s_kn_t", "s_kn_h", "s_vn_t", "s_vn_h") + aligned))
    return specs
