"""Address math shared by every kernel: a KV element's offset from its layout's strides."""
import triton
import triton.language as tl


@triton.jit
def kv_offset(page, head, slot, d, s_page, s_head, s_slot, s_dhi, s_dlo, SPLIT: tl.constexpr):
    """Element offset of (page, head, slot, d) in a K or V store (layouts/descriptors.py).

    The page term is 64-bit: pools of 2**31+ elements are common (a 70B model's cache on one
    GPU), and everything else is bounded by one page."""
    if SPLIT == 1:
        return page.to(tl.int64) * s_page + head * s_head + slot * s_slot + d * s_dhi
    else:
        # vLLM's K: a slot's x dims are one 16-byte group, so s_slot is a multiple of SPLIT (the
        # layout requires it; attn.plan_decode checks). Written as (s_slot // SPLIT) * SPLIT the
        # compiler sees that and loads each group as one 16-byte vector instead of x scalars.
        off = page.to(tl.int64) * s_page + head * s_head + (slot * (s_slot // SPLIT)) * SPLIT
        return off + (d // SPLIT) * s_dhi + (d % SPLIT) * s_dlo


@triton.jit
def dim_offset(d, s_dhi, s_dlo, SPLIT: tl.constexpr):
    """The head-dim part of kv_offset alone (32-bit): add it to a row's 64-bit base."""
    if SPLIT == 1:
        return d * s_dhi
    else:
        return (d // SPLIT) * s_dhi + (d % SPLIT) * s_dlo


def dense_page_heads(kv) -> bool:
    """Host side: whether kv is vLLM's split layout with each page's K and V of one head stored as
    one dense run (K [d/x][slot][x], V [d][slot]; a strided view of a larger cache may not be), so
    that kernels may read or write a page-head as one flat run."""
    ks, vs = kv.k_strides, kv.v_strides
    return (ks.split > 1 and ks.dlo == 1 and ks.slot == ks.split and ks.dhi == kv.page_size * ks.split
            and vs.split == 1 and vs.slot == 1 and vs.dhi == kv.page_size)
