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
import functools

import torch
import triton
import triton.language as tl
from triton.language.extra import cuda as tl_cuda, hip as tl_hip

from .addressing import dense_page_heads, dim_offset, kv_offset

LOG2E = tl.constexpr(1.4426950408889634)
LN2 = tl.constexpr(0.6931471805599453)


@triton.jit
def _dot(a, b, PRECISION: tl.constexpr):
    """tl.dot, or with PRECISION "upcast" both operands in fp32 (the launcher's choice for bf16 in
    the Triton interpreter, whose bf16 dot returned garbage: 2.6e10 off on a 16x16 product,
    Triton 3.9)."""
    if PRECISION == "upcast":
        return tl.dot(a.to(tl.float32), b.to(tl.float32), input_precision="ieee")
    else:
        return tl.dot(a, b, input_precision=PRECISION)


@triton.jit
def _tanh(x):
    # tl has no tanh on every backend; 2*sigmoid(2x) - 1 is exact enough in fp32 and portable.
    return 2.0 * tl.sigmoid(2.0 * x) - 1.0


@triton.jit
def _now(TIMER: tl.constexpr):
    """A device clock in nanoseconds: 1 NVIDIA's %globaltimer, 2 AMD's s_memrealtime (100 MHz)."""
    if TIMER == 1:
        return tl_cuda.globaltimer()
    else:
        return tl_hip.memrealtime() * 10


@triton.jit
def _store_times(prog_times, pid, t_start, TIMER: tl.constexpr):
    """measure()'s row for this program: start and end clocks, and the multiprocessor it ran on
    (-1 on AMD), so that a timeline shows which SMs idle while others still work."""
    tl.store(prog_times + 3 * pid, t_start)
    tl.store(prog_times + 3 * pid + 1, _now(TIMER))
    if TIMER == 1:
        tl.store(prog_times + 3 * pid + 2, tl_cuda.smid().to(tl.int64))
    else:
        tl.store(prog_times + 3 * pid + 2, -1)


@triton.jit
def _rope_partner(d, ROT: tl.constexpr, ROT_DIM: tl.constexpr):
    """The dim that rotates with d: the other half (neox) or the other of the pair (gptj)."""
    HALF: tl.constexpr = ROT_DIM // 2
    if ROT == 1:
        partner = tl.where(d < HALF, d + HALF, d - HALF)
    else:
        partner = d ^ 1
    return tl.where(d < ROT_DIM, partner, d)


@triton.jit
def _rope(x, xp, pos, valid, d, cs_ptr, s_cs, cs_half, ROT: tl.constexpr, ROT_DIM: tl.constexpr):
    """Rows x [R, D] rotated at positions pos [R] (xp: each element's partner, _rope_partner).
    cos_sin_cache rows hold cos then sin (at cs_half); dims past ROT_DIM pass through (cos 1, sin 0).
    Returns float32."""
    HALF: tl.constexpr = ROT_DIM // 2
    if ROT == 1:
        first = d < HALF
        freq = d % HALF
    else:
        first = d % 2 == 0
        freq = d // 2
    # An empty sequence's decode row sits at position -1: it attends to nothing, but must not read
    # the cos/sin row before the cache (plan() checks that every position below kv_len has a row).
    cm = (valid & (pos >= 0))[:, None] & (d < ROT_DIM)[None, :]
    c_off = pos.to(tl.int64)[:, None] * s_cs + freq[None, :]
    cos = tl.load(cs_ptr + c_off, mask=cm, other=1.0).to(tl.float32)
    sin = tl.load(cs_ptr + c_off + cs_half, mask=cm, other=0.0).to(tl.float32)
    sign = tl.where(first, -1.0, 1.0)
    return x.to(tl.float32) * cos + sign[None, :] * xp.to(tl.float32) * sin


@triton.jit
def _unsigned(page, PAGE_RUNS: tl.constexpr):
    """Page numbers are never negative: as uint32 they widen to 64 bits by zero extension, one
    multiply-add less a key than a sign extension. Not where page_runs is off (the persistent loop:
    2 SGPRs spilled on gfx90a at d80 / d96)."""
    out = page
    if PAGE_RUNS and page.dtype == tl.int32:
        out = page.to(tl.uint32, bitcast=True)
    return out


