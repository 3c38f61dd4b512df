"""Prefill on Hopper, warp-specialized (Gluon): what attn.prefill and BatchPrefill run on sm_90
where the batch allows it (eligible(), q_fits(); prefill.hopper_kernel picks it).

The portable kernel (attention.py) leaves the wgmma units idle while it waits for K/V and runs
the softmax; cuDNN does not. Triton's language cannot split a kernel into producer and consumer
warps on sm_90 (tl.range's warp_specialize is ignored there, benchmarks/NOTES.md); Gluon can.
Three partitions work on 128-row tiles of one q head:

- a loader streams a tile's q once, then K and V blocks through a ring of STAGES shared-memory
  buffers: one warp issuing TMA copies (ragged rows, pages of 8k slots that tile a block; in
  BatchAttention schedules K's page numbers looked up a block ahead: -0.9% on the mixed batch),
  K and V on barriers of their own so that q K^T starts before V lands; or, for pages TMA cannot copy (the
  token pool, pages of 1, 3, 24...), a warpgroup gathering slots with cp.async, each block's page
  numbers looked up a block ahead, before the wait for a free stage (after it, the lookup's
  latency stood before every block's copies: pages of 1 at 1.13x the ragged time against 1.08x);
- two consumer warpgroups, 64 rows each, run S = q K^T from shared memory, the online softmax in
  registers and O += P V with P from registers, each at its own pace (a stage is free once both
  have arrived), so that one's softmax overlaps the other's wgmma. (FlashAttention-3's order within
  a warpgroup as well, adb1af9's OVERLAP, ran slower on 2 of issue 3's 3 shapes and on gathered
  pages: not kept.)

Custom masks (FlashInfer's packed bits) come with the plan's block lists (mask_summary): each
tile visits only the blocks the mask leaves a key in, and masks only those it leaves partly
visible; so time follows the live blocks.

Persistent: a program an SM loops over the tiles (program p runs tiles p, p + programs, ... of
the work list's longest-first items), so one tile's prologue overlaps the last one's epilogue.

The NaN-in-unowned-slots rule holds: keys past a sequence are masked out of S, and the last
block's V rows past it are zeroed in shared memory before P V reads them (0 * NaN is NaN);
gathered slots past the sequence are zero-filled by the copy itself.
Needs Gluon's Hopper API (Triton 3.6 or later). Measured: benchmarks/results/NVIDIA_H100_80GB_HBM3.md
and NVIDIA_H200.md."""
from __future__ import annotations

import triton
from triton.experimental import gluon
from triton.experimental.gluon import language as gl
from triton.experimental.gluon.language.nvidia.ampere import async_copy
from triton.experimental.gluon.language.nvidia.hopper import (fence_async_shared, mbarrier, tma, warpgroup_mma,
                                                             warpgroup_mma_wait)

# Triton 3.6 (what the H200 runs) names the TMA load and cp.async async_copy_global_to_shared and
# the CTA barrier thread_barrier; 3.9 async_load and barrier.
tma_load = getattr(tma, "async_load", None) or tma.async_copy_global_to_shared
cp_async_load = getattr(async_copy, "async_load", None) or async_copy.async_copy_global_to_shared
thread_barrier = getattr(gl, "barrier", None) or gl.thread_barrier

LOG2E = gl.constexpr(1.4426950408889634)
LN2 = gl.constexpr(0.6931471805599453)


