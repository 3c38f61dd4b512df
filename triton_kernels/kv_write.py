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
        num_warps=4,
    )
