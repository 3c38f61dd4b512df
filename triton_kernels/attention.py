"""Attention over any KV layout: the one kernel behind prefill, extend, decode and split-KV.

A launch runs a list of work items. Item i is (request, first query token, KV range, output
slot): the queries of one tile of one request against one chunk of its KV. Prefill makes an item
per query tile; decode an item per KV chunk (split-KV); the persistent mixed batch both. Items
whose request is split write partial (out, lse) rows that attn.merge_states combines.

Rows of the M tile are (query token, q head) pairs of ONE kv head: the q heads that share a kv
head are packed into M (CK-tile's BatchDecode), so K and V are read once per kv head. With
GH = heads per tile (the GQA group, or BLOCK_M when the group is larger), row m is token
m // GH and head m % GH of the group.

K and V are read in place through the layout's strides and the page map (layouts/descriptors.py);
loads are masked by sequence length, so slots past it may hold NaN.
"""
import triton
import triton.language as tl

from .addressing import kv_offset

LOG2E = tl.constexpr(1.4426950408889634)
LN2 = tl.constexpr(0.6931471805599453)


@triton.jit
def _tanh(x):
    # tl has no tanh on every backend; 2*sigmoid(2x) - 1 is exact enough in fp32 and portable.
    return 2.0 * tl.sigmoid(2.0 * x) - 1.0


@triton.jit
def attend_block(
    acc, m_i, l_i, q,
    k_ptr, v_ptr, pages_ptr, page_base, start_n, kv_len, kv_head,
    batch, q_pos, q_head, mask_ptr, mask_row, mask_stride,
    sm_scale, softcap, window_left,
    ks_page, ks_head, ks_slot, ks_dhi, ks_dlo,
    vs_page, vs_head, vs_slot, vs_dhi, vs_dlo,
    HEAD_DIM: tl.constexpr, BLOCK_D: tl.constexpr, BLOCK_N: tl.constexpr, PAGE_SIZE: tl.constexpr,
    K_SPLIT: tl.constexpr, V_SPLIT: tl.constexpr, IDENTITY_PAGES: tl.constexpr,
    MASKED: tl.constexpr, CAUSAL: tl.constexpr, WINDOW: tl.constexpr, HAS_MASK: tl.constexpr,
    SOFTCAP: tl.constexpr, TRANSFORM: tl.constexpr, CACHE: tl.constexpr, PRECISION: tl.constexpr,
):
    """One block of BLOCK_N keys: load K and V through the page map, scores, masks, online softmax.
    m_i is kept in log2 units. MASKED=False is for blocks the caller knows are fully visible."""
    pos = start_n + tl.arange(0, BLOCK_N)
    logical = pos // PAGE_SIZE
    slot = pos % PAGE_SIZE
    d = tl.arange(0, BLOCK_D)
    in_len = pos < kv_len
    if IDENTITY_PAGES:
        page = page_base + logical
    elif MASKED:
        page = tl.load(pages_ptr + page_base + logical, mask=in_len, other=0)
    else:
        page = tl.load(pages_ptr + page_base + logical)
    k_off = kv_offset(page[:, None], kv_head, slot[:, None], d[None, :],
                      ks_page, ks_head, ks_slot, ks_dhi, ks_dlo, K_SPLIT)
    v_off = kv_offset(page[:, None], kv_head, slot[:, None], d[None, :],
                      vs_page, vs_head, vs_slot, vs_dhi, vs_dlo, V_SPLIT)
    LOAD_MASK: tl.constexpr = MASKED or BLOCK_D != HEAD_DIM
    if LOAD_MASK:
        kmask = in_len[:, None] & (d < HEAD_DIM)[None, :]
        k = tl.load(k_ptr + k_off, mask=kmask, other=0.0, cache_modifier=CACHE)
    else:
        k = tl.load(k_ptr + k_off, cache_modifier=CACHE)
    s = tl.dot(q, tl.trans(k), input_precision=PRECISION)

    if SOFTCAP or TRANSFORM is not None:
        s = s * sm_scale
        if SOFTCAP:
            s = softcap * _tanh(s / softcap)
        if TRANSFORM is not None:
            s = TRANSFORM(s, batch, q_head[:, None], q_pos[:, None], pos[None, :])
        s = s * LOG2E
    else:
        s = s * (sm_scale * LOG2E)
    if MASKED:
        keep = in_len[None, :]
        if CAUSAL:
            keep = keep & (pos[None, :] <= q_pos[:, None])
        if WINDOW:
            keep = keep & (pos[None, :] >= q_pos[:, None] - window_left)
        if HAS_MASK:
            bits = tl.load(mask_ptr + mask_row[:, None] + pos[None, :], mask=keep & (mask_row[:, None] >= 0),
                           other=0)
            keep = keep & (bits != 0)
        s = tl.where(keep, s, float("-inf"))

    m_new = tl.maximum(m_i, tl.max(s, 1))
    m_safe = tl.where(m_new == float("-inf"), 0.0, m_new)    # a row with no key yet: keep it at 0
    p = tl.math.exp2(s - m_safe[:, None])
    alpha = tl.math.exp2(m_i - m_safe)
    l_i = l_i * alpha + tl.sum(p, 1)
    if LOAD_MASK:
        v = tl.load(v_ptr + v_off, mask=kmask, other=0.0, cache_modifier=CACHE)
    else:
        v = tl.load(v_ptr + v_off, cache_modifier=CACHE)
    acc = acc * alpha[:, None] + tl.dot(p.to(v.dtype), v, input_precision=PRECISION)
    return acc, m_new, l_i