@gluon.jit
def _tile(t, item_req, item_q_start, item_kv_start, item_kv_end, item_out, item_kind, item_stride, q_indptr,
          kv_indptr, seq_lens, mask_indptr, blk_indptr, NUM_Q_HEADS: gl.constexpr, GROUP: gl.constexpr,
          BLOCK_M: gl.constexpr, BLOCK_N: gl.constexpr, CAUSAL: gl.constexpr, MASK: gl.constexpr,
          BATCH: gl.constexpr):
    """Tile t = item * NUM_Q_HEADS + head: its head, q row of its first token, rows, rows a token
    (`pack`), kv row / page-map base of key 0, kv_len, the first row's position, the end of the
    blocks every row sees, its first block and blocks; with a custom mask also how many of them
    are partly visible and the packed mask's byte of its first row; in a BatchAttention schedule
    (BATCH) where its rows go (a partial-row slot and stride, or -1 for out).

    A prefill tile holds BLOCK_M tokens of one q head. A BatchAttention decode-kind item packs a
    kv head's GROUP q heads of each token into rows (head is then the kv head), so that K and V
    are read once for the group."""
    head = t % NUM_Q_HEADS
    item = t // NUM_Q_HEADS
    b = gl.load(item_req + item)
    q_start = gl.load(item_q_start + item)
    q_begin = gl.load(q_indptr + b)
    q_len = gl.load(q_indptr + b + 1) - q_begin
    kv_begin = gl.load(kv_indptr + b)
    kv_len = gl.load(seq_lens + b)
    pack = 1
    kv_lo = 0
    kv_hi = kv_len
    out_slot = -1
    stride = 0
    if BATCH:
        if gl.load(item_kind + item) == 0:
            pack = GROUP
        kv_lo = gl.load(item_kv_start + item)      # a chunk: whole blocks from kv_lo (plan time)
        kv_hi = gl.minimum(gl.load(item_kv_end + item), kv_len)
        out_slot = gl.load(item_out + item)
        stride = gl.load(item_stride + item)
    tokens = gl.minimum(q_len - q_start, BLOCK_M // pack)
    rows = tokens * pack
    pos0 = kv_len - q_len + q_start          # the first token's position (bottom-right aligned)
    hi = kv_hi
    mid = kv_len
    if CAUSAL:
        hi = gl.minimum(kv_hi, pos0 + tokens)
        mid = gl.minimum(kv_len, pos0 + 1)
    mid = (mid // BLOCK_N) * BLOCK_N
    j0 = kv_lo // BLOCK_N
    blocks = gl.where(rows > 0, gl.maximum(gl.cdiv(hi, BLOCK_N) - j0, 0), 0)
    partial = 0
    mask_row = 0
    if MASK:
        # Plan-time block lists (mask_summary.block_lists): the partly visible blocks, then the
        # fully visible ones; fully masked blocks are not in them.
        j0 = gl.load(blk_indptr + 2 * item)
        partial = gl.load(blk_indptr + 2 * item + 1) - j0
        blocks = gl.load(blk_indptr + 2 * item + 2) - j0
        mask_row = gl.load(mask_indptr + b) + q_start.to(gl.int64) * ((kv_len + 7) // 8)
    return (head, q_begin + q_start, rows, pack, kv_begin, kv_len, pos0, mid, j0, blocks, partial, mask_row,
            out_slot, stride)


@gluon.jit
def _tiles(prog_indptr, num_items_ptr, NUM_Q_HEADS: gl.constexpr, BATCH: gl.constexpr):
    """The range of this program's tiles: (first, end, step) over its schedule list (BATCH:
    prog_items[first:end]) or over all tiles (p, p + programs, ...: the work list's items are
    longest first)."""
    if BATCH:
        return gl.load(prog_indptr + gl.program_id(0)), gl.load(prog_indptr + gl.program_id(0) + 1), 1
    else:
        return gl.program_id(0), gl.load(num_items_ptr) * NUM_Q_HEADS, gl.num_programs(0)


@gluon.jit
def _tile_id(i, prog_items, BATCH: gl.constexpr):
    if BATCH:
        return gl.load(prog_items + i)
    else:
        return i


@gluon.jit
def _block_start(j, j0, blocks, blk_ids, BLOCK_N: gl.constexpr, MASK: gl.constexpr):
    """The first key of a tile's j-th block: (j0 + j) * BLOCK_N, or its block list's j-th (0 for
    j past the list: the gather looks one block ahead)."""
    if MASK:
        return gl.load(blk_ids + j0 + j, mask=j < blocks, other=0) * BLOCK_N
    else:
        return (j0 + j) * BLOCK_N


@gluon.jit
def _block_pages(start, kv_len, page_indices, page_base, BLOCK_N: gl.constexpr, ROWS: gl.constexpr,
                 PAGE_SIZE: gl.constexpr):
    """The page numbers of block `start`'s TMA boxes (one a page, or a page's part), a lane each
    (all of them in every lane spilled 32 bytes of the loader's 40 registers with a custom mask,
    Triton 3.6): looked up a block ahead, so that the lookup's latency overlaps the wait for a free
    stage. Pages past the sequence read page 0: their keys are masked and their V rows zeroed."""
    NB: gl.constexpr = BLOCK_N // ROWS
    layout: gl.constexpr = gl.BlockedLayout([1], [32], [gl.num_warps()], [0])
    n = start + gl.arange(0, NB, layout=layout) * ROWS
    return gl.load(page_indices + page_base + n // PAGE_SIZE, mask=n < kv_len, other=0)


@gluon.jit
def _kv_copies(desc, bufs, bar, s, start, pages, kv_len, page_indices, page_base, row_base, row_col, s_page_rows,
               BLOCK_N: gl.constexpr, ROWS: gl.constexpr, PAGE_SIZE: gl.constexpr, PAGED: gl.constexpr,
               AHEAD: gl.constexpr):
    """Block `start`'s K (or V) rows into stage s: one TMA copy of BLOCK_N rows where they are
    consecutive (ragged), else one of ROWS rows a page (or a page's part): their page numbers
    `pages` looked up ahead (AHEAD, _block_pages), or looked up here. K's come ahead; V's are
    looked up again once K's copies are issued (the same lines, now cached): held for V as well,
    K's page numbers spilled 24 bytes of the loader's 40 registers (Triton 3.9)."""
    mbarrier.expect(bar.index(s), BLOCK_N * desc.block_type.nbytes // ROWS)
    if AHEAD:                                   # (only paged caches look ahead)
        box = gl.arange(0, BLOCK_N // ROWS, layout=pages.type.layout)
    for i in gl.static_range(BLOCK_N // ROWS):
        n = start + i * ROWS
        if PAGED:
            if AHEAD:
                page = gl.sum(gl.where(box == i, pages, 0), axis=0)      # box i's, from its lane
            else:
                page = gl.load(page_indices + page_base + n // PAGE_SIZE, mask=n < kv_len, other=0)
            row = page * s_page_rows + row_base + n % PAGE_SIZE
        else:
            row = page_base + row_base + n
        tma_load(desc, [row, row_col], bar.index(s), bufs.index(s).slice(i * ROWS, ROWS))


@gluon.jit
def _gather_pages(start, kv_len, page_indices, page_base, BLOCK_N: gl.constexpr, HEAD_DIM: gl.constexpr,
                  PAGE_SIZE: gl.constexpr):
    """The page numbers of block `start`'s slots for _kv_gather, in one load: [slice rows, slices],
    a thread holding its rows' for every slice (looked up a slice at a time, each slice's copies
    waited for its lookup). Slots past the sequence read page 0 (their copies are masked)."""
    TPR: gl.constexpr = HEAD_DIM // 8
    SLICE: gl.constexpr = 2048 // HEAD_DIM
    NS: gl.constexpr = BLOCK_N // SLICE
    by_slice: gl.constexpr = gl.BlockedLayout([1, NS], [32 // TPR, TPR], [gl.num_warps(), 1], [1, 0])
    sl = gl.arange(0, NS, layout=gl.SliceLayout(0, by_slice))
    n = start + sl[None, :] * SLICE + gl.arange(0, SLICE, layout=gl.SliceLayout(1, by_slice))[:, None]
    return gl.load(page_indices + page_base + n // PAGE_SIZE, mask=n < kv_len, other=0)


@gluon.jit
def _kv_gather(k_ptr, v_ptr, width, k_bufs, v_bufs, k_ready, v_ready, s, start, kv_len, pages, row_base, row_col,
               s_page_rows, BLOCK_N: gl.constexpr, HEAD_DIM: gl.constexpr, PAGE_SIZE: gl.constexpr):
    """Block `start`'s K and V rows into stage s with cp.async, 16 bytes a thread and a slot a row
    through the page map (its page numbers `pages`, _gather_pages()): for pages TMA cannot copy
    (fewer than 8 slots, or not tiling a block). Slots past the sequence are zero-filled (so no
    tail cleaning). A slice's K and V share its addresses (done apart, the compiler kept every
    slice's live until V: spills); so K's barrier completes with V's, once every loader thread's
    copies have landed."""
    TPR: gl.constexpr = HEAD_DIM // 8                     # threads a row, 8 elements (16 bytes) each
    layout: gl.constexpr = gl.BlockedLayout([1, 8], [32 // TPR, TPR], [gl.num_warps(), 1], [1, 0])
    SLICE: gl.constexpr = 2048 // HEAD_DIM                # rows a copy: two 16-byte pieces a thread
    NS: gl.constexpr = BLOCK_N // SLICE
    d = gl.arange(0, HEAD_DIM, layout=gl.SliceLayout(0, layout))
    sl = gl.arange(0, NS, layout=gl.SliceLayout(0, pages.type.layout))
    for i in gl.static_range(NS):
        n = start + i * SLICE + gl.arange(0, SLICE, layout=gl.SliceLayout(1, layout))
        live = n < kv_len
        page = gl.sum(gl.where(sl[None, :] == i, pages, 0), axis=1)        # slice i's, within a thread
        page = gl.convert_layout(page, gl.SliceLayout(1, layout)).to(gl.int64)
        row = page * s_page_rows + row_base + n % PAGE_SIZE
        # Rows start on 16 bytes (fits_cache: the row width and head column are multiples of 8).
        offs = gl.multiple_of(row * width + row_col, 8)[:, None] + d[None, :]
        cp_async_load(k_bufs.index(s).slice(i * SLICE, SLICE), k_ptr + offs, mask=live[:, None])
        cp_async_load(v_bufs.index(s).slice(i * SLICE, SLICE), v_ptr + offs, mask=live[:, None])
    async_copy.mbarrier_arrive(k_ready.index(s), increment_count=False)
    async_copy.mbarrier_arrive(v_ready.index(s), increment_count=False)


@gluon.jit
def _wait_loaded(bar, phase, GATHER: gl.constexpr):
    """Wait for a stage's K or V; cp.async wrote it through the generic proxy, which wgmma's
    async-proxy reads are ordered after only by a proxy fence."""
    mbarrier.wait(bar, phase)
    if GATHER:
        fence_async_shared()


@gluon.jit
def _loader(q_desc, k_desc, v_desc, k_ptr, v_ptr, width, q_smem, k_bufs, v_bufs, q_bar, q_free, k_ready, v_ready,
            kv_free, item_req, item_q_start, item_kv_start, item_kv_end, item_out, item_kind, item_stride,
            prog_indptr, prog_items, num_items_ptr, q_indptr, kv_indptr, seq_lens, page_indices, mask_indptr,
            blk_indptr, blk_ids, s_page_rows, s_head_rows, head_col,
            NUM_Q_HEADS: gl.constexpr, GROUP: gl.constexpr, HEAD_DIM: gl.constexpr, BLOCK_M: gl.constexpr,
            BLOCK_N: gl.constexpr, ROWS: gl.constexpr, PAGE_SIZE: gl.constexpr, PAGED: gl.constexpr,
            STAGES: gl.constexpr, CAUSAL: gl.constexpr, GATHER: gl.constexpr, MASK: gl.constexpr,
            BATCH: gl.constexpr):
    """One warp (a warpgroup to gather): for each of the program's tiles, its q (once both
    consumers are done with the last tile's; a packed tile's the consumers load themselves), then
    its K and V block by block into the ring. Stages and phases count blocks over all the
    program's tiles."""
    c = 0
    it = 0
    first, end, step = _tiles(prog_indptr, num_items_ptr, NUM_Q_HEADS, BATCH)
    for i in range(first, end, step):
        head, q_row, rows, pack, kv_begin, kv_len, pos0, mid, j0, blocks, _, _, _, _ = _tile(
            _tile_id(i, prog_items, BATCH), item_req, item_q_start, item_kv_start, item_kv_end, item_out,
            item_kind, item_stride, q_indptr, kv_indptr, seq_lens, mask_indptr, blk_indptr, NUM_Q_HEADS, GROUP,
            BLOCK_M, BLOCK_N, CAUSAL, MASK, BATCH)
        kv_head = head // (GROUP // pack)
        start = _block_start(0, j0, blocks, blk_ids, BLOCK_N, MASK)
        # Page numbers a block ahead: a lookup's latency overlaps the wait for a free stage. TMA
        # pages look K's up ahead in schedules only (decode tiles wait on latency; outside them,
        # the plain path as measured before, which Triton 3.9 compiled without spills).
        AHEAD: gl.constexpr = PAGED and BATCH
        if GATHER:
            pages = _gather_pages(start, kv_len, page_indices, kv_begin, BLOCK_N, HEAD_DIM, PAGE_SIZE)
        elif AHEAD:
            pages = _block_pages(start, kv_len, page_indices, kv_begin, BLOCK_N, ROWS, PAGE_SIZE)
        else:
            pages = 0
        # A fresh barrier's phase 1 counts as complete: the first tile's q waits on nothing. Waited
        # for packed tiles too: skipped, the loader could fall two phases behind and misread one.
        mbarrier.wait(q_free, (it & 1) ^ 1)
        if pack == 1:
            mbarrier.expect(q_bar, q_desc.block_type.nbytes)
            tma_load(q_desc, [q_row, head * HEAD_DIM], q_bar, q_smem)
        for j in range(blocks):
            s = c % STAGES
            mbarrier.wait(kv_free.index(s), ((c // STAGES) & 1) ^ 1)
            if GATHER:
                _kv_gather(k_ptr, v_ptr, width, k_bufs, v_bufs, k_ready, v_ready, s, start, kv_len, pages,
                           kv_head * s_head_rows, kv_head * head_col, s_page_rows, BLOCK_N, HEAD_DIM, PAGE_SIZE)
                start = _block_start(j + 1, j0, blocks, blk_ids, BLOCK_N, MASK)
                pages = _gather_pages(start, kv_len, page_indices, kv_begin, BLOCK_N, HEAD_DIM, PAGE_SIZE)
            else:
                if not AHEAD:
                    start = _block_start(j, j0, blocks, blk_ids, BLOCK_N, MASK)
                _kv_copies(k_desc, k_bufs, k_ready, s, start, pages, kv_len, page_indices, kv_begin,
                           kv_head * s_head_rows, kv_head * head_col, s_page_rows, BLOCK_N, ROWS, PAGE_SIZE, PAGED,
                           AHEAD)
                _kv_copies(v_desc, v_bufs, v_ready, s, start, pages, kv_len, page_indices, kv_begin,
                           kv_head * s_head_rows, kv_head * head_col, s_page_rows, BLOCK_N, ROWS, PAGE_SIZE, PAGED,
                           False)
                if AHEAD:
                    start = _block_start(j + 1, j0, blocks, blk_ids, BLOCK_N, MASK)
                    pages = _block_pages(start, kv_len, page_indices, kv_begin, BLOCK_N, ROWS, PAGE_SIZE)
            c += 1
        it += 1


@gluon.jit
def _zero_tail_rows(v_buf, first_dead, BLOCK_N: gl.constexpr, HEAD_DIM: gl.constexpr):
    """V rows [first_dead, BLOCK_N) of a stage set to 0 (rows past the sequence: another
    request's keys, or whatever an unowned slot holds)."""
    blocked: gl.constexpr = gl.BlockedLayout([1, 8], [4, 8], [gl.num_warps(), 1], [1, 0])
    v = v_buf.load(blocked)
    r = gl.arange(0, BLOCK_N, layout=gl.SliceLayout(1, blocked))
    v_buf.store(gl.where((r < first_dead)[:, None], v, gl.zeros_like(v)))
    fence_async_shared()        # the generic-proxy stores before wgmma's async-proxy reads
    thread_barrier()            # and every warp's before the warpgroup's wgmma


@gluon.jit
def _masked(qk, start, mid, kv_len, q_pos, col, CAUSAL: gl.constexpr):
    """Scores of block `start` with the keys a row may not see at -inf: only past the blocks every
    row sees (the causal diagonal and the sequence's tail)."""
    if start >= mid:
        pos = start + col
        keep = (pos < kv_len)[None, :]
        if CAUSAL:
            keep = keep & (pos[None, :] <= q_pos[:, None])
        qk = gl.where(keep, qk, float("-inf"))
    return qk


@gluon.jit
def _custom_masked(qk, mask_ptr, mask_row, row_bytes, rows, start, kv_len, r, col, BLOCK_N: gl.constexpr):
    """Scores of a partly visible block with the custom mask's hidden keys at -inf (key n of a row
    is bit n % 8 of its byte n // 8; rows past the tile's and keys past the sequence are hidden).
    Read a byte at a time as a row vector: a thread holds the same two rows' columns 8k + (0..7)
    for every k (wgmma's layout), so byte k's bits go to one column pair of each of its rows; a
    [rows, keys] tile of byte loads (a 64-bit address each) spilled."""
    row_ptr = mask_ptr + (mask_row + r.to(gl.int64) * row_bytes + start // 8)
    keep = gl.zeros_like(qk, dtype=gl.int32)
    for k in gl.static_range(BLOCK_N // 8):
        byte = gl.load(row_ptr + k, mask=(r < rows) & (start + 8 * k < kv_len), other=0).to(gl.int32)
        keep = gl.where((col // 8 == k)[None, :], byte[:, None] >> (col % 8)[None, :], keep)
    keep = keep & 1
    return gl.where((keep != 0) & (start + col < kv_len)[None, :], qk, float("-inf"))


@gluon.jit
def _softmax_step(qk, m_i, l_i, qk_scale):
    """Online softmax in log2 units: (p, alpha to rescale the accumulator by, new max, new sum)."""
    m_new = gl.maximum(m_i, gl.max(qk, 1) * qk_scale)
    m_safe = gl.where(m_new == float("-inf"), 0.0, m_new)     # a row with no key yet stays at 0
    p = gl.exp2(qk * qk_scale - m_safe[:, None])
    alpha = gl.exp2(m_i - m_safe)
    return p, alpha, m_new, l_i * alpha + gl.sum(p, 1)


@gluon.jit
def _clean_tail(v_bufs, tail_bars, s, tails, start, kv_len, ROW0: gl.constexpr, BLOCK_N: gl.constexpr,
                HEAD_DIM: gl.constexpr, GATHER: gl.constexpr):
    """Before P V of a sequence's last block: the first warpgroup zeroes its V rows past the
    sequence and signals; the second waits (a barrier a stage, whose phases the bits of `tails`
    count). Returns tails."""
    if not GATHER and start + BLOCK_N > kv_len:         # (gathered rows past the sequence are zeros)
        if ROW0 == 0:
            _zero_tail_rows(v_bufs.index(s), kv_len - start, BLOCK_N, HEAD_DIM)
            mbarrier.arrive(tail_bars.index(s), count=1)
        else:
            mbarrier.wait(tail_bars.index(s), (tails >> s) & 1)
        tails = tails ^ (1 << s)
    return tails


@gluon.jit
def _load_packed_q(q_rows, q_ptr, s_q_tok, q_row, kv_head, rows, pack, ROW0: gl.constexpr, BLOCK_M: gl.constexpr,
                   HEAD_DIM: gl.constexpr):
    """A packed tile's q rows [ROW0, ROW0 + BLOCK_M) into this warpgroup's half of q: row r is
    token r // pack's q head kv_head * pack + r % pack (rows past the tile's are zeros). Loaded by
    the consumer: a token's group is a few rows apart from the next token's, no TMA box."""
    layout: gl.constexpr = gl.BlockedLayout([1, 8], [4, 8], [gl.num_warps(), 1], [1, 0])
    r = ROW0 + gl.arange(0, BLOCK_M, layout=gl.SliceLayout(1, layout))
    d = gl.arange(0, HEAD_DIM, layout=gl.SliceLayout(0, layout))
    off = (q_row + r // pack).to(gl.int64)[:, None] * s_q_tok + ((kv_head * pack + r % pack) * HEAD_DIM)[:, None]
    q_rows.store(gl.load(q_ptr + off + d[None, :], mask=(r < rows)[:, None], other=0.0))
    fence_async_shared()        # the generic-proxy stores before wgmma's async-proxy reads
    thread_barrier()


@gluon.jit
def _skip_blocks(v_bufs, v_ready, kv_free, q_free, tail_bars, c, tails, j0, blocks, blk_ids, kv_len,
                 ROW0: gl.constexpr, BLOCK_N: gl.constexpr, HEAD_DIM: gl.constexpr, STAGES: gl.constexpr,
                 GATHER: gl.constexpr, MASK: gl.constexpr):
    """The second warpgroup on a tile with no rows of its own (a short tail tile, a packed decode
    tile): frees each stage once loaded, in step with the loader and the other warpgroup (freed
    early, its arrivals would run a phase ahead). Returns (c, tails)."""
    for j in range(blocks):
        s = c % STAGES
        mbarrier.wait(v_ready.index(s), (c // STAGES) & 1)
        start = _block_start(j, j0, blocks, blk_ids, BLOCK_N, MASK)
        tails = _clean_tail(v_bufs, tail_bars, s, tails, start, kv_len, ROW0, BLOCK_N, HEAD_DIM, GATHER)
        if j == blocks - 1:
            mbarrier.arrive(q_free, count=1)
        mbarrier.arrive(kv_free.index(s), count=1)
        c += 1
    return c, tails


@gluon.jit
def _consumer(q_smem, k_bufs, v_bufs, q_bar, q_free, k_ready, v_ready, kv_free, tail_bars, q_ptr, s_q_tok,
              o_ptr, s_o_tok, s_o_head, lse_ptr, s_lse_tok, part_o, part_lse, item_req, item_q_start, item_kv_start,
              item_kv_end, item_out, item_kind, item_stride, prog_indptr, prog_items, num_items_ptr, q_indptr,
              kv_indptr, seq_lens, mask_ptr, mask_indptr, blk_indptr, blk_ids, qk_scale, ROW0: gl.constexpr,
              NUM_Q_HEADS: gl.constexpr, GROUP: gl.constexpr, HEAD_DIM: gl.constexpr, BLOCK_M: gl.constexpr,
              TILE_M: gl.constexpr, BLOCK_N: gl.constexpr, STAGES: gl.constexpr, CAUSAL: gl.constexpr,
              RETURN_LSE: gl.constexpr, GATHER: gl.constexpr, MASK: gl.constexpr, BATCH: gl.constexpr):
    """One warpgroup, rows [ROW0, ROW0 + BLOCK_M) of each of the program's tiles (TILE_M rows):
    scores, online softmax (log2 units), P V, and those rows' output (or, for a BatchAttention
    chunk, partial rows and their lse for the merge). The two warpgroups run this independently
    (each waits on a stage's barriers and frees it with one arrival of two), so one's softmax
    overlaps the other's wgmma."""
    nw: gl.constexpr = gl.num_warps()
    s_layout: gl.constexpr = gl.NVMMADistributedLayout(version=[3, 0], warps_per_cta=[nw, 1],
                                                       instr_shape=[16, BLOCK_N, 16])
    o_layout: gl.constexpr = gl.NVMMADistributedLayout(version=[3, 0], warps_per_cta=[nw, 1],
                                                       instr_shape=[16, HEAD_DIM, 16])
    p_layout: gl.constexpr = gl.DotOperandLayout(operand_index=0, parent=o_layout, k_width=2)
    row_s: gl.constexpr = gl.SliceLayout(1, s_layout)
    row_o: gl.constexpr = gl.SliceLayout(1, o_layout)
    store_layout: gl.constexpr = gl.BlockedLayout([1, 8], [4, 8], [nw, 1], [1, 0])

    PACKS: gl.constexpr = BATCH and GROUP > 1
    q_rows = q_smem.slice(ROW0, BLOCK_M)
    zero_s = gl.zeros([BLOCK_M, BLOCK_N], gl.float32, s_layout)
    col = gl.arange(0, BLOCK_N, layout=gl.SliceLayout(0, s_layout))
    c = 0
    qt = 0                      # tiles whose q came by TMA: q_bar's phases
    tails = 0                   # bit s: the parity of stage s's tail blocks so far
    first, end, step = _tiles(prog_indptr, num_items_ptr, NUM_Q_HEADS, BATCH)
    for i in range(first, end, step):
        head, q_row, rows, pack, kv_begin, kv_len, pos0, mid, j0, blocks, partial, mask_row, out_slot, stride = \
            _tile(_tile_id(i, prog_items, BATCH), item_req, item_q_start, item_kv_start, item_kv_end, item_out,
                  item_kind, item_stride, q_indptr, kv_indptr, seq_lens, mask_indptr, blk_indptr, NUM_Q_HEADS,
                  GROUP, TILE_M, BLOCK_N, CAUSAL, MASK, BATCH)
        active = ROW0 < rows
        # Only a schedule's decode-kind tiles of GQA groups pack, their q loaded here; decided at
        # compile time where none can (Triton 3.6's lowering crashed on the packed load left
        # behind a branch folded to a constant).
        if PACKS:
            if pack == 1:
                mbarrier.wait(q_bar, qt & 1)
                qt += 1
            elif active:
                _load_packed_q(q_rows, q_ptr, s_q_tok, q_row, head, rows, pack, ROW0, BLOCK_M, HEAD_DIM)
        else:
            mbarrier.wait(q_bar, qt & 1)
            qt += 1
        m_i = gl.full([BLOCK_M], float("-inf"), gl.float32, row_s)
        l_i = gl.zeros([BLOCK_M], gl.float32, row_s)
        acc = gl.zeros([BLOCK_M, HEAD_DIM], gl.float32, o_layout)
        r_s = ROW0 + gl.arange(0, BLOCK_M, layout=row_s)        # the rows' indices in the tile
        q_pos = pos0 + r_s // pack
        # A warpgroup without rows skips the math in a schedule (decode tiles fill one of two);
        # outside one only a short tail tile leaves it idle, and it computes masked rows as before
        # (the skip branch there spilled 8 bytes on Triton 3.6).
        skip = False
        if BATCH:
            skip = not active
        if skip:
            c, tails = _skip_blocks(v_bufs, v_ready, kv_free, q_free, tail_bars, c, tails, j0, blocks, blk_ids,
                                    kv_len, ROW0, BLOCK_N, HEAD_DIM, STAGES, GATHER, MASK)
        else:
            for j in range(blocks):
                s = c % STAGES
                phase = (c // STAGES) & 1
                start = _block_start(j, j0, blocks, blk_ids, BLOCK_N, MASK)
                _wait_loaded(k_ready.index(s), phase, GATHER)
                qk = warpgroup_mma(q_rows, k_bufs.index(s).permute((1, 0)), zero_s, use_acc=False, is_async=True)
                qk, _, _ = warpgroup_mma_wait(num_outstanding=0, deps=[qk, q_rows, k_bufs.index(s)])
                if j == blocks - 1:
                    mbarrier.arrive(q_free, count=1)    # q read for the last time: the next tile's may land
                if MASK:
                    # Fully visible blocks (causal folded in at plan time) need no mask at all.
                    if j < partial:
                        qk = _custom_masked(qk, mask_ptr, mask_row, (kv_len + 7) // 8, rows, start, kv_len, r_s,
                                            col, BLOCK_N)
                        qk = _masked(qk, start, 0, kv_len, q_pos, col, CAUSAL)
                else:
                    qk = _masked(qk, start, mid, kv_len, q_pos, col, CAUSAL)
                p, alpha, m_i, l_i = _softmax_step(qk, m_i, l_i, qk_scale)
                acc = acc * gl.convert_layout(alpha, row_o)[:, None]
                pv = gl.convert_layout(p.to(q_smem.dtype), p_layout)
                _wait_loaded(v_ready.index(s), phase, GATHER)
                tails = _clean_tail(v_bufs, tail_bars, s, tails, start, kv_len, ROW0, BLOCK_N, HEAD_DIM, GATHER)
                acc = warpgroup_mma(pv, v_bufs.index(s), acc, is_async=True)
                acc, _ = warpgroup_mma_wait(num_outstanding=0, deps=[acc, v_bufs.index(s)])
                mbarrier.arrive(kv_free.index(s), count=1)
                c += 1
        if blocks == 0:
            mbarrier.arrive(q_free, count=1)
        if active:
            _epilogue(acc, m_i, l_i, o_ptr, s_o_tok, s_o_head, lse_ptr, s_lse_tok, part_o, part_lse, q_row, head,
                      rows, pack, out_slot, stride, ROW0, NUM_Q_HEADS, HEAD_DIM, BLOCK_M, RETURN_LSE, BATCH,
                      o_layout, s_layout, store_layout)


@gluon.jit
def _epilogue(acc, m_i, l_i, o_ptr, s_o_tok, s_o_head, lse_ptr, s_lse_tok, part_o, part_lse, q_row, head, rows, pack,
              out_slot, stride, ROW0: gl.constexpr, NUM_Q_HEADS: gl.constexpr, HEAD_DIM: gl.constexpr,
              BLOCK_M: gl.constexpr, RETURN_LSE: gl.constexpr, BATCH: gl.constexpr, o_layout: gl.constexpr,
              s_layout: gl.constexpr, store_layout: gl.constexpr):
    """A tile's rows: out (row r is token r // pack, q head head * pack + r % pack), and lse; a
    BatchAttention chunk's (out_slot >= 0) go to partial rows out_slot + token * stride in fp32,
    with their lse, for the merge. Rows that saw no key: out 0, lse -inf (attention.py's
    convention). The stores overlap the loader's copies for the next tile."""
    row_o: gl.constexpr = gl.SliceLayout(1, o_layout)
    row_s: gl.constexpr = gl.SliceLayout(1, s_layout)
    seen = l_i > 0
    out = acc / gl.convert_layout(gl.where(seen, l_i, 1.0), row_o)[:, None]
    lse = gl.where(seen, (m_i + gl.log2(gl.where(seen, l_i, 1.0))) * LN2, float("-inf"))
    rl = ROW0 + gl.arange(0, BLOCK_M, layout=row_s)
    # Which store is chosen at compile time outside a schedule: Triton 3.6's LLVM lowering crashed
    # on the partial-row store left behind a constant branch.
    if BATCH:
        if out_slot < 0:
            _store_out(out, lse, rl, o_ptr, s_o_tok, s_o_head, lse_ptr, s_lse_tok, q_row, head, rows, pack, ROW0,
                       HEAD_DIM, BLOCK_M, RETURN_LSE, store_layout)
        else:
            # fp32 straight from the MMA's layout: a convert through shared memory would need twice
            # the bf16 output's scratch, and partial rows are few.
            ro = ROW0 + gl.arange(0, BLOCK_M, layout=row_o)
            do = gl.arange(0, HEAD_DIM, layout=gl.SliceLayout(0, o_layout))
            prow = (out_slot + (ro // pack) * stride).to(gl.int64) * NUM_Q_HEADS + head * pack + ro % pack
            gl.store(part_o + (prow * HEAD_DIM)[:, None] + do[None, :], out, mask=(ro < rows)[:, None])
            prow_l = (out_slot + (rl // pack) * stride).to(gl.int64) * NUM_Q_HEADS + head * pack + rl % pack
            gl.store(part_lse + prow_l, lse, mask=rl < rows)
    else:
        _store_out(out, lse, rl, o_ptr, s_o_tok, s_o_head, lse_ptr, s_lse_tok, q_row, head, rows, pack, ROW0,
                   HEAD_DIM, BLOCK_M, RETURN_LSE, store_layout)


@gluon.jit
def _store_out(out, lse, rl, o_ptr, s_o_tok, s_o_head, lse_ptr, s_lse_tok, q_row, head, rows, pack,
               ROW0: gl.constexpr, HEAD_DIM: gl.constexpr, BLOCK_M: gl.constexpr, RETURN_LSE: gl.constexpr,
               store_layout: gl.constexpr):
    o16 = gl.convert_layout(out.to(o_ptr.dtype.element_ty), store_layout)
    r = ROW0 + gl.arange(0, BLOCK_M, layout=gl.SliceLayout(1, store_layout))
    d = gl.arange(0, HEAD_DIM, layout=gl.SliceLayout(0, store_layout))
    o_off = ((q_row + r // pack).to(gl.int64) * s_o_tok + (head * pack + r % pack) * s_o_head)[:, None] + d[None, :]
    gl.store(o_ptr + o_off, o16, mask=(r < rows)[:, None])
    if RETURN_LSE:
        gl.store(lse_ptr + (q_row + rl // pack).to(gl.int64) * s_lse_tok + head * pack + rl % pack, lse,
                 mask=rl < rows)


@gluon.jit
def _globaltimer():
    return gl.inline_asm_elementwise("mov.u64 $0, %globaltimer;", "=l", [], dtype=gl.int64, is_pure=False, pack=1)


@gluon.jit
def hopper_prefill_kernel(
    q_desc, k_desc, v_desc, q_ptr, s_q_tok, k_ptr, v_ptr, width, o_ptr, s_o_tok, s_o_head, lse_ptr, s_lse_tok,
    item_req, item_q_start, q_indptr, kv_indptr, page_indices, seq_lens, num_items_ptr,
    mask_ptr, mask_indptr, blk_indptr, blk_ids, sm_scale, s_page_rows, s_head_rows, head_col,
    item_kv_start, item_kv_end, item_out, item_kind, item_stride, prog_indptr, prog_items, part_o, part_lse,
    prog_times,
    NUM_Q_HEADS: gl.constexpr, GROUP: gl.constexpr, HEAD_DIM: gl.constexpr, BLOCK_M: gl.constexpr,
    BLOCK_N: gl.constexpr, STAGES: gl.constexpr, PAGE_SIZE: gl.constexpr, PAGED: gl.constexpr,
    CAUSAL: gl.constexpr, RETURN_LSE: gl.constexpr, GATHER: gl.constexpr, MASK: gl.constexpr,
    BATCH: gl.constexpr, TIMES: gl.constexpr, num_warps: gl.constexpr,
):
    # K and V are read as 2-D [rows, row width] views of their storage (a row: one slot's heads for
    # NHD and ragged caches, one slot of one head for HND): slot n of page p, kv head h is row
    # p * s_page_rows + h * s_head_rows + n, at column h * head_col.
    # Persistent: program p runs tiles p, p + programs, ... of the work list's items x heads (heads
    # fastest; items longest first), so a tile's prologue overlaps the last one's epilogue; or, in
    # a BatchAttention schedule (BATCH: items cut into KV chunks, decode-kind ones packing the GQA
    # group), the tiles the plan's cost heap gave it.
    if TIMES:
        t_start = _globaltimer()
    dtype: gl.constexpr = q_desc.dtype
    q_smem = gl.allocate_shared_memory(dtype, [BLOCK_M, HEAD_DIM], q_desc.layout)
    k_bufs = gl.allocate_shared_memory(dtype, [STAGES, BLOCK_N, HEAD_DIM], k_desc.layout)
    v_bufs = gl.allocate_shared_memory(dtype, [STAGES, BLOCK_N, HEAD_DIM], v_desc.layout)
    q_bar = gl.allocate_shared_memory(gl.int64, [1], mbarrier.MBarrierLayout())
    q_free = gl.allocate_shared_memory(gl.int64, [1], mbarrier.MBarrierLayout())
    k_ready = gl.allocate_shared_memory(gl.int64, [STAGES, 1], mbarrier.MBarrierLayout())
    v_ready = gl.allocate_shared_memory(gl.int64, [STAGES, 1], mbarrier.MBarrierLayout())
    kv_free = gl.allocate_shared_memory(gl.int64, [STAGES, 1], mbarrier.MBarrierLayout())
    tail_bars = gl.allocate_shared_memory(gl.int64, [STAGES, 1], mbarrier.MBarrierLayout())
    # The loader: one warp issuing TMA copies, or a warpgroup issuing cp.async. 12 warps at maxnreg
    # 168 share the register file: two consumer warpgroups at 232, the loader's at 40 (32 spilled
    # 24 bytes at d64 once it also walked BatchAttention schedules), the whole file
    # (2 x 128 x 232 + 128 x 40); to gather, 224 and 64: two blocks' page numbers live at once
    # (one a block ahead) spilled at 48-56, one block's at 40.
    LOADER_WARPS: gl.constexpr = 4 if GATHER else 1
    LOADER_THREADS: gl.constexpr = 32 * LOADER_WARPS if GATHER else 1
    LOADER_REGS: gl.constexpr = 64 if GATHER else 40
    CONSUMER_REGS: gl.constexpr = 224 if GATHER else 232
    mbarrier.init(q_bar, count=1)
    mbarrier.init(q_free, count=2)                         # one arrival a consumer warpgroup
    for i in gl.static_range(STAGES):
        # A TMA copy's bytes complete a stage; gathered, each loader thread's arrival does.
        mbarrier.init(k_ready.index(i), count=LOADER_THREADS)
        mbarrier.init(v_ready.index(i), count=LOADER_THREADS)
        mbarrier.init(kv_free.index(i), count=2)
        mbarrier.init(tail_bars.index(i), count=1)

    qk_scale = sm_scale * LOG2E
    ROWS: gl.constexpr = BLOCK_N if not PAGED else (PAGE_SIZE if PAGE_SIZE < BLOCK_N else BLOCK_N)
    HALF: gl.constexpr = BLOCK_M // 2
    # num_warps (4) run the first half's warpgroup, a worker warpgroup the second, one warp the loads.
    gl.warp_specialize([
        (_consumer, (q_smem, k_bufs, v_bufs, q_bar, q_free, k_ready, v_ready, kv_free, tail_bars, q_ptr, s_q_tok,
                     o_ptr, s_o_tok, s_o_head, lse_ptr, s_lse_tok, part_o, part_lse, item_req, item_q_start,
                     item_kv_start, item_kv_end, item_out, item_kind, item_stride, prog_indptr, prog_items,
                     num_items_ptr, q_indptr, kv_indptr, seq_lens, mask_ptr, mask_indptr, blk_indptr, blk_ids,
                     qk_scale, 0, NUM_Q_HEADS, GROUP, HEAD_DIM, HALF, BLOCK_M, BLOCK_N, STAGES, CAUSAL, RETURN_LSE,
                     GATHER, MASK, BATCH)),
        (_consumer, (q_smem, k_bufs, v_bufs, q_bar, q_free, k_ready, v_ready, kv_free, tail_bars, q_ptr, s_q_tok,
                     o_ptr, s_o_tok, s_o_head, lse_ptr, s_lse_tok, part_o, part_lse, item_req, item_q_start,
                     item_kv_start, item_kv_end, item_out, item_kind, item_stride, prog_indptr, prog_items,
                     num_items_ptr, q_indptr, kv_indptr, seq_lens, mask_ptr, mask_indptr, blk_indptr, blk_ids,
                     qk_scale, HALF, NUM_Q_HEADS, GROUP, HEAD_DIM, HALF, BLOCK_M, BLOCK_N, STAGES, CAUSAL,
                     RETURN_LSE, GATHER, MASK, BATCH)),
        (_loader, (q_desc, k_desc, v_desc, k_ptr, v_ptr, width, q_smem, k_bufs, v_bufs, q_bar, q_free, k_ready,
                   v_ready, kv_free, item_req, item_q_start, item_kv_start, item_kv_end, item_out, item_kind,
                   item_stride, prog_indptr, prog_items, num_items_ptr, q_indptr, kv_indptr, seq_lens, page_indices,
                   mask_indptr, blk_indptr, blk_ids, s_page_rows, s_head_rows, head_col, NUM_Q_HEADS, GROUP, HEAD_DIM,
                   BLOCK_M, BLOCK_N, ROWS, PAGE_SIZE, PAGED, STAGES, CAUSAL, GATHER, MASK, BATCH)),
    ], [4, LOADER_WARPS], [CONSUMER_REGS, LOADER_REGS])
    if TIMES:
        # measure(): the program's start and end, and its multiprocessor.
        gl.store(prog_times + 3 * gl.program_id(0), t_start)
        gl.store(prog_times + 3 * gl.program_id(0) + 1, _globaltimer())
        smid = gl.inline_asm_elementwise("mov.u32 $0, %smid;", "=r", [], dtype=gl.int32, is_pure=False, pack=1)
        gl.store(prog_times + 3 * gl.program_id(0) + 2, smid.to(gl.int64))

    mbarrier.invalidate(q_bar)
    mbarrier.invalidate(q_free)
    for i in gl.static_range(STAGES):
        mbarrier.invalidate(k_ready.index(i))
        mbarrier.invalidate(v_ready.index(i))
        mbarrier.invalidate(kv_free.index(i))
        mbarrier.invalidate(tail_bars.index(i))


# ---------------------------------------------------------------------------------- host side
def shared_layout(block_shape, dtype):
    """The NVMMA shared layout of a [rows, head_dim] TMA block (torch dtype)."""
    import torch
    return gl.NVMMASharedLayout.get_default_for(list(block_shape), gl.float16 if dtype == torch.float16 else gl.bfloat16)


def kv_rows(kv) -> tuple[int, int, int, int] | None:
    """K/V storage as 2-D rows for TMA: (row width, s_page_rows, s_head_rows, head_col) in
    elements (see hopper_prefill_kernel), or None where the layout is not rows of that kind."""
    ks, d, hk = kv.k_strides, kv.head_dim, kv.num_kv_heads
    if ks.split != 1 or ks.dhi != 1 or kv.v_strides != ks:
        return None
    width = ks.slot if kv.page_size > 1 else ks.page
    if width <= 0 or ks.page % width:
        return None
    if ks.head % width == 0:
        return width, ks.page // width, ks.head // width, 0
    if (hk - 1) * ks.head + d <= width:
        return width, ks.page // width, 0, ks.head
    return None


BLOCK_M = 128          # query rows (tokens of one head) a tile: the work list's tokens an item
BLOCK_N = 128          # keys a block (a custom mask's block lists are made for it)


def enabled() -> bool:
    """ATTN_HOPPER_PREFILL=0 keeps attn.prefill / BatchPrefill on the portable kernel (A/B runs)."""
    import os
    return os.environ.get("ATTN_HOPPER_PREFILL", "1") != "0"


def eligible(kv, q_heads: int, dtype, device, *, custom_mask=None, window_left=-1, softcap=0.0,
             logits_transform=None, rotary=None, block_n: int = BLOCK_N) -> bool:
    """Whether this kernel runs a batch over kv (what plan time knows; q_fits() checks q): an
    sm_90 GPU, a cache fits_cache() accepts, and no window, softcap, transform or rotary (a custom
    mask is fine)."""
    import torch
    return (enabled() and torch.device(device).type == "cuda" and bool(torch.version.cuda)
            and torch.cuda.get_device_capability(device) == (9, 0) and fits_cache(kv, q_heads, dtype, block_n)
            and window_left < 0 and softcap == 0 and logits_transform is None and rotary is None)


def fits_cache(kv, q_heads: int, dtype, block_n: int = BLOCK_N) -> bool:
    """A ragged cache, or NHD / HND pages of any size (TMA copies where tma_pages(), else cp.async
    gathers), the token pool included; dense fp16 / bf16 storage; head_dim 64 or 128."""
    import torch
    paged = kv.page_indices is not None
    if not paged and kv.layout.name != "ragged":
        return False
    rows = kv_rows(kv)
    return (rows is not None and dtype in (torch.float16, torch.bfloat16) and kv.k.dtype == dtype
            and kv.head_dim in (64, 128) and q_heads % kv.num_kv_heads == 0
            and kv.k.is_contiguous() and kv.v.is_contiguous() and rows[0] % 8 == 0 and rows[3] % 8 == 0
            and kv.k.numel() // rows[0] < 2 ** 31)


def tma_pages(page_size: int, block_n: int) -> bool:
    """Pages the loader copies with TMA (a box a page or a block): a multiple of 8 slots (the
    shared-memory swizzle's row period) that tiles a block; others are gathered with cp.async."""
    return page_size % 8 == 0 and (block_n % page_size == 0 or page_size % block_n == 0)


def q_fits(q) -> bool:
    """q [rows, heads, head_dim] as TMA reads it: heads dense, rows 16-byte aligned."""
    d = q.shape[-1]
    return (q.stride(-1) == 1 and q.stride(-2) == d and (q.stride(0) * q.element_size()) % 16 == 0
            and q.data_ptr() % 16 == 0)


def supports(q, kv, **features) -> bool:
    """eligible() for q's batch and q_fits(q)."""
    return eligible(kv, q.shape[1], q.dtype, q.device, **features) and q.is_cuda and q_fits(q)


def launch(q, kv, q_indptr, work, out, lse, *, causal: bool, sm_scale: float, return_lse: bool = False,
           page_map=None, mask=None, batch=None, prog_times=None, block_m: int = BLOCK_M, block_n: int = BLOCK_N,
           stages: int = 2):
    """Run `work`'s items (one block_m-token tile of one request each: prefill.ordered_items with
    tq = block_m, longest first) over kv (attn.KVCache, supports()). page_map: (page_indptr,
    page_indices, seq_lens) to use instead of kv's (a plan's copies). mask: a custom mask as
    (packed, byte_indptr, blk_indptr, blk_ids), mask_summary.mask_inputs() for these items.
    batch: a BatchAttention schedule instead (its items cut into KV chunks, decode-kind ones
    packing the GQA group): (prog_indptr, prog_items as item * q_heads + head, item_kind,
    item_stride, part_o, part_lse, programs). prog_times (int64 [programs, 3]): each program's
    start and end clock and its multiprocessor, for BatchAttention.measure()."""
    import torch
    from triton.experimental.gluon.nvidia.hopper import TensorDescriptor
    total_q, hq, d = q.shape
    width, s_page_rows, s_head_rows, head_col = kv_rows(kv)
    paged = kv.page_indices is not None
    indptr, indices, seq_lens = page_map if page_map is not None else (kv.page_indptr, kv.page_indices, kv.seq_lens)
    gather = paged and not tma_pages(kv.page_size, block_n)
    box = min(kv.page_size, block_n) if paged and not gather else block_n
    q2 = q.as_strided((total_q, hq * d), (q.stride(0), 1))
    k2 = kv.k.as_strided((kv.k.numel() // width, width), (width, 1))
    v2 = kv.v.as_strided((kv.v.numel() // width, width), (width, 1))
    q_desc = TensorDescriptor.from_tensor(q2, [block_m, d], shared_layout([block_m, d], q.dtype))
    k_desc = TensorDescriptor.from_tensor(k2, [box, d], shared_layout([box, d], q.dtype))
    v_desc = TensorDescriptor.from_tensor(v2, [box, d], shared_layout([box, d], q.dtype))
    if batch is not None:
        prog_indptr, prog_items, item_kind, item_stride, part_o, part_lse, programs = batch
        sched = (work.kv_start, work.kv_end, work.out_slot, item_kind, item_stride, prog_indptr, prog_items, part_o,
                 part_lse)
    else:
        programs = min(work.max_items * hq, torch.cuda.get_device_properties(q.device).multi_processor_count)
        sched = (seq_lens,) * 9
    hopper_prefill_kernel[(programs,)](
        q_desc, k_desc, v_desc, q, q.stride(0), kv.k, kv.v, width, out, out.stride(0), out.stride(1),
        lse if return_lse else out, lse.stride(0) if return_lse else 0,
        work.req, work.q_start, q_indptr, indptr, indices if paged else indptr, seq_lens, work.num_items,
        *(mask if mask is not None else (seq_lens,) * 4), float(sm_scale), s_page_rows, s_head_rows, head_col,
        *sched, prog_times if prog_times is not None else seq_lens,
        NUM_Q_HEADS=hq, GROUP=hq // kv.num_kv_heads, HEAD_DIM=d, BLOCK_M=block_m, BLOCK_N=block_n, STAGES=stages,
        PAGE_SIZE=kv.page_size, PAGED=paged, CAUSAL=bool(causal), RETURN_LSE=bool(return_lse),
        GATHER=gather, MASK=mask is not None, BATCH=batch is not None, TIMES=prog_times is not None, num_warps=4,
        # Two consumer warpgroups and the loader's (its one warp rounds up to 4) share the register
        # file: 168 a thread on average; the loader keeps 40 (64 to gather, the consumers then 224:
        # hopper_prefill_kernel), the consumers get 232.
        maxnreg=168,
    )


def prefill(q, kv, q_indptr, *, causal=True, sm_scale=None, return_lse=False, custom_mask=None, lens=None,
            block_m: int = BLOCK_M, block_n: int = BLOCK_N, stages: int = 2):
    """attn.prefill's contract for what supports() accepts (prefill.prefill's Hopper path; tests
    and probes call it directly). lens: the host's (q_lens, kv_lens) when known (no sync)."""
    import math

    import numpy as np
    import torch

    from attn.scheduling import WorkList

    from .mask_summary import mask_inputs
    from .prefill import ordered_items
    total_q, hq, d = q.shape
    q_lens, kv_lens = lens if lens is not None else (np.diff(q_indptr.cpu().numpy()), kv.seq_lens.cpu().numpy())
    out = torch.empty_like(q)
    lse = torch.empty(total_q, hq, dtype=torch.float32, device=q.device) if return_lse else None
    if total_q:
        items = ordered_items(q_lens, kv_lens, block_m, causal, -1)
        mask = None if custom_mask is None else mask_inputs(custom_mask, items, q_lens, kv_lens, block_m, block_n,
                                                            causal, -1)
        launch(q, kv, q_indptr, WorkList.build(items, q.device), out, lse, causal=causal,
               sm_scale=1.0 / math.sqrt(d) if sm_scale is None else sm_scale, return_lse=return_lse, mask=mask,
               block_m=block_m, block_n=block_n, stages=stages)
    return (out, lse) if return_lse else out


# ------------------------------------------------------------------------------ compile matrix
def compile_specs():
    """sm_90 only: bf16 / fp16, head_dim 64 / 128, causal or not, with or without lse, a custom
    mask (bf16), a BatchAttention schedule (GQA groups of 4, and of 1 in bf16); a ragged cache
    (one copy a block), pages of 16 (a TMA copy a page) and of 1 (gathered with cp.async: the
    token pool, NHD / HND pages of 1)."""
    from .specs import KernelSpec, signature
    out = []
    for dt in ("bf16", "fp16"):
        gdt = gl.bfloat16 if dt == "bf16" else gl.float16
        for d in (64, 128):
            # (causal, lse, a custom mask or a BatchAttention schedule)
            variants = ((True, False, ""), (False, False, ""), (True, True, ""), (True, False, "batch"),
                        (True, True, "batch"))
            if dt == "bf16":
                # batch_mha: a schedule without GQA groups to pack (GROUP 1 compiles no packed load)
                variants += ((False, False, "mask"), (True, True, "mask"), (True, True, "batch_mha"))
            for causal, lse, extra in variants:
                for cache, page_size in (("ragged", 1), ("NHD|HND", 16), ("pool|NHD|HND", 1)):
                    bm, bn = 128, 128
                    paged = cache != "ragged"
                    gather = paged and not tma_pages(page_size, bn)
                    box = min(page_size, bn) if paged and not gather else bn
                    desc = lambda rows: (f"tensordesc<{dt}[{rows}, {d}],"  # noqa: E731
                                         f"{gl.NVMMASharedLayout.get_default_for([rows, d], gdt)!r}>")
                    mha = extra == "batch_mha"
                    cx = dict(NUM_Q_HEADS=16 if mha else 32, GROUP=1 if mha else 4, HEAD_DIM=d, BLOCK_M=bm,
                              BLOCK_N=bn, STAGES=2, PAGE_SIZE=page_size, PAGED=paged, CAUSAL=causal,
                              RETURN_LSE=lse, GATHER=gather, MASK=extra == "mask", BATCH=extra.startswith("batch"),
                              TIMES=False, num_warps=4)
                    sig = signature(hopper_prefill_kernel, cx, q_desc=desc(bm), k_desc=desc(box), v_desc=desc(box),
                                    q_ptr=f"*{dt}", k_ptr=f"*{dt}", v_ptr=f"*{dt}", o_ptr=f"*{dt}", lse_ptr="*fp32",
                                    item_req="*i32", item_q_start="*i32", q_indptr="*i32", kv_indptr="*i32",
                                    page_indices="*i32", seq_lens="*i32", num_items_ptr="*i32", mask_ptr="*u8",
                                    mask_indptr="*i64", blk_indptr="*i32", blk_ids="*i32", sm_scale="fp32",
                                    item_kv_start="*i32", item_kv_end="*i32", item_out="*i32", item_kind="*i32",
                                    item_stride="*i32", prog_indptr="*i32", prog_items="*i32", part_o="*fp32",
                                    part_lse="*fp32", prog_times="*i64")
                    feats = ("causal" if causal else "full") + ("_lse" if lse else "") + (f"_{extra}" if extra else "")
                    out.append(KernelSpec(kernel="prefill_hopper", config=f"{dt}/d{d}/p{page_size}/{feats}/{cache}",
                                          fn=hopper_prefill_kernel, signature=sig, constexprs=cx,
                                          options=dict(num_warps=4, maxnreg=168), targets=("sm_90",),
                                          aligned=("width",)))
    return out