@triton.jit
def attend_block(
    acc, m_i, l_i, q,
    k_ptr, v_ptr, pages_ptr, page_base, start_n, kv_len, kv_head,
    batch, q_pos, q_head, mask_ptr, mask_row,
    sm_scale, softcap, window_left,
    ks_page, ks_head, ks_slot, ks_dhi, ks_dlo,
    vs_page, vs_head, vs_slot, vs_dhi, vs_dlo,
    cs_ptr, s_cs, cs_half,
    HEAD_DIM: tl.constexpr, BLOCK_D: tl.constexpr, BLOCK_N: tl.constexpr, PAGE_SIZE: tl.constexpr,
    K_SPLIT: tl.constexpr, V_SPLIT: tl.constexpr, IDENTITY_PAGES: tl.constexpr,
    MASKED: tl.constexpr, CAUSAL: tl.constexpr, WINDOW: tl.constexpr, HAS_MASK: tl.constexpr,
    SOFTCAP: tl.constexpr, TRANSFORM: tl.constexpr, CACHE: tl.constexpr, PRECISION: tl.constexpr,
    ROT: tl.constexpr, ROT_DIM: tl.constexpr, ROTATE_K: tl.constexpr, K_BY_GROUP: tl.constexpr,
    PAGE_RUNS: tl.constexpr,
):
    """One block of BLOCK_N keys: load K and V through the page map, scores, masks, online softmax.
    m_i is kept in log2 units. MASKED=False is for blocks the caller knows are fully visible
    (every key in the sequence and allowed for every row)."""
    # Every item's KV range starts on a BLOCK_N boundary (attn.scheduling), so runs of RUN keys
    # (the largest power of two dividing both PAGE_SIZE and BLOCK_N) share a page and have
    # consecutive slots. Told so, the compiler loads a layout whose slot axis is contiguous (vLLM's
    # V) as 16-byte vectors through cp.async instead of 2-byte scalars that are not pipelined.
    start_n = tl.multiple_of(start_n, BLOCK_N)
    pos = start_n + tl.arange(0, BLOCK_N)
    # vLLM's cache (config k_by_group=2, blocks of whole pages): a page's K and V of one head
    # are each one contiguous PAGE_SIZE * HEAD_DIM run. Loaded as flat [pages, run] rows, a warp
    # reads 512 contiguous bytes an instruction, as over HND; the [dim group, slot, x] and [dim,
    # slot] orders are undone in registers (free views of the shared-memory tile).
    BY_GROUP: tl.constexpr = K_BY_GROUP == 1 and K_SPLIT > 1 and q.shape[0] <= 16 and not ROTATE_K
    FLAT: tl.constexpr = (K_BY_GROUP == 2 and K_SPLIT > 1 and V_SPLIT == 1 and not ROTATE_K
                          and not IDENTITY_PAGES and BLOCK_D == HEAD_DIM and BLOCK_N % PAGE_SIZE == 0
                          and q.shape[0] <= 16)
    if FLAT:
        NP: tl.constexpr = BLOCK_N // PAGE_SIZE
        page_no = start_n // PAGE_SIZE + tl.arange(0, NP)
        if MASKED:
            # A sequence's last block too (masked per key, every page loaded whole: a per-key load
            # mask on V's slot-contiguous rows splits it into 2-byte loads that are not pipelined).
            # Pages past the sequence read page 0 (in bounds); their keys' scores are masked and
            # their V rows zeroed below, so whatever the slots hold (NaN included) never counts.
            in_len = pos < kv_len
            pg = tl.load(pages_ptr + page_base + page_no, mask=page_no * PAGE_SIZE < kv_len, other=0).to(tl.int64)
        else:
            pg = tl.load(pages_ptr + page_base + page_no).to(tl.int64)
        run = tl.arange(0, PAGE_SIZE * HEAD_DIM)
        kf = tl.load(k_ptr + (pg * ks_page + kv_head * ks_head)[:, None] + run[None, :], cache_modifier=CACHE)
        kt = tl.reshape(tl.permute(tl.reshape(kf, (NP, HEAD_DIM // K_SPLIT, PAGE_SIZE, K_SPLIT)), (1, 3, 0, 2)),
                        (HEAD_DIM, BLOCK_N))
    else:
        LOWBIT: tl.constexpr = PAGE_SIZE & (~PAGE_SIZE + 1)
        RUN: tl.constexpr = BLOCK_N if LOWBIT > BLOCK_N else LOWBIT
        logical = pos // PAGE_SIZE
        # A block starts on a BLOCK_N boundary: where pages divide it, a key's slot is the same
        # every block (loop-invariant, no signed modulo a key a block); where it divides a page,
        # one scalar modulo. Prefill tiles only: decode's held the hoisted slot products in 24-30
        # more registers (sm_90: 76 -> 100 at 32 keys, 108 -> 140 at 64), fewer programs an SM.
        # Not where the config loads a page number a key (page_runs False: the persistent loop, whose
        # registers are short; hoisted slots spilled 24-40 bytes there on sm_90).
        PREFILL_TILE: tl.constexpr = q.shape[0] > 16 and PAGE_RUNS
        if PREFILL_TILE and BLOCK_N % PAGE_SIZE == 0:
            slot = tl.arange(0, BLOCK_N) % PAGE_SIZE
        elif PREFILL_TILE and PAGE_SIZE % BLOCK_N == 0:
            slot = start_n % PAGE_SIZE + tl.arange(0, BLOCK_N)
        else:
            slot = pos % PAGE_SIZE
        if RUN > 1:
            slot = tl.max_contiguous(tl.multiple_of(slot, RUN), RUN)
        d = tl.arange(0, BLOCK_D)
        in_len = pos < kv_len
        if IDENTITY_PAGES:
            page = page_base + logical
        elif RUN > 1 and PAGE_RUNS:
            # One page number a run of RUN keys (BLOCK_N // RUN loads, not BLOCK_N), broadcast to the
            # keys: 1.03-1.07x on the H200's decode, 1.02-1.10x on its paged extend (benchmarks/results/
            # NVIDIA_H200.md). Config page_runs=False keeps a load a key where the broadcast's
            # registers spilled (attn/configs, triton_kernels/prefill.py).
            NR: tl.constexpr = BLOCK_N // RUN
            run_pos = start_n + tl.arange(0, NR) * RUN
            if MASKED:
                page_r = tl.load(pages_ptr + page_base + run_pos // PAGE_SIZE, mask=run_pos < kv_len, other=0)
            else:
                page_r = tl.load(pages_ptr + page_base + run_pos // PAGE_SIZE)
            page = tl.reshape(tl.broadcast_to(_unsigned(page_r, PAGE_RUNS)[:, None], (NR, RUN)), (BLOCK_N,))
            page = tl.max_constancy(page, RUN)
        elif MASKED:
            page = _unsigned(tl.load(pages_ptr + page_base + logical, mask=in_len, other=0), PAGE_RUNS)
        else:
            page = _unsigned(tl.load(pages_ptr + page_base + logical), PAGE_RUNS)
            if RUN > 1:
                page = tl.max_constancy(page, RUN)
        # 64-bit row bases, 32-bit dim offsets: a [BLOCK_N, BLOCK_D] tile of int64 offsets costs the
        # registers that otherwise hold the accumulator (it spilled at BLOCK_M=128 on sm_90).
        v_off = kv_offset(page, kv_head, slot, 0, vs_page, vs_head, vs_slot, vs_dhi, vs_dlo, V_SPLIT)[:, None] \
            + dim_offset(d, vs_dhi, vs_dlo, V_SPLIT)[None, :]
        LOAD_MASK: tl.constexpr = MASKED or BLOCK_D != HEAD_DIM
        if LOAD_MASK:
            kmask = in_len[:, None] & (d < HEAD_DIM)[None, :]
        # vLLM's K holds a page's x-groups of one dim group together: [head_dim/x][page_size][x].
        # Loaded as a [head_dim/x, BLOCK_N, x] tile (config k_by_group), the lanes of a warp walk the
        # slots of one dim group (256 contiguous bytes a page) instead of the dim groups of one slot
        # (16 bytes at a 256-byte stride: a 32-byte L2 request per lane; the H200's decode then hit
        # the L2's request rate at 44% of DRAM bandwidth). Decode tiles only: the view back to
        # [head_dim, BLOCK_N] took the registers of prefill's 128-row tiles (32-136 bytes spilled on
        # sm_90), and prefill reuses each K tile across its rows anyway.
        if BY_GROUP:
            g = tl.arange(0, BLOCK_D // K_SPLIT)
            k_off3 = kv_offset(page, kv_head, slot, 0, ks_page, ks_head, ks_slot, ks_dhi, ks_dlo, K_SPLIT)[None, :, None] \
                + (g * ks_dhi)[:, None, None] + (tl.arange(0, K_SPLIT) * ks_dlo)[None, None, :]
            if LOAD_MASK:
                kmask3 = in_len[None, :, None] & (g * K_SPLIT < HEAD_DIM)[:, None, None]
                k3 = tl.load(k_ptr + k_off3, mask=kmask3, other=0.0, cache_modifier=CACHE)
            else:
                k3 = tl.load(k_ptr + k_off3, cache_modifier=CACHE)
            kt = tl.reshape(tl.permute(k3, (0, 2, 1)), (BLOCK_D, BLOCK_N))
        else:
            k_off = kv_offset(page, kv_head, slot, 0, ks_page, ks_head, ks_slot, ks_dhi, ks_dlo, K_SPLIT)[:, None] \
                + dim_offset(d, ks_dhi, ks_dlo, K_SPLIT)[None, :]
            if LOAD_MASK:
                k = tl.load(k_ptr + k_off, mask=kmask, other=0.0, cache_modifier=CACHE)
            else:
                k = tl.load(k_ptr + k_off, cache_modifier=CACHE)
    if ROTATE_K:
        # A ragged K given un-rotated: rotate it at its own positions on load.
        kp_off = kv_offset(page[:, None], kv_head, slot[:, None], _rope_partner(d, ROT, ROT_DIM)[None, :],
                           ks_page, ks_head, ks_slot, ks_dhi, ks_dlo, K_SPLIT)
        kmask2 = in_len[:, None] & (d < HEAD_DIM)[None, :]
        kp = tl.load(k_ptr + kp_off, mask=kmask2, other=0.0)
        k = _rope(k, kp, pos, in_len, d, cs_ptr, s_cs, cs_half, ROT, ROT_DIM).to(kp.dtype)
    if not BY_GROUP and not FLAT:
        kt = tl.trans(k)
    s = _dot(q, kt, PRECISION)

    PLAIN: tl.constexpr = not SOFTCAP and TRANSFORM is None
    if not PLAIN:
        s = s * sm_scale
        if SOFTCAP:
            s = softcap * _tanh(s / softcap)
        if TRANSFORM is not None:
            s = TRANSFORM(s, batch, q_head[:, None], q_pos[:, None], pos[None, :])
        s = s * LOG2E
    if MASKED:
        keep = in_len[None, :]
        if CAUSAL:
            keep = keep & (pos[None, :] <= q_pos[:, None])
        if WINDOW:
            keep = keep & (pos[None, :] >= q_pos[:, None] - window_left)
        if HAS_MASK:
            # Bits packed 8 keys a byte (triton_kernels/mask_summary.py: pack_mask), rows of
            # ceil(kv_len / 8) bytes: a block's bits are BLOCK_N // 8 bytes a row, unpacked here.
            NB: tl.constexpr = BLOCK_N // 8
            col = start_n // 8 + tl.arange(0, NB)
            byte = tl.load(mask_ptr + (mask_row[:, None] + col[None, :]),
                           mask=(mask_row >= 0)[:, None] & (col < (kv_len + 7) // 8)[None, :], other=0)
            bits = (byte[:, :, None].to(tl.int32) >> tl.arange(0, 8)[None, None, :]) & 1
            keep = keep & (tl.reshape(bits, (q.shape[0], BLOCK_N)) != 0)
        s = tl.where(keep, s, float("-inf"))

    if PLAIN:
        # Scale inside the exponent's argument: one FMA per score instead of a multiply and a subtract.
        qk_scale = sm_scale * LOG2E
        m_new = tl.maximum(m_i, tl.max(s, 1) * qk_scale)
        m_safe = tl.where(m_new == float("-inf"), 0.0, m_new)    # a row with no key yet: keep it at 0
        p = tl.math.exp2(s * qk_scale - m_safe[:, None])
    else:
        m_new = tl.maximum(m_i, tl.max(s, 1))
        m_safe = tl.where(m_new == float("-inf"), 0.0, m_new)
        p = tl.math.exp2(s - m_safe[:, None])
    alpha = tl.math.exp2(m_i - m_safe)
    l_i = l_i * alpha + tl.sum(p, 1)
    if FLAT:
        vf = tl.load(v_ptr + (pg * vs_page + kv_head * vs_head)[:, None] + run[None, :], cache_modifier=CACHE)
        v = tl.reshape(tl.permute(tl.reshape(vf, (NP, HEAD_DIM, PAGE_SIZE)), (0, 2, 1)), (BLOCK_N, HEAD_DIM))
        if MASKED:
            v = tl.where(in_len[:, None], v, 0.0)
    elif LOAD_MASK:
        v = tl.load(v_ptr + v_off, mask=kmask, other=0.0, cache_modifier=CACHE)
    else:
        v = tl.load(v_ptr + v_off, cache_modifier=CACHE)
    acc = acc * alpha[:, None] + _dot(p.to(v.dtype), v, PRECISION)
    return acc, m_new, l_i


@triton.jit
def item_q(item, valid, kv_head, g0, q_ptr, s_q_tok, s_q_head, q_indptr, seq_lens, total_q, item_req, item_q_start,
           cs_ptr, s_cs, cs_half, GROUP: tl.constexpr, GH: tl.constexpr, TQ: tl.constexpr,
           HEAD_DIM: tl.constexpr, BLOCK_D: tl.constexpr, BLOCK_M: tl.constexpr, ROT: tl.constexpr,
           ROT_DIM: tl.constexpr):
    """An item's query tile [BLOCK_M, BLOCK_D] rotated on load, as attend_item loads it; an item
    that does not exist (valid False) reads nothing and is zeros."""
    b = tl.load(item_req + item, mask=valid, other=0)
    q_start = tl.load(item_q_start + item, mask=valid, other=0)
    q_begin = tl.load(q_indptr + b, mask=valid, other=0).to(tl.int64)
    q_len = (tl.load(q_indptr + b + 1, mask=valid, other=0) - q_begin).to(tl.int32)
    kv_len = tl.load(seq_lens + b, mask=valid, other=0).to(tl.int32)
    m = tl.arange(0, BLOCK_M)
    tok = q_start + m // GH
    g = g0 + m % GH
    row_ok = (m // GH < TQ) & (tok < q_len) & (g < GROUP) & (q_begin + tok < total_q)
    d = tl.arange(0, BLOCK_D)
    q_rows = q_ptr + (q_begin + tok).to(tl.int64)[:, None] * s_q_tok + (kv_head * GROUP + g)[:, None] * s_q_head
    q_mask = row_ok[:, None] & (d[None, :] < HEAD_DIM)
    q = tl.load(q_rows + d[None, :], mask=q_mask, other=0.0)
    qp = tl.load(q_rows + _rope_partner(d, ROT, ROT_DIM)[None, :], mask=q_mask, other=0.0)
    return _rope(q, qp, kv_len - q_len + tok, row_ok, d, cs_ptr, s_cs, cs_half, ROT, ROT_DIM).to(q.dtype)


@triton.jit
def attend_item(
    item, kv_head, g0, slot_stride, q_ptr, s_q_tok, s_q_head, o_ptr, s_o_tok, s_o_head, lse_ptr, s_lse_tok, part_o_ptr,
    part_lse_ptr, q_indptr, page_indptr, page_indices, seq_lens, total_q, k_ptr, v_ptr, ks_page, ks_head,
    ks_slot, ks_dhi, ks_dlo, vs_page, vs_head, vs_slot, vs_dhi, vs_dlo, item_req, item_q_start,
    item_kv_start, item_kv_end, item_out, mask_ptr, mask_indptr, blk_indptr, blk_ids, cs_ptr, s_cs, cs_half,
    sm_scale, softcap, window_left, NUM_Q_HEADS: tl.constexpr, GROUP: tl.constexpr, GH: tl.constexpr,
    TQ: tl.constexpr, HEAD_DIM: tl.constexpr, BLOCK_D: tl.constexpr, BLOCK_M: tl.constexpr,
    BLOCK_N: tl.constexpr, PAGE_SIZE: tl.constexpr, K_SPLIT: tl.constexpr, V_SPLIT: tl.constexpr,
    IDENTITY_PAGES: tl.constexpr, CAUSAL: tl.constexpr, WINDOW: tl.constexpr, HAS_MASK: tl.constexpr,
    SOFTCAP: tl.constexpr, TRANSFORM: tl.constexpr, RETURN_LSE: tl.constexpr, HAS_PARTIALS: tl.constexpr,
    CACHE: tl.constexpr, PRECISION: tl.constexpr, ROT: tl.constexpr, ROT_DIM: tl.constexpr,
    ROTATE_K: tl.constexpr, K_BY_GROUP: tl.constexpr, PAGE_RUNS: tl.constexpr, MID_STAGES: tl.constexpr = None,
    q_given=None,
):
    """One work item for one kv head (and one block of its GQA group starting at g0): the
    query tile of the item's request (q_given: already loaded, item_q) against its KV range;
    writes out/lse or partial rows."""
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
    q_rows = q_ptr + row_q[:, None] * s_q_tok + q_head[:, None] * s_q_head
    q_mask = row_ok[:, None] & (d[None, :] < HEAD_DIM)
    if q_given is not None:
        q = q_given
    else:
        q = tl.load(q_rows + d[None, :], mask=q_mask, other=0.0)
    if ROT != 0 and q_given is None:
        # Rotary fused on load: q at its position kv_len - q_len + token, rounded back to q's dtype
        # as an unfused rotation would store it.
        qp = tl.load(q_rows + _rope_partner(d, ROT, ROT_DIM)[None, :], mask=q_mask, other=0.0)
        q = _rope(q, qp, q_pos, row_ok, d, cs_ptr, s_cs, cs_half, ROT, ROT_DIM).to(q.dtype)

    mask_row = tl.full((BLOCK_M,), -1, tl.int32)
    mask_tile = mask_ptr
    if HAS_MASK:
        # The packed mask: request b's rows of ceil(kv_len / 8) bytes start at byte mask_indptr[b].
        # The tile's first row is a 64-bit base and its rows 32-bit offsets from it.
        row_bytes = (kv_len + 7) // 8
        mask_tile = mask_ptr + (tl.load(mask_indptr + b).to(tl.int64) + q_start.to(tl.int64) * row_bytes)
        mask_row = tl.where(row_ok, (m // GH) * row_bytes, -1)

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
    empty = mid_lo >= mid_hi
    mid_lo = tl.where(empty, hi, mid_lo)
    mid_hi = tl.where(empty, hi, mid_hi)

    acc = tl.zeros((BLOCK_M, BLOCK_D), tl.float32)
    m_i = tl.full((BLOCK_M,), float("-inf"), tl.float32)
    l_i = tl.zeros((BLOCK_M,), tl.float32)
    if HAS_MASK:
        # Plan-time block lists (triton_kernels/mask_summary.py): blocks [j0, j1) of blk_ids are
        # partly visible (mask loaded per element), [j1, j2) fully visible; fully masked blocks
        # are not listed at all, so time scales with the live blocks.
        j0 = tl.load(blk_indptr + 2 * item)
        j1 = tl.load(blk_indptr + 2 * item + 1)
        j2 = tl.load(blk_indptr + 2 * item + 2)
        for j in range(j0, j1):
            start_n = tl.load(blk_ids + j) * BLOCK_N
            acc, m_i, l_i = attend_block(
                acc, m_i, l_i, q, k_ptr, v_ptr, page_indices, page_base, start_n, kv_len, kv_head,
                b, q_pos, q_head, mask_tile, mask_row, sm_scale, softcap, window_left,
                ks_page, ks_head, ks_slot, ks_dhi, ks_dlo, vs_page, vs_head, vs_slot, vs_dhi, vs_dlo,
                cs_ptr, s_cs, cs_half,
                HEAD_DIM, BLOCK_D, BLOCK_N, PAGE_SIZE, K_SPLIT, V_SPLIT, IDENTITY_PAGES,
                True, CAUSAL, WINDOW, HAS_MASK, SOFTCAP, TRANSFORM, CACHE, PRECISION, ROT, ROT_DIM, ROTATE_K, K_BY_GROUP, PAGE_RUNS)
        for j in range(j1, j2):
            start_n = tl.load(blk_ids + j) * BLOCK_N
            acc, m_i, l_i = attend_block(
                acc, m_i, l_i, q, k_ptr, v_ptr, page_indices, page_base, start_n, kv_len, kv_head,
                b, q_pos, q_head, mask_tile, mask_row, sm_scale, softcap, window_left,
                ks_page, ks_head, ks_slot, ks_dhi, ks_dlo, vs_page, vs_head, vs_slot, vs_dhi, vs_dlo,
                cs_ptr, s_cs, cs_half,
                HEAD_DIM, BLOCK_D, BLOCK_N, PAGE_SIZE, K_SPLIT, V_SPLIT, IDENTITY_PAGES,
                False, CAUSAL, WINDOW, HAS_MASK, SOFTCAP, TRANSFORM, CACHE, PRECISION, ROT, ROT_DIM, ROTATE_K, K_BY_GROUP, PAGE_RUNS)
    else:
        for start_n in range(lo, mid_lo, BLOCK_N):
            acc, m_i, l_i = attend_block(
                acc, m_i, l_i, q, k_ptr, v_ptr, page_indices, page_base, start_n, kv_len, kv_head,
                b, q_pos, q_head, mask_tile, mask_row, sm_scale, softcap, window_left,
                ks_page, ks_head, ks_slot, ks_dhi, ks_dlo, vs_page, vs_head, vs_slot, vs_dhi, vs_dlo,
                cs_ptr, s_cs, cs_half,
                HEAD_DIM, BLOCK_D, BLOCK_N, PAGE_SIZE, K_SPLIT, V_SPLIT, IDENTITY_PAGES,
                True, CAUSAL, WINDOW, HAS_MASK, SOFTCAP, TRANSFORM, CACHE, PRECISION, ROT, ROT_DIM, ROTATE_K, K_BY_GROUP, PAGE_RUNS)
        for start_n in tl.range(mid_lo, mid_hi, BLOCK_N, num_stages=MID_STAGES):
            acc, m_i, l_i = attend_block(
                acc, m_i, l_i, q, k_ptr, v_ptr, page_indices, page_base, start_n, kv_len, kv_head,
                b, q_pos, q_head, mask_tile, mask_row, sm_scale, softcap, window_left,
                ks_page, ks_head, ks_slot, ks_dhi, ks_dlo, vs_page, vs_head, vs_slot, vs_dhi, vs_dlo,
                cs_ptr, s_cs, cs_half,
                HEAD_DIM, BLOCK_D, BLOCK_N, PAGE_SIZE, K_SPLIT, V_SPLIT, IDENTITY_PAGES,
                False, CAUSAL, WINDOW, HAS_MASK, SOFTCAP, TRANSFORM, CACHE, PRECISION, ROT, ROT_DIM, ROTATE_K, K_BY_GROUP, PAGE_RUNS)
        for start_n in range(mid_hi, hi, BLOCK_N):
            acc, m_i, l_i = attend_block(
                acc, m_i, l_i, q, k_ptr, v_ptr, page_indices, page_base, start_n, kv_len, kv_head,
                b, q_pos, q_head, mask_tile, mask_row, sm_scale, softcap, window_left,
                ks_page, ks_head, ks_slot, ks_dhi, ks_dlo, vs_page, vs_head, vs_slot, vs_dhi, vs_dlo,
                cs_ptr, s_cs, cs_half,
                HEAD_DIM, BLOCK_D, BLOCK_N, PAGE_SIZE, K_SPLIT, V_SPLIT, IDENTITY_PAGES,
                True, CAUSAL, WINDOW, HAS_MASK, SOFTCAP, TRANSFORM, CACHE, PRECISION, ROT, ROT_DIM, ROTATE_K, K_BY_GROUP, PAGE_RUNS)

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
        prow = (slot_base + (tok - q_start) * slot_stride).to(tl.int64) * NUM_Q_HEADS + q_head
        tl.store(part_o_ptr + prow[:, None] * HEAD_DIM + d[None, :], out, mask=part[:, None] & dmask)
        tl.store(part_lse_ptr + prow, lse, mask=part)
    tl.store(o_ptr + row_q[:, None] * s_o_tok + q_head[:, None] * s_o_head + d[None, :],
             out.to(o_ptr.dtype.element_ty), mask=final[:, None] & dmask)
    if RETURN_LSE:
        tl.store(lse_ptr + row_q * s_lse_tok + q_head, lse, mask=final)


@triton.jit
def attention_kernel(
    q_ptr, s_q_tok, s_q_head, o_ptr, s_o_tok, s_o_head, lse_ptr, s_lse_tok,
    part_o_ptr, part_lse_ptr,
    q_indptr, page_indptr, page_indices, seq_lens, total_q,
    k_ptr, v_ptr,
    ks_page, ks_head, ks_slot, ks_dhi, ks_dlo,
    vs_page, vs_head, vs_slot, vs_dhi, vs_dlo,
    item_req, item_q_start, item_kv_start, item_kv_end, item_out, num_items_ptr,
    mask_ptr, mask_indptr, blk_indptr, blk_ids,
    cs_ptr, s_cs, cs_half,
    sm_scale, softcap, window_left,
    NUM_Q_HEADS: tl.constexpr, GROUP: tl.constexpr, GH: tl.constexpr, TQ: tl.constexpr,
    HEAD_DIM: tl.constexpr, BLOCK_D: tl.constexpr, BLOCK_M: tl.constexpr, BLOCK_N: tl.constexpr,
    PAGE_SIZE: tl.constexpr, K_SPLIT: tl.constexpr, V_SPLIT: tl.constexpr, IDENTITY_PAGES: tl.constexpr,
    CAUSAL: tl.constexpr, WINDOW: tl.constexpr, HAS_MASK: tl.constexpr, SOFTCAP: tl.constexpr,
    TRANSFORM: tl.constexpr, RETURN_LSE: tl.constexpr, HAS_PARTIALS: tl.constexpr,
    CACHE: tl.constexpr, PRECISION: tl.constexpr,
    ROT: tl.constexpr, ROT_DIM: tl.constexpr, ROTATE_K: tl.constexpr, K_BY_GROUP: tl.constexpr,
    PAGE_RUNS: tl.constexpr,
    prog_indptr, prog_items, item_kind, item_stride, prog_times,
    PERSISTENT: tl.constexpr, BLOCK_M_DECODE: tl.constexpr, GH_DECODE: tl.constexpr, TQ_DECODE: tl.constexpr,
    BLOCK_N_DECODE: tl.constexpr, STAGES_DECODE: tl.constexpr, TIMER: tl.constexpr, CARRY_Q: tl.constexpr = False,
):
    # A 1-D grid, head blocks fastest: programs start in item order whatever the head count, so
    # an item order chosen by the planner (longest first, for causal tails) is the launch order.
    HEAD_BLOCKS: tl.constexpr = (GROUP + GH - 1) // GH
    HB: tl.constexpr = (NUM_Q_HEADS // GROUP) * HEAD_BLOCKS
    pid = tl.program_id(0)
    kv_head = (pid % HB) // HEAD_BLOCKS
    g0 = ((pid % HB) % HEAD_BLOCKS) * GH
    if PERSISTENT:
        # attn.BatchAttention: program p runs its items prog_items[prog_indptr[p]:prog_indptr[p+1]],
        # balanced at plan time. Decode-like items (kind 0) use the small M tile, prefill ones the
        # large; the plan keeps both tiles' head blocks equal (one block: the whole GQA group).
        prog = pid // HB
        if TIMER != 0:
            t_start = _now(TIMER)
        for w in range(tl.load(prog_indptr + prog), tl.load(prog_indptr + prog + 1)):
            item = tl.load(prog_items + w)
            # Partial rows of a split tile are token-major (token t, chunk j at out_slot + t * stride),
            # so each token's partials are contiguous for merge_segments.
            stride = tl.load(item_stride + item)
            if tl.load(item_kind + item) == 0:
                attend_item(
                    item, kv_head, g0, stride, q_ptr, s_q_tok, s_q_head, o_ptr, s_o_tok, s_o_head, lse_ptr,
                    s_lse_tok, part_o_ptr, part_lse_ptr, q_indptr, page_indptr, page_indices, seq_lens,
                    total_q, k_ptr, v_ptr, ks_page, ks_head, ks_slot, ks_dhi, ks_dlo, vs_page, vs_head,
                    vs_slot, vs_dhi, vs_dlo, item_req, item_q_start, item_kv_start, item_kv_end, item_out,
                    mask_ptr, mask_indptr, blk_indptr, blk_ids, cs_ptr, s_cs, cs_half, sm_scale, softcap,
                    window_left, NUM_Q_HEADS, GROUP, GH_DECODE, TQ_DECODE, HEAD_DIM, BLOCK_D, BLOCK_M_DECODE,
                    BLOCK_N_DECODE, PAGE_SIZE, K_SPLIT, V_SPLIT, IDENTITY_PAGES, CAUSAL, WINDOW, HAS_MASK, SOFTCAP,
                    TRANSFORM, RETURN_LSE, HAS_PARTIALS, CACHE, PRECISION, ROT, ROT_DIM, ROTATE_K, K_BY_GROUP,
                    PAGE_RUNS, STAGES_DECODE)
            else:
                attend_item(
                    item, kv_head, g0, stride, q_ptr, s_q_tok, s_q_head, o_ptr, s_o_tok, s_o_head, lse_ptr,
                    s_lse_tok, part_o_ptr, part_lse_ptr, q_indptr, page_indptr, page_indices, seq_lens,
                    total_q, k_ptr, v_ptr, ks_page, ks_head, ks_slot, ks_dhi, ks_dlo, vs_page, vs_head,
                    vs_slot, vs_dhi, vs_dlo, item_req, item_q_start, item_kv_start, item_kv_end, item_out,
                    mask_ptr, mask_indptr, blk_indptr, blk_ids, cs_ptr, s_cs, cs_half, sm_scale, softcap,
                    window_left, NUM_Q_HEADS, GROUP, GH, TQ, HEAD_DIM, BLOCK_D, BLOCK_M, BLOCK_N, PAGE_SIZE,
                    K_SPLIT, V_SPLIT, IDENTITY_PAGES, CAUSAL, WINDOW, HAS_MASK, SOFTCAP, TRANSFORM,
                    RETURN_LSE, HAS_PARTIALS, CACHE, PRECISION, ROT, ROT_DIM, ROTATE_K, K_BY_GROUP, PAGE_RUNS)
        if TIMER != 0:
            _store_times(prog_times, pid, t_start, TIMER)
    else:
        item = pid // HB
        if TIMER != 0:
            t_start = _now(TIMER)
        n_items = tl.load(num_items_ptr)      # the grid is sized for the planned maximum
        if CARRY_Q:
            # Triton's Hopper lowering gives wgmma a shared-memory A operand only when it comes from
            # a load or a block argument; a q rotated in registers went to wgmma from registers, re-read
            # from shared memory every KV block (+10.8% on a rotary prefill). Loaded and rotated before
            # the item's one-trip loop and carried into it, the tile is a block argument, stored to
            # shared memory once (sm_90, Triton 3.6: 243 registers -> 219; 214 without rotary). Only
            # there: on other tiles and targets the carried value cost registers (benchmarks/NOTES.md).
            q = item_q(item, item < n_items, kv_head, g0, q_ptr, s_q_tok, s_q_head, q_indptr, seq_lens, total_q,
                       item_req, item_q_start, cs_ptr, s_cs, cs_half, GROUP, GH, TQ, HEAD_DIM, BLOCK_D, BLOCK_M, ROT,
                       ROT_DIM)
            for it in range(item, tl.minimum(item + 1, n_items)):
                attend_item(
                    it, kv_head, g0, 1, q_ptr, s_q_tok, s_q_head, o_ptr, s_o_tok, s_o_head, lse_ptr, s_lse_tok,
                    part_o_ptr, part_lse_ptr, q_indptr, page_indptr, page_indices, seq_lens, total_q, k_ptr,
                    v_ptr, ks_page, ks_head, ks_slot, ks_dhi, ks_dlo, vs_page, vs_head, vs_slot, vs_dhi, vs_dlo,
                    item_req, item_q_start, item_kv_start, item_kv_end, item_out, mask_ptr, mask_indptr,
                    blk_indptr, blk_ids, cs_ptr, s_cs, cs_half, sm_scale, softcap, window_left, NUM_Q_HEADS,
                    GROUP, GH, TQ, HEAD_DIM, BLOCK_D, BLOCK_M, BLOCK_N, PAGE_SIZE, K_SPLIT, V_SPLIT,
                    IDENTITY_PAGES, CAUSAL, WINDOW, HAS_MASK, SOFTCAP, TRANSFORM, RETURN_LSE, HAS_PARTIALS,
                    CACHE, PRECISION, ROT, ROT_DIM, ROTATE_K, K_BY_GROUP, PAGE_RUNS, None, q)
                q = tl.zeros_like(q)    # a yield other than q itself, which the compiler would fold away
        elif item < n_items:
            attend_item(
                item, kv_head, g0, 1, q_ptr, s_q_tok, s_q_head, o_ptr, s_o_tok, s_o_head, lse_ptr, s_lse_tok,
                part_o_ptr, part_lse_ptr, q_indptr, page_indptr, page_indices, seq_lens, total_q, k_ptr,
                v_ptr, ks_page, ks_head, ks_slot, ks_dhi, ks_dlo, vs_page, vs_head, vs_slot, vs_dhi, vs_dlo,
                item_req, item_q_start, item_kv_start, item_kv_end, item_out, mask_ptr, mask_indptr,
                blk_indptr, blk_ids, cs_ptr, s_cs, cs_half, sm_scale, softcap, window_left, NUM_Q_HEADS,
                GROUP, GH, TQ, HEAD_DIM, BLOCK_D, BLOCK_M, BLOCK_N, PAGE_SIZE, K_SPLIT, V_SPLIT,
                IDENTITY_PAGES, CAUSAL, WINDOW, HAS_MASK, SOFTCAP, TRANSFORM, RETURN_LSE, HAS_PARTIALS,
                CACHE, PRECISION, ROT, ROT_DIM, ROTATE_K, K_BY_GROUP, PAGE_RUNS)
        if TIMER != 0:
            _store_times(prog_times, pid, t_start, TIMER)


# ---------------------------------------------------------------------------------- launcher
def tile_shape(group: int, block_m: int):
    """(GH heads per tile, TQ tokens per tile, head blocks per kv head) for a GQA group."""
    gh = min(group, block_m)
    return gh, block_m // gh, triton.cdiv(group, gh)


def dot_precision(q: torch.Tensor):
    """The dots' PRECISION: fp32 in IEEE (tf32 would lose the reference's digits); bf16 on the CPU
    (the interpreter) upcast, see _dot; else the hardware's."""
    if q.dtype.itemsize == 4:
        return "ieee"
    return "upcast" if q.device.type == "cpu" and q.dtype == torch.bfloat16 else None


def launch_options(cfg: dict) -> dict:
    """The Triton launch options of a config (the rest of it is constexprs and planning knobs)."""
    return {k: cfg[k] for k in ("num_warps", "num_stages", "maxnreg", "waves_per_eu", "matrix_instr_nonkdim",
                                "kpack") if k in cfg}


def k_tile_mode(cfg: dict, kv) -> int:
    """The kernel's K_BY_GROUP: 0 rows, 1 vLLM's K by dim group, 2 whole vLLM page-heads (flat
    rows). The flat mode reads a page's K and V of one head as one contiguous run, which holds
    only for page-heads stored densely (a strided view of a larger cache may not be): it falls
    back to 1 otherwise."""
    mode = int(cfg.get("k_by_group", 0))
    if mode == 2 and not dense_page_heads(kv):
        mode = 1
    return mode


def carry_q(rot: int, block_m: int, head_dim: int, wgmma: bool) -> bool:
    """Whether a tile's rotated q enters the item loop as a block argument (attention_kernel's
    CARRY_Q): on Hopper's wgmma tiles up to head_dim 128, where it keeps q a shared-memory operand
    (at 192 / 256 the carried tile spilled 184-304 bytes; elsewhere it cost registers)."""
    return bool(rot) and block_m >= 64 and head_dim <= 128 and wgmma


def on_wgmma(device) -> bool:
    """A Hopper GPU (sm_90), where Triton's dots are wgmma."""
    return device.type == "cuda" and not torch.version.hip and torch.cuda.get_device_capability(device)[0] == 9


def launch(q, kv, q_indptr, work, out, lse, cfg: dict, *, causal: bool, sm_scale: float, window_left: int,
           softcap: float, transform=None, custom_mask=None, mask_indptr=None, return_lse: bool = False,
           part_o=None, part_lse=None, mask_blocks=None, rotary=None, page_map=None, persistent=None,
           prog_times=None, compile_only: bool = False):
    """Run the items of `work` (attn.scheduling.WorkList). out [total_q, q_heads, d] and lse
    [total_q, q_heads] are written for rows whose item is not split; part_o [rows, q_heads, d] and
    part_lse [rows, q_heads] (float32) for the rest. Launch only: no host sync, no allocation.

    custom_mask is the packed mask (uint8, mask_summary.pack_mask); it needs mask_indptr (int64 [b],
    each request's first byte) and mask_blocks
    (blk_indptr int32 [2 * max_items + 1], blk_ids int32: triton_kernels/mask_summary.py), which
    replace the items' KV ranges. rotary: attn.Rotary (q rotated on load; K too with rotate_k).
    page_map: (page_indptr, page_indices, seq_lens) to use instead of kv's (a plan's copies); as
    in KVCache.page_map(), page_indices *is* page_indptr when pages are consecutive rows (no page
    map: the kernel's IDENTITY_PAGES), so a plan may give a ragged cache an explicit map.
    persistent: attn.plan_attention's schedule (prog_indptr, prog_items, item_kind, item_stride,
    num_programs, block_m_decode): a fixed grid of programs, each looping over its items.
    prog_times (int64 [grid, 3]): each program's start and end clock and its multiprocessor
    (measure() of BatchAttention and BatchDecode; a separately compiled variant).
    compile_only: compile the binary this launch would run and return it, launching nothing."""
    total_q, hq, d = q.shape
    group = hq // kv.num_kv_heads
    gh, tq, head_blocks = tile_shape(group, cfg["BLOCK_M"])
    ks, vs = kv.k_strides, kv.v_strides
    page_indptr, page_indices, seq_lens = kv.page_map() if page_map is None else page_map
    if custom_mask is not None and mask_blocks is None:
        raise ValueError("custom_mask needs its plan-time block lists (mask_blocks)")
    blk_indptr, blk_ids = mask_blocks if mask_blocks is not None else (q_indptr, q_indptr)
    if rotary is not None:
        cs = rotary.cos_sin_cache
        rot = dict(ROT=1 if rotary.style == "neox" else 2, ROT_DIM=int(rotary.rotary_dim),
                   ROTATE_K=bool(rotary.rotate_k))
        cs_args = (cs, cs.stride(0), cs.shape[1] // 2)
    else:
        rot = dict(ROT=0, ROT_DIM=0, ROTATE_K=False)
        cs_args = (q_indptr, 0, 0)
    if persistent is not None:
        prog_indptr, prog_items, item_kind, item_stride, num_programs, bm_decode = persistent
        gh_d, tq_d, hb_d = tile_shape(group, bm_decode)
        if hb_d != head_blocks:
            raise ValueError(f"the persistent schedule needs one head block per tile; GQA group {group} "
                             f"is larger than BLOCK_M {bm_decode}")
        grid = num_programs * kv.num_kv_heads * head_blocks
        # Decode items may take a longer KV block and a deeper pipeline than prefill ones (the
        # config's block_n_decode / stages_decode): they are memory-bound.
        pers = dict(PERSISTENT=True, BLOCK_M_DECODE=bm_decode, GH_DECODE=gh_d, TQ_DECODE=tq_d,
                    BLOCK_N_DECODE=cfg.get("block_n_decode", cfg["BLOCK_N"]), STAGES_DECODE=cfg.get("stages_decode"))
    else:
        prog_indptr = prog_items = item_kind = item_stride = q_indptr
        grid = work.max_items * kv.num_kv_heads * head_blocks
        pers = dict(PERSISTENT=False, BLOCK_M_DECODE=16, GH_DECODE=1, TQ_DECODE=1, BLOCK_N_DECODE=cfg["BLOCK_N"],
                    STAGES_DECODE=None)
    has_parts = part_o is not None
    dummy = out
    timer = 0
    if prog_times is not None:
        timer = 2 if torch.version.hip else 1
    opts = launch_options(cfg)
    kernel = functools.partial(attention_kernel.warmup, grid=(grid,)) if compile_only else attention_kernel[(grid,)]
    return kernel(
        q, q.stride(0), q.stride(1), out, out.stride(0), out.stride(1),
        lse if return_lse else dummy, hq,
        part_o if has_parts else dummy, part_lse if has_parts else dummy,
        q_indptr, page_indptr, page_indices, seq_lens, total_q,
        kv.k, kv.v,
        ks.page, ks.head, ks.slot, ks.dhi, ks.dlo,
        vs.page, vs.head, vs.slot, vs.dhi, vs.dlo,
        work.req, work.q_start, work.kv_start, work.kv_end, work.out_slot, work.num_items,
        custom_mask if custom_mask is not None else q_indptr,
        mask_indptr if mask_indptr is not None else q_indptr, blk_indptr, blk_ids,
        *cs_args,
        float(sm_scale), float(softcap), int(window_left),
        NUM_Q_HEADS=hq, GROUP=group, GH=gh, TQ=tq,
        HEAD_DIM=d, BLOCK_D=max(triton.next_power_of_2(d), 16), BLOCK_M=cfg["BLOCK_M"], BLOCK_N=cfg["BLOCK_N"],
        PAGE_SIZE=kv.page_size, K_SPLIT=ks.split, V_SPLIT=vs.split, IDENTITY_PAGES=page_indices is page_indptr,
        CAUSAL=bool(causal), WINDOW=window_left >= 0, HAS_MASK=custom_mask is not None, SOFTCAP=softcap > 0,
        TRANSFORM=transform, RETURN_LSE=bool(return_lse), HAS_PARTIALS=has_parts,
        CACHE=cfg.get("cache_modifier", ""), PRECISION=dot_precision(q),
        K_BY_GROUP=k_tile_mode(cfg, kv), PAGE_RUNS=bool(cfg.get("page_runs", True)), **rot, **opts,
        prog_indptr=prog_indptr, prog_items=prog_items, item_kind=item_kind, item_stride=item_stride,
        prog_times=prog_times if prog_times is not None else q_indptr, TIMER=timer, **pers,
        # In the interpreter whenever rotary is on, so that the CPU tier runs the carried path.
        CARRY_Q=persistent is None and (bool(rot["ROT"]) if q.device.type == "cpu"
                                        else carry_q(rot["ROT"], cfg["BLOCK_M"], d, on_wgmma(q.device))),
    )


# ---------------------------------------------------------------------------------- compile specs
# (layout label, K_SPLIT, strides the JIT specializes to 1, strides it sees as multiples of 16,
# constexprs the layout fixes). These are what the JIT sees at run time for each layout, so the
# compile matrix compiles the binaries that really run (vectorized, pipelined loads need the
# alignment facts). A ragged cache has no page map (IDENTITY_PAGES, one token a page): a binary
# of its own, whose pipeliner gives K and V a buffer more than over a page map.
_ROWS_ALIGNED = ("ks_page", "ks_head", "ks_slot", "vs_page", "vs_head", "vs_slot")
SPEC_LAYOUTS = {
    "NHD|HND": (1, dict(ks_dhi=1, vs_dhi=1), _ROWS_ALIGNED, {}),
    "ragged": (1, dict(ks_dhi=1, vs_dhi=1), _ROWS_ALIGNED, dict(IDENTITY_PAGES=True, PAGE_SIZE=1)),
    "vllm": (8, dict(ks_dlo=1, vs_slot=1), ("ks_page", "ks_head", "ks_dhi", "vs_page", "vs_head", "vs_dhi"), {}),
}
#: Each spec layout's tuned-config family (layouts.Layout.family, attn.configs' "layout" key).
SPEC_FAMILY = {"NHD|HND": "rows", "ragged": "rows", "vllm": "vllm"}
_SPEC_POINTERS = dict(q_indptr="*i32", page_indptr="*i32", page_indices="*i32", seq_lens="*i32",
                      item_req="*i32", item_q_start="*i32", item_kv_start="*i32", item_kv_end="*i32",
                      item_out="*i32", num_items_ptr="*i32", mask_indptr="*i64", blk_indptr="*i32",
                      blk_ids="*i32", lse_ptr="*fp32", part_o_ptr="*fp32", part_lse_ptr="*fp32", cs_ptr="*fp32",
                      mask_ptr="*u8", sm_scale="fp32", softcap="fp32", prog_indptr="*i32", prog_items="*i32",
                      item_kind="*i32", item_stride="*i32", prog_times="*i64")


def compile_spec(kernel: str, label: str, targets, dtype: str, cfg: dict, *, group: int, head_dim: int,
                 page_size: int, layout: str, **features):
    """One KernelSpec (triton_kernels/specs.py) of attention_kernel: the launcher's constexprs for
    this config and feature set (features: CAUSAL=True, RETURN_LSE=True, ... as launch() sets)."""
    from .specs import KernelSpec, signature
    gh, tq, _ = tile_shape(group, cfg["BLOCK_M"])
    split, ones, aligned, fixed = SPEC_LAYOUTS[layout]
    cx = dict(NUM_Q_HEADS=8 * group, GROUP=group, GH=gh, TQ=tq, HEAD_DIM=head_dim,
              BLOCK_D=max(triton.next_power_of_2(head_dim), 16), BLOCK_M=cfg["BLOCK_M"], BLOCK_N=cfg["BLOCK_N"],
              PAGE_SIZE=page_size, K_SPLIT=split, V_SPLIT=1, IDENTITY_PAGES=False, CAUSAL=False, WINDOW=False,
              HAS_MASK=False, SOFTCAP=False, TRANSFORM=None, RETURN_LSE=False, HAS_PARTIALS=False,
              CACHE=cfg.get("cache_modifier", ""), PRECISION=None, ROT=0, ROT_DIM=0, ROTATE_K=False,
              K_BY_GROUP=int(cfg.get("k_by_group", 0)), PAGE_RUNS=bool(cfg.get("page_runs", True)),
              PERSISTENT=False, BLOCK_M_DECODE=16, GH_DECODE=1, TQ_DECODE=1,
              BLOCK_N_DECODE=cfg.get("block_n_decode", cfg["BLOCK_N"]), STAGES_DECODE=cfg.get("stages_decode"),
              TIMER=0)
    cx.update(fixed)
    cx.update(ones)
    cx.update(features)
    cx["CARRY_Q"] = carry_q(cx["ROT"], cfg["BLOCK_M"], head_dim, tuple(targets) == ("sm_90",))
    return KernelSpec(kernel=kernel, config=f"{label}/{layout}", fn=attention_kernel,
                      signature=signature(attention_kernel, cx, q_ptr=f"*{dtype}", o_ptr=f"*{dtype}",
                                          k_ptr=f"*{dtype}", v_ptr=f"*{dtype}", **_SPEC_POINTERS),
                      constexprs=cx, options=launch_options(cfg), targets=targets,
                      aligned=aligned + ("s_q_tok", "s_q_head", "s_o_tok", "s_o_head"))