@triton.jit
def attention_kernel(
    q_ptr, s_q_tok, s_q_head, o_ptr, s_o_tok, s_o_head, lse_ptr, s_lse_tok,
    part_o_ptr, part_lse_ptr,
    q_indptr, page_indptr, page_indices, seq_lens, total_q,
    k_ptr, v_ptr,
    ks_page, ks_head, ks_slot, ks_dhi, ks_dlo,
    vs_page, vs_head, vs_slot, vs_dhi, vs_dlo,
    item_req, item_q_start, item_kv_start, item_kv_end, item_out, num_items_ptr,
    mask_ptr, mask_indptr,
    sm_scale, softcap, window_left,
    NUM_Q_HEADS: tl.constexpr, GROUP: tl.constexpr, GH: tl.constexpr, TQ: tl.constexpr,
    HEAD_DIM: tl.constexpr, BLOCK_D: tl.constexpr, BLOCK_M: tl.constexpr, BLOCK_N: tl.constexpr,
    PAGE_SIZE: tl.constexpr, K_SPLIT: tl.constexpr, V_SPLIT: tl.constexpr, IDENTITY_PAGES: tl.constexpr,
    CAUSAL: tl.constexpr, WINDOW: tl.constexpr, HAS_MASK: tl.constexpr, SOFTCAP: tl.constexpr,
    TRANSFORM: tl.constexpr, RETURN_LSE: tl.constexpr, HAS_PARTIALS: tl.constexpr,
    CACHE: tl.constexpr, PRECISION: tl.constexpr,
):
    item = tl.program_id(0)
    if item >= tl.load(num_items_ptr):      # the grid is sized for the planned maximum
        return
    HEAD_BLOCKS: tl.constexpr = (GROUP + GH - 1) // GH
    kv_head = tl.program_id(1) // HEAD_BLOCKS
    g0 = (tl.program_id(1) % HEAD_BLOCKS) * GH

    b = tl.load(item_req + item)
    q_start = tl.load(item_q_start + item)
    q_begin = tl.load(q_indptr + b).to(tl.int64)
    q_len = (tl.load(q_indptr + b + 1) - q_begin).to(tl.int32)
    kv_len = tl.load(seq_lens + b).to(tl.int32)
    lo = tl.load(item_kv_start + item)
    hi = tl.minimum(tl.load(item_kv_end + item), kv_len)
    page_base = tl.load(page_indptr + b).to(tl.int64)

    m = tl.arange(0, BLOCK_M)
    tok = q_start + m // GH
    g = g0 + m % GH
    row_ok = (m // GH < TQ) & (tok < q_len) & (g < GROUP) & (q_begin + tok < total_q)
    q_pos = kv_len - q_len + tok
    q_head = kv_head * GROUP + g
    d = tl.arange(0, BLOCK_D)
    row_q = (q_begin + tok).to(tl.int64)
    q = tl.load(q_ptr + row_q[:, None] * s_q_tok + q_head[:, None] * s_q_head + d[None, :],
                mask=row_ok[:, None] & (d[None, :] < HEAD_DIM), other=0.0)

    mask_row = tl.full((BLOCK_M,), -1, tl.int64)
    if HAS_MASK:
        # FlashInfer's flattened mask: request b's [q_len, kv_len] bits start at mask_indptr[b].
        mask_row = tl.where(row_ok, tl.load(mask_indptr + b).to(tl.int64) + tok.to(tl.int64) * kv_len, -1)

    # Which keys any row of this tile can see: causal and window bounds by arithmetic.
    last_tok = tl.minimum(q_start + TQ, q_len) - 1
    min_pos = kv_len - q_len + q_start
    max_pos = kv_len - q_len + last_tok
    if CAUSAL:
        hi = tl.minimum(hi, max_pos + 1)
    if WINDOW:
        lo = tl.maximum(lo, ((min_pos - window_left) // BLOCK_N) * BLOCK_N)
    # Blocks in [mid_lo, mid_hi) are visible to every row: no mask work there.
    mid_hi = hi
    if CAUSAL:
        mid_hi = tl.minimum(mid_hi, min_pos + 1)
    mid_hi = lo + tl.maximum((mid_hi - lo) // BLOCK_N, 0) * BLOCK_N
    mid_lo = lo
    if WINDOW:
        mid_lo = lo + tl.cdiv(tl.maximum(max_pos - window_left - lo, 0), BLOCK_N) * BLOCK_N
    if HAS_MASK:
        mid_lo = hi
    empty = mid_lo >= mid_hi
    mid_lo = tl.where(empty, hi, mid_lo)
    mid_hi = tl.where(empty, hi, mid_hi)

    acc = tl.zeros((BLOCK_M, BLOCK_D), tl.float32)
    m_i = tl.full((BLOCK_M,), float("-inf"), tl.float32)
    l_i = tl.zeros((BLOCK_M,), tl.float32)
    for start_n in range(lo, mid_lo, BLOCK_N):
        acc, m_i, l_i = attend_block(
            acc, m_i, l_i, q, k_ptr, v_ptr, page_indices, page_base, start_n, kv_len, kv_head,
            b, q_pos, q_head, mask_ptr, mask_row, kv_len, sm_scale, softcap, window_left,
            ks_page, ks_head, ks_slot, ks_dhi, ks_dlo, vs_page, vs_head, vs_slot, vs_dhi, vs_dlo,
            HEAD_DIM, BLOCK_D, BLOCK_N, PAGE_SIZE, K_SPLIT, V_SPLIT, IDENTITY_PAGES,
            True, CAUSAL, WINDOW, HAS_MASK, SOFTCAP, TRANSFORM, CACHE, PRECISION)
    for start_n in range(mid_lo, mid_hi, BLOCK_N):
        acc, m_i, l_i = attend_block(
            acc, m_i, l_i, q, k_ptr, v_ptr, page_indices, page_base, start_n, kv_len, kv_head,
            b, q_pos, q_head, mask_ptr, mask_row, kv_len, sm_scale, softcap, window_left,
            ks_page, ks_head, ks_slot, ks_dhi, ks_dlo, vs_page, vs_head, vs_slot, vs_dhi, vs_dlo,
            HEAD_DIM, BLOCK_D, BLOCK_N, PAGE_SIZE, K_SPLIT, V_SPLIT, IDENTITY_PAGES,
            False, CAUSAL, WINDOW, HAS_MASK, SOFTCAP, TRANSFORM, CACHE, PRECISION)
    for start_n in range(mid_hi, hi, BLOCK_N):
        acc, m_i, l_i = attend_block(
            acc, m_i, l_i, q, k_ptr, v_ptr, page_indices, page_base, start_n, kv_len, kv_head,
            b, q_pos, q_head, mask_ptr, mask_row, kv_len, sm_scale, softcap, window_left,
            ks_page, ks_head, ks_slot, ks_dhi, ks_dlo, vs_page, vs_head, vs_slot, vs_dhi, vs_dlo,
            HEAD_DIM, BLOCK_D, BLOCK_N, PAGE_SIZE, K_SPLIT, V_SPLIT, IDENTITY_PAGES,
            True, CAUSAL, WINDOW, HAS_MASK, SOFTCAP, TRANSFORM, CACHE, PRECISION)

    # Rows that saw no key: out 0, lse -inf.
    seen = l_i > 0
    out = acc / tl.where(seen, l_i, 1.0)[:, None]
    lse = tl.where(seen, (m_i + tl.math.log2(tl.where(seen, l_i, 1.0))) * LN2, float("-inf"))
    dmask = d[None, :] < HEAD_DIM
    final = row_ok
    if HAS_PARTIALS:
        # Items of a split request write partial rows; merge_states combines them.
        slot_base = tl.load(item_out + item)
        slot_row = tok * 0 + slot_base           # a row vector: the interpreter wants tensor masks
        part = row_ok & (slot_row >= 0)
        final = row_ok & (slot_row < 0)
        prow = (slot_base + tok - q_start).to(tl.int64) * NUM_Q_HEADS + q_head
        tl.store(part_o_ptr + prow[:, None] * HEAD_DIM + d[None, :], out, mask=part[:, None] & dmask)
        tl.store(part_lse_ptr + prow, lse, mask=part)
    tl.store(o_ptr + row_q[:, None] * s_o_tok + q_head[:, None] * s_o_head + d[None, :],
             out.to(o_ptr.dtype.element_ty), mask=final[:, None] & dmask)
    if RETURN_LSE:
        tl.store(lse_ptr + row_q * s_lse_tok + q_head, lse, mask=final)


# ---------------------------------------------------------------------------------- launcher
def tile_shape(group: int, block_m: int):
    """(GH heads per tile, TQ tokens per tile, head blocks per kv head) for a GQA group."""
    gh = min(group, block_m)
    return gh, block_m // gh, triton.cdiv(group, gh)


def launch(q, kv, q_indptr, work, out, lse, cfg: dict, *, causal: bool, sm_scale: float, window_left: int,
           softcap: float, transform=None, custom_mask=None, mask_indptr=None, return_lse: bool = False,
           part_o=None, part_lse=None):
    """Run the items of `work` (attn.scheduling.WorkList). out [total_q, q_heads, d] and lse
    [total_q, q_heads] are written for rows whose item is not split; part_o [rows, q_heads, d] and
    part_lse [rows, q_heads] (float32) for the rest. Launch only: no host sync, no allocation."""
    total_q, hq, d = q.shape
    group = hq // kv.num_kv_heads
    gh, tq, head_blocks = tile_shape(group, cfg["BLOCK_M"])
    ks, vs = kv.k_strides, kv.v_strides
    page_indptr, page_indices, seq_lens = kv.page_map()
    has_parts = part_o is not None
    dummy = out
    opts = {k: cfg[k] for k in ("num_warps", "num_stages", "waves_per_eu", "matrix_instr_nonkdim", "kpack")
            if k in cfg}
    attention_kernel[(work.max_items, kv.num_kv_heads * head_blocks)](
        q, q.stride(0), q.stride(1), out, out.stride(0), out.stride(1),
        lse if return_lse else dummy, hq,
        part_o if has_parts else dummy, part_lse if has_parts else dummy,
        q_indptr, page_indptr, page_indices, seq_lens, total_q,
        kv.k, kv.v,
        ks.page, ks.head, ks.slot, ks.dhi, ks.dlo,
        vs.page, vs.head, vs.slot, vs.dhi, vs.dlo,
        work.req, work.q_start, work.kv_start, work.kv_end, work.out_slot, work.num_items,
        custom_mask if custom_mask is not None else q_indptr,
        mask_indptr if mask_indptr is not None else q_indptr,
        float(sm_scale), float(softcap), int(window_left),
        NUM_Q_HEADS=hq, GROUP=group, GH=gh, TQ=tq,
        HEAD_DIM=d, BLOCK_D=max(triton.next_power_of_2(d), 16), BLOCK_M=cfg["BLOCK_M"], BLOCK_N=cfg["BLOCK_N"],
        PAGE_SIZE=kv.page_size, K_SPLIT=ks.split, V_SPLIT=vs.split, IDENTITY_PAGES=kv.identity_pages,
        CAUSAL=bool(causal), WINDOW=window_left >= 0, HAS_MASK=custom_mask is not None, SOFTCAP=softcap > 0,
        TRANSFORM=transform, RETURN_LSE=bool(return_lse), HAS_PARTIALS=has_parts,
        CACHE=cfg.get("cache_modifier", ""), PRECISION="ieee" if q.dtype.itemsize == 4 else None,
        **opts,
    )
