"""Address math shared by every kernel: a KV element's offset from its layout's strides."""
import triton
import triton.language as tl


@triton.jit
def kv_offset(page, head, slot, d, s_page, s_head, s_slot, s_dhi, s_dlo, SPLIT: tl.constexpr):
    """Element offset of (page, head, slot, d) in a K or V store (layouts/descriptors.py).

    The page term is 64-bit: pools of 2**31+ elements are common (a 70B model's cache on one
    GPU), and everything else is bounded by one page."""
    off = page.to(tl.int64) * s_page + head * s_head + slot * s_slot
    if SPLIT == 1:
        return off + d * s_dhi
    else:
        return off + (d // SPLIT) * s_dhi + (d % SPLIT) * s_dlo
