"""Rotary embedding: q and k rotated in one launch, optionally with the rotated k and v written
straight into a KV cache of any layout (vLLM's rotary_embedding + reshape_and_cache, fused).

Grid: 1-D over chunks of tokens; each chunk has k programs (BLOCK_TK tokens x BLOCK_HK heads) and q
programs (BLOCK_TQ x BLOCK_HQ). A program loads its tokens' cos/sin rows once and reuses them across
its heads. The op reads and writes each element once, so it is bound by memory bandwidth; tiles
are sized to several thousand elements so that every thread issues several 16-byte loads, and the
token blocks shrink for small batches so that the decode step still fills the machine.

Writing a cache whose slots of one head are adjacent (HND, vllm), a k program takes a run of
BLOCK_TK slots of fewer heads: when the block's slots are consecutive inside one page (prefill),
each head's k and v go out as one contiguous run, and vLLM's V ([pages, heads, head_dim, page_size],
contiguous along the slots) is stored as 16-byte vectors along the slots instead of 2-byte scalars.
"""
import functools

import torch
import triton
import triton.language as tl

from .addressing import dense_page_heads, dim_offset, kv_offset

# Position sources (POS_MODE).
POS_TENSOR = 0      # positions[t]
POS_DENSE = 1       # offsets[t // seq] + t % seq             ([b, s, h, d] inputs)
POS_RAGGED = 2      # offsets[b] + t - indptr[b], indptr[b] <= t < indptr[b+1]


@triton.jit
def _positions(t, n_tokens, positions, offsets, indptr, n_seqs, search_steps, SEQ, POS_MODE: tl.constexpr):
    """int64 positions of tokens t [BLOCK_T] (tokens past n_tokens read index 0)."""
    live = t < n_tokens
    if POS_MODE == 0:
        pos = tl.load(positions + t, mask=live, other=0).to(tl.int64)
    elif POS_MODE == 1:
        pos = tl.load(offsets + t // SEQ, mask=live, other=0).to(tl.int64) + t % SEQ
    else:
        # Largest b with indptr[b] <= t: a branch-free binary search, one per token in the block.
        lo = tl.zeros_like(t)
        hi = tl.zeros_like(t) + (n_seqs - 1)
        for _ in range(search_steps):
            mid = (lo + hi + 1) // 2
            start = tl.load(indptr + mid, mask=live, other=0).to(tl.int64)
            go_right = start <= t
            lo = tl.where(go_right, mid, lo)
            hi = tl.where(go_right, hi, mid - 1)
        start = tl.load(indptr + lo, mask=live, other=0).to(tl.int64)
        pos = tl.load(offsets + lo, mask=live, other=0).to(tl.int64) + (t - start)
    return pos


@triton.jit
def _cos_sin(t, t_live, positions, offsets, indptr, n_tokens, n_seqs, search_steps, SEQ,
             cos_sin, s_cs, sin_off, max_pos, R2: tl.constexpr, BLOCK_R2: tl.constexpr, POS_MODE: tl.constexpr):
    """cos, sin [BLOCK_T, 1, BLOCK_R2] float32 of tokens t [BLOCK_T]."""
    pos = _positions(t, n_tokens, positions, offsets, indptr, n_seqs, search_steps, SEQ, POS_MODE)
    # Out-of-range positions are rejected by validation "full"; clamp so that no input reads
    # outside the cache.
    pos = tl.minimum(tl.maximum(pos, 0), max_pos - 1)
    i = tl.arange(0, BLOCK_R2)[None, :]
    cmask = t_live[:, None] & (i < R2)
    c_ptr = cos_sin + pos[:, None] * s_cs + i
    cos = tl.load(c_ptr, mask=cmask, other=0.0).to(tl.float32)[:, None, :]
    sin = tl.load(c_ptr + sin_off, mask=cmask, other=0.0).to(tl.float32)[:, None, :]
    return cos, sin


@triton.jit
def _load_rotated(src, live, cos, sin, R2: tl.constexpr, BLOCK_R2: tl.constexpr, IS_NEOX: tl.constexpr):
    """Rows src [BT, BH, 1] (pointers to dim 0, unit stride along d) rotated, float32: neox: (first
    half, second half) [BT, BH, BLOCK_R2] each; gptj: the rotated dims interleaved [BT, BH, 2*BLOCK_R2]
    (twice)."""
    if IS_NEOX:
        # Halves: contiguous runs, so each half is one vectorized load.
        i = tl.arange(0, BLOCK_R2)[None, None, :]
        m = live & (i < R2)
        x1 = tl.load(src + i, mask=m).to(tl.float32)
        x2 = tl.load(src + i + R2, mask=m).to(tl.float32)
        oa = x1 * cos - x2 * sin
        ob = x2 * cos + x1 * sin
    else:
        # Interleaved pairs: one contiguous (vectorized) load of the rotated dims, pairs split in
        # registers, rather than two stride-2 loads.
        d12 = tl.arange(0, 2 * BLOCK_R2)[None, None, :]
        x12 = tl.load(src + d12, mask=live & (d12 < 2 * R2)).to(tl.float32)
        x1, x2 = tl.split(tl.reshape(x12, (x12.shape[0], x12.shape[1], BLOCK_R2, 2)))
        oa = tl.reshape(tl.join(x1 * cos - x2 * sin, x2 * cos + x1 * sin), (x12.shape[0], x12.shape[1], 2 * BLOCK_R2))
        ob = oa
    return oa, ob


@triton.jit
def _store_rotated(dst, row, live, oa, ob, s_dhi, s_dlo, SPLIT: tl.constexpr, R2: tl.constexpr,
                   BLOCK_R2: tl.constexpr, IS_NEOX: tl.constexpr):
    """Store _load_rotated's result at dst + row [BT, BH, 1] + the dims' offsets (dim_offset)."""
    ety = dst.dtype.element_ty
    if IS_NEOX:
        i = tl.arange(0, BLOCK_R2)[None, None, :]
        m = live & (i < R2)
        tl.store(dst + row + dim_offset(i, s_dhi, s_dlo, SPLIT), oa.to(ety), mask=m)
        tl.store(dst + row + dim_offset(i + R2, s_dhi, s_dlo, SPLIT), ob.to(ety), mask=m)
    else:
        d12 = tl.arange(0, 2 * BLOCK_R2)[None, None, :]
        tl.store(dst + row + dim_offset(d12, s_dhi, s_dlo, SPLIT), oa.to(ety), mask=live & (d12 < 2 * R2))


@triton.jit
def _rotate_rows(src, dst, live, cos, sin, D: tl.constexpr, R2: tl.constexpr, BLOCK_R2: tl.constexpr,
                 BLOCK_P: tl.constexpr, IS_NEOX: tl.constexpr, HAS_PASS: tl.constexpr):
    """Rows src -> rows dst ([BT, BH, 1] pointers), rotated; pass-through dims copied when HAS_PASS."""
    oa, ob = _load_rotated(src, live, cos, sin, R2, BLOCK_R2, IS_NEOX)
    _store_rotated(dst, 0, live, oa, ob, 1, 0, 1, R2, BLOCK_R2, IS_NEOX)
    if HAS_PASS:
        p = 2 * R2 + tl.arange(0, BLOCK_P)[None, None, :]
        mp = live & (p < D)
        tl.store(dst + p, tl.load(src + p, mask=mp), mask=mp)


@triton.jit
def _write_cache(k_cache, kc_page, kc_head, kc_slot, kc_dhi, kc_dlo,
                 v_cache, vc_page, vc_head, vc_slot, vc_dhi, vc_dlo,
                 page, in_page, h, live, oka, okb, kp, vv,
                 D: tl.constexpr, R2: tl.constexpr, BLOCK_R2: tl.constexpr, BLOCK_P: tl.constexpr,
                 BLOCK_D: tl.constexpr, IS_NEOX: tl.constexpr, K_PASS: tl.constexpr,
                 K_SPLIT: tl.constexpr, V_SPLIT: tl.constexpr):
    """Rotated k (oka, okb; pass-through dims kp) and v (vv [BT, BH, BLOCK_D]) into the cache at
    (page, h, in_page). `live` must not vary along the axis the store is contiguous in (the dims;
    the tokens for a page run of vLLM's V), or the stores split into scalars."""
    row_k = kv_offset(page, h, in_page, 0, kc_page, kc_head, kc_slot, kc_dhi, kc_dlo, K_SPLIT)
    _store_rotated(k_cache, row_k, live, oka, okb, kc_dhi, kc_dlo, K_SPLIT, R2, BLOCK_R2, IS_NEOX)
    if K_PASS:
        p = 2 * R2 + tl.arange(0, BLOCK_P)[None, None, :]
        tl.store(k_cache + row_k + dim_offset(p, kc_dhi, kc_dlo, K_SPLIT), kp.to(k_cache.dtype.element_ty),
                 mask=live & (p < D))
    dv = tl.arange(0, BLOCK_D)[None, None, :]
    row_v = kv_offset(page, h, in_page, 0, vc_page, vc_head, vc_slot, vc_dhi, vc_dlo, V_SPLIT)
    tl.store(v_cache + row_v + dim_offset(dv, vc_dhi, vc_dlo, V_SPLIT), vv.to(v_cache.dtype.element_ty),
             mask=live & (dv < D))


@triton.jit
def _write_page_heads(k_cache, kc_page, kc_head, v_cache, vc_page, vc_head, page, h, hl, oka, okb, vv,
                      D: tl.constexpr, BLOCK_TK: tl.constexpr, BLOCK_HK: tl.constexpr, IS_NEOX: tl.constexpr,
                      K_SPLIT: tl.constexpr):
    """A whole page of BLOCK_TK tokens (every dim rotated) into a cache whose page-heads are dense
    runs (vLLM's K [d/x][slot][x], V [d][slot]): each head's K and V go out as one contiguous store,
    the layout's order made in registers. Stored slot by slot, V's 2-byte elements sit a page apart
    and K's 16-byte groups 256 bytes apart. H200: 1.01x over 16-slot runs (the write's limit is
    elsewhere; benchmarks/results/NVIDIA_H200.md)."""
    if IS_NEOX:
        kf = tl.reshape(tl.permute(tl.join(oka, okb), (0, 1, 3, 2)), (BLOCK_TK, BLOCK_HK, D))
    else:
        kf = oka
    kf = kf.to(k_cache.dtype.element_ty)
    k2 = tl.reshape(tl.permute(tl.reshape(kf, (BLOCK_TK, BLOCK_HK, D // K_SPLIT, K_SPLIT)), (1, 2, 0, 3)),
                    (BLOCK_HK, BLOCK_TK * D))
    v2 = tl.reshape(tl.permute(vv.to(v_cache.dtype.element_ty), (1, 2, 0)), (BLOCK_HK, D * BLOCK_TK))
    run = tl.arange(0, BLOCK_TK * D)[None, :]
    hh = tl.reshape(h, (BLOCK_HK,)).to(tl.int64)
    live = tl.reshape(hl, (BLOCK_HK,))[:, None]
    tl.store(k_cache + (page * kc_page + hh * kc_head)[:, None] + run, k2, mask=live)
    tl.store(v_cache + (page * vc_page + hh * vc_head)[:, None] + run, v2, mask=live)


@triton.jit
def _rotary_kernel(
    q, s_qb, s_qs, s_qh, q_out, s_qob, s_qos, s_qoh,
    k, s_kb, s_ks, s_kh, k_out, s_kob, s_kos, s_koh,
    v, s_vb, s_vs, s_vh,
    k_cache, kc_page, kc_head, kc_slot, kc_dhi, kc_dlo,
    v_cache, vc_page, vc_head, vc_slot, vc_dhi, vc_dlo,
    slot_mapping, page_size, n_slots,
    cos_sin, s_cs, sin_off, max_pos,
    positions, offsets, indptr, n_seqs, search_steps,
    n_tokens, SEQ, HQ, HK,
    D: tl.constexpr, R2: tl.constexpr, CHUNK: tl.constexpr,
    BLOCK_TQ: tl.constexpr, BLOCK_TK: tl.constexpr, BLOCK_HQ: tl.constexpr, BLOCK_HK: tl.constexpr,
    BLOCK_R2: tl.constexpr, BLOCK_P: tl.constexpr, BLOCK_D: tl.constexpr,
    IS_NEOX: tl.constexpr, Q_PASS: tl.constexpr, K_PASS: tl.constexpr, WRITE_KV: tl.constexpr,
    K_SPLIT: tl.constexpr, V_SPLIT: tl.constexpr, POS_MODE: tl.constexpr, RUNS: tl.constexpr,
):
    """1-D grid over chunks of CHUNK tokens; a chunk's programs: first its k programs (BLOCK_TK
    tokens x BLOCK_HK heads each), then its q programs (BLOCK_TQ x BLOCK_HQ), so that q and k of
    the same tokens run together and share the cos/sin rows in L2."""
    n_qb = tl.cdiv(HQ, BLOCK_HQ)
    n_kb = tl.cdiv(HK, BLOCK_HK)
    n_kp = (CHUNK // BLOCK_TK) * n_kb
    ppc = n_kp + (CHUNK // BLOCK_TQ) * n_qb
    pid = tl.program_id(0)
    chunk = pid // ppc
    r = pid % ppc
    if r < n_kp:
        t0 = chunk * CHUNK + (r // n_kb) * BLOCK_TK
        if t0 < n_tokens:
            t = t0.to(tl.int64) + tl.arange(0, BLOCK_TK)
            t_live = t < n_tokens
            cos, sin = _cos_sin(t, t_live, positions, offsets, indptr, n_tokens, n_seqs, search_steps, SEQ,
                                cos_sin, s_cs, sin_off, max_pos, R2, BLOCK_R2, POS_MODE)
            tb = (t // SEQ)[:, None, None]
            ts = (t % SEQ)[:, None, None]
            h = (r % n_kb) * BLOCK_HK + tl.arange(0, BLOCK_HK)[None, :, None]
            hl = h < HK
            src = k + tb * s_kb + ts * s_ks + h * s_kh
            if WRITE_KV:
                slot = tl.load(slot_mapping + t, mask=t_live, other=-1).to(tl.int64)
                # Negative slots are padding (vLLM); slots past the cache are rejected by validation
                # "full" and skipped here, never written out of bounds.
                w_live = (t_live & (slot >= 0) & (slot < n_slots))[:, None, None] & hl
                oka, okb = _load_rotated(src, w_live, cos, sin, R2, BLOCK_R2, IS_NEOX)
                kp = oka
                if K_PASS:
                    p = 2 * R2 + tl.arange(0, BLOCK_P)[None, None, :]
                    kp = tl.load(src + p, mask=w_live & (p < D))
                dv = tl.arange(0, BLOCK_D)[None, None, :]
                vv = tl.load(v + tb * s_vb + ts * s_vs + h * s_vh + dv, mask=w_live & (dv < D))
                if RUNS:
                    # A page run: the block's slots are consecutive, start on a multiple of BLOCK_TK
                    # in one page (page_size % BLOCK_TK == 0). Then the slots are arange() to the
                    # compiler, and stores along the slot axis (vLLM's V) become 16-byte vectors.
                    s0 = tl.load(slot_mapping + t0).to(tl.int64)
                    in0 = s0 % page_size
                    hits = tl.sum((slot == s0 + tl.arange(0, BLOCK_TK)).to(tl.int32), axis=0)
                    if (hits == BLOCK_TK) & (s0 >= 0) & (s0 + BLOCK_TK <= n_slots) & (in0 % BLOCK_TK == 0):
                        in_page = tl.multiple_of(in0.to(tl.int32), BLOCK_TK) + tl.arange(0, BLOCK_TK)[:, None, None]
                        if RUNS == 2:
                            _write_page_heads(k_cache, kc_page, kc_head, v_cache, vc_page, vc_head, s0 // page_size,
                                              h, hl, oka, okb, vv, D, BLOCK_TK, BLOCK_HK, IS_NEOX, K_SPLIT)
                        else:
                            _write_cache(k_cache, kc_page, kc_head, kc_slot, kc_dhi, kc_dlo,
                                         v_cache, vc_page, vc_head, vc_slot, vc_dhi, vc_dlo,
                                         s0 // page_size, in_page, h, hl, oka, okb, kp, vv,
                                         D, R2, BLOCK_R2, BLOCK_P, BLOCK_D, IS_NEOX, K_PASS, K_SPLIT, V_SPLIT)
                    else:
                        _write_cache(k_cache, kc_page, kc_head, kc_slot, kc_dhi, kc_dlo,
                                     v_cache, vc_page, vc_head, vc_slot, vc_dhi, vc_dlo,
                                     (slot // page_size)[:, None, None], (slot % page_size)[:, None, None], h,
                                     w_live, oka, okb, kp, vv,
                                     D, R2, BLOCK_R2, BLOCK_P, BLOCK_D, IS_NEOX, K_PASS, K_SPLIT, V_SPLIT)
                else:
                    _write_cache(k_cache, kc_page, kc_head, kc_slot, kc_dhi, kc_dlo,
                                 v_cache, vc_page, vc_head, vc_slot, vc_dhi, vc_dlo,
                                 (slot // page_size)[:, None, None], (slot % page_size)[:, None, None], h,
                                 w_live, oka, okb, kp, vv,
                                 D, R2, BLOCK_R2, BLOCK_P, BLOCK_D, IS_NEOX, K_PASS, K_SPLIT, V_SPLIT)
            else:
                _rotate_rows(src, k_out + tb * s_kob + ts * s_kos + h * s_koh, t_live[:, None, None] & hl,
                             cos, sin, D, R2, BLOCK_R2, BLOCK_P, IS_NEOX, K_PASS)
    else:
        r -= n_kp
        t0 = chunk * CHUNK + (r // n_qb) * BLOCK_TQ
        if t0 < n_tokens:
            t = t0.to(tl.int64) + tl.arange(0, BLOCK_TQ)
            t_live = t < n_tokens
            cos, sin = _cos_sin(t, t_live, positions, offsets, indptr, n_tokens, n_seqs, search_steps, SEQ,
                                cos_sin, s_cs, sin_off, max_pos, R2, BLOCK_R2, POS_MODE)
            tb = (t // SEQ)[:, None, None]
            ts = (t % SEQ)[:, None, None]
            h = (r % n_qb) * BLOCK_HQ + tl.arange(0, BLOCK_HQ)[None, :, None]
            _rotate_rows(q + tb * s_qb + ts * s_qs + h * s_qh, q_out + tb * s_qob + ts * s_qos + h * s_qoh,
                         t_live[:, None, None] & (h < HQ), cos, sin, D, R2, BLOCK_R2, BLOCK_P, IS_NEOX, Q_PASS)


# Per-vendor launch shape (see benchmarks/bench_rotary.py, which sweeps these at 8192 tokens):
#   tile             elements (tokens x heads x head_dim) one program rotates: of q, or of k (then also
#                    the same number of v elements when writing the cache)
#   max_heads        heads per program at most
#   run_tokens       tokens per k program when writing a cache whose slots of one head are adjacent
#                    (HND, vllm): a page run of that many slots is one contiguous store per head
#   slot_run_tokens  the same where the store runs along the slots (vLLM's V); run_tokens if absent
#   slot_run_heads   heads per k program there at most (vLLM's layout transposes k and v in shared
#                    memory; small programs keep the registers, and so the occupancy, up)
#   programs_per_sm  token blocks shrink until the grid has this many programs per SM
#                    (decode-sized batches); 0: never shrink (the interpreter: fewer programs, faster)
#   write_max_heads  max_heads of the q programs of a launch that writes a cache
#   write_tile       tile of a launch that writes a cache (its q and k programs); tile if absent
# NVIDIA: measured on the H100 (benchmarks/bench_rotary.py sweep, 2026-11-23, 8192 tokens, bf16):
# apply with 4 warps 87.8% of copy bandwidth vs 81.9% with 8; the HND cache write with runs of 8
# slots 82.3% vs 77.8% with 16 (vLLM's: 75.9% vs 76.4%, even). Writes: 4 warps and q programs of
# 32 heads (H200, graph-timed, same run, 2026-12-03, benchmarks/results/h200-2026-12-03c/rot.txt):
# NHD 85.9% of copy against 74.0% at 8 warps / 16 heads, HND 80.6 vs 80.1, vLLM 77.4 vs 70.0.
# Then the run length (rot_call5.txt): HND runs of 4 slots x 8 heads 86.0% against 80.8% at 8 x 4;
# vLLM runs of 16 slots 78.9% against 77.6% at 8 and 74.3% at 4.
# ncu (2026-12-04, h200-2026-12-04/ncu_call2.txt): both writes register-limited, 90 / 116 registers,
# 31% / 25% occupancy, and the q programs (2/3 of the bytes) run at the k path's count. Halving the
# write's tile (q programs of 1 token x 32 heads) and vLLM's k programs at 8 slots x 1 head, same
# run, graph-timed (sweep_tile_call4.md, sweep_vllm_call5.md): HND 84.0% -> 89.2% (56 registers),
# NHD 84.0 -> 85.9, vLLM 77.9 -> 85.3 (56 registers; 16 x 1: 79.8, 16 x 2: 76.5).
_CONFIGS = {
    "nvidia": dict(num_warps=4, write_num_warps=4, tile=8192, write_tile=4096, max_heads=16, write_max_heads=32,
                   run_tokens=4, slot_run_tokens=8, slot_run_heads=1, programs_per_sm=4),
    # AMD: the cache write takes 8 warps and runs of 8 slots: at 4 warps the vLLM layout's address
    # math spilled 40-50 SGPRs on gfx90a/gfx942/gfx950, at 8 warps with runs of 16 still 2 on gfx90a
    # (compile matrix); this shape none.
    "amd": dict(num_warps=4, write_num_warps=8, tile=8192, max_heads=16, run_tokens=8, programs_per_sm=4),
    "cpu": dict(num_warps=1, tile=1 << 14, max_heads=64, run_tokens=16, programs_per_sm=0),
}


def _np2(x: int) -> int:
    """Next power of 2 >= x (>= 1); plain Python (triton.next_power_of_2 is slow to call on a hot path)."""
    return 1 << max(int(x) - 1, 0).bit_length()


def _cdiv(a: int, b: int) -> int:
    return -(-a // b)


@functools.lru_cache(maxsize=4096)
def launch_config(n_tokens: int, hq: int, hk: int, d: int, vendor: str, num_sms: int,
                  write: bool = False, head_major: bool = False, page_size: int = 1,
                  overrides: tuple = ()) -> dict:
    """Block sizes and num_warps for one launch. write: k and v go into a cache; head_major: into
    one where one head's consecutive slots are adjacent (HND, vllm): k programs take a run of slots;
    page_size: where stores run along the slots (vLLM's V), the page size, so that a run never
    straddles a page; else 0.
    Pure function of its arguments (the launcher and compile_specs() both call it); overrides:
    ((key, value), ...) replacing entries of the vendor's _CONFIGS row."""
    cfg = dict(_CONFIGS.get(vendor, _CONFIGS["nvidia"]), **dict(overrides))    # overrides: benchmarks' sweeps
    bd = _np2(d)
    bhq = min(_np2(hq), cfg.get("write_max_heads", cfg["max_heads"]) if write else cfg["max_heads"])
    tile = cfg.get("write_tile", cfg["tile"]) if write else cfg["tile"]
    btq = max(1, min(64, _np2(max(1, tile // (bhq * bd)))))
    # A k program writing the cache moves k and v: half the tile of each.
    tile_k = tile // 2 if write else tile
    if head_major:
        btk = cfg.get("slot_run_tokens", cfg["run_tokens"]) if page_size else cfg["run_tokens"]
        if page_size and page_size % btk and page_size & -page_size > 1:
            btk = page_size & -page_size   # page runs start on multiples of btk: btk divides page_size
        bhk = min(_np2(hk), cfg["max_heads"], max(1, tile_k // (btk * bd)))
        if page_size:
            bhk = min(bhk, cfg.get("slot_run_heads", bhk))
    else:
        bhk = min(_np2(hk), cfg["max_heads"])
        btk = max(1, min(64, _np2(max(1, tile_k // (bhk * bd)))))
    cap = _np2(max(n_tokens, 1))
    btq, btk = min(btq, cap), min(btk, cap)
    n_qb, n_kb = _cdiv(hq, bhq), _cdiv(hk, bhk)
    want = cfg["programs_per_sm"] * num_sms

    def programs(btq, btk):
        chunk = max(btq, btk)
        return _cdiv(n_tokens, chunk) * ((chunk // btq) * n_qb + (chunk // btk) * n_kb)
    while max(btq, btk) > 1 and programs(btq, btk) < want:
        if btq >= btk:
            btq //= 2
        if btk > btq:
            btk //= 2
    warps = cfg.get("write_num_warps", cfg["num_warps"]) if write else cfg["num_warps"]
    return dict(BLOCK_TQ=btq, BLOCK_TK=btk, BLOCK_HQ=bhq, BLOCK_HK=bhk, num_warps=warps)


#: The launch_config keys a tuned "rotary" entry may set (`python -m attn tune --op rotary` times
#: apply over them); they apply to apply's launches, not to the cache write's.
TUNABLE = ("tile", "num_warps", "max_heads")


@functools.lru_cache(maxsize=64)
def _platform(device: torch.device):
    from attn.platform import for_tensor
    return for_tensor(_Probe(device))


def _platform_key(device: torch.device):
    p = _platform(device)
    return p.vendor, p.num_sms


_tuned: dict = {}


def tuned_overrides(device: torch.device, n_tokens: int, d: int, dtype: torch.dtype) -> tuple:
    """launch_config overrides from the device's tuned file (the entry nearest n_tokens), as
    ((key, value), ...); () where nothing is tuned. Memoized (every apply launch asks), keyed on
    attn.configs.generation() so that overrides and another config directory are seen."""
    from attn import configs
    key = (configs.generation(), device, n_tokens, d, dtype)
    hit = _tuned.get(key)
    if hit is None:
        from attn.platform import dtype_name
        if len(_tuned) >= 4096:
            _tuned.clear()
        cfg = configs.lookup("rotary", _platform(device), head_dim=d, dtype=dtype_name(dtype), batch=n_tokens)
        hit = _tuned[key] = tuple(sorted((k, v) for k, v in cfg.items() if k in TUNABLE))
    return hit


class _Probe:
    """Enough of a tensor for attn.platform.for_tensor (no allocation)."""
    def __init__(self, device):
        self.device = device


def _bsh(t: torch.Tensor):
    """(stride over batch, stride over seq, stride over heads) of [tokens, h, d] or [b, s, h, d]."""
    s = t.stride()
    if len(s) == 4:
        return s[0], s[1], s[2]
    return s[0], 0, s[1]


_NO_CACHE = (0, 0, 0, 1, 0, 1)


def rotary(q, k, q_out, k_out, cos_sin_cache, rotary_dim: int, is_neox: bool, *, positions=None,
           offsets=None, indptr=None, kv=None, v=None, slot_mapping=None, config=None) -> None:
    """One launch. q [T, HQ, D] or [b, s, HQ, D] into q_out (may be q); k likewise into k_out, or,
    with kv given, k rotated and v into kv's storage at slot_mapping. Inputs validated by the caller;
    exactly one of positions [T] / offsets [b] (+ indptr [b+1] for 3-D inputs) is given.
    config: override launch_config()'s dict (BLOCK_TQ, BLOCK_TK, BLOCK_HQ, BLOCK_HK, num_warps; and
    maxnreg, NVIDIA's register ceiling, for sweeps: benchmarks/results/h200-2026-12-04)."""
    qs = q.shape
    dense = len(qs) == 4
    n_tokens = qs[0] * qs[1] if dense else qs[0]
    if n_tokens == 0:
        return
    hq, d = qs[-2], qs[-1]
    hk = k.shape[-2]
    write_kv = kv is not None
    if write_kv:
        ks, vs = kv.k_strides, kv.v_strides
        page_size = kv.page_size
        head_major = ks.slot < ks.head or vs.slot < vs.head
        # Page runs pay off where a store is contiguous along the slots only (vLLM's V).
        slot_minor = (vs.split == 1 and vs.dhi != 1) or (ks.split == 1 and ks.dhi != 1)
    else:
        ks = vs = _NO_CACHE
        page_size, head_major, slot_minor = 1, False, False
    if config is None:
        vendor, sms = _platform_key(q.device)
        over = () if write_kv else tuned_overrides(q.device, n_tokens, d, q.dtype)
        cfg = launch_config(n_tokens, hq, hk, d, vendor, sms, write_kv, head_major, page_size if slot_minor else 0,
                            over)
    else:
        cfg = config
    btq, btk = cfg["BLOCK_TQ"], cfg["BLOCK_TK"]
    chunk = max(btq, btk)
    n_qb, n_kb = _cdiv(hq, cfg["BLOCK_HQ"]), _cdiv(hk, cfg["BLOCK_HK"])
    grid = (_cdiv(n_tokens, chunk) * ((chunk // btq) * n_qb + (chunk // btk) * n_kb),)
    r2 = rotary_dim // 2
    if positions is not None:
        pos_mode, pos_t, off_t, ip_t, n_seqs, steps = POS_TENSOR, positions, positions, positions, 1, 0
    elif dense:
        pos_mode, pos_t, off_t, ip_t, n_seqs, steps = POS_DENSE, offsets, offsets, offsets, offsets.shape[0], 0
    else:
        n_seqs = offsets.shape[0]
        pos_mode, pos_t, off_t, ip_t, steps = POS_RAGGED, offsets, offsets, indptr, max(1, (n_seqs - 1).bit_length())
    if write_kv:
        kc, vc = kv.k, kv.v
        n_slots = kv.num_pages * page_size
        vst = _bsh(v)
        runs = int(slot_minor and btk > 1 and page_size % btk == 0)
        if runs and btk == page_size and rotary_dim == d and d == _np2(d) and dense_page_heads(kv):
            runs = 2
        ko = k
    else:
        kc = vc = q
        n_slots, vst, v, slot_mapping, runs = 0, (0, 0, 0), q, pos_t, False
        ko = k if k_out is None else k_out
    partial = rotary_dim < d
    _rotary_kernel[grid](
        q, *_bsh(q), q_out, *_bsh(q_out),
        k, *_bsh(k), ko, *_bsh(ko),
        v, *vst,
        kc, ks[0], ks[1], ks[2], ks[3], ks[4], vc, vs[0], vs[1], vs[2], vs[3], vs[4],
        slot_mapping, page_size, n_slots,
        cos_sin_cache, cos_sin_cache.stride(0), cos_sin_cache.shape[1] // 2, cos_sin_cache.shape[0],
        pos_t, off_t, ip_t, n_seqs, steps,
        n_tokens, qs[1] if dense else 1, hq, hk,
        D=d, R2=r2, CHUNK=chunk, BLOCK_TQ=btq, BLOCK_TK=btk, BLOCK_HQ=cfg["BLOCK_HQ"], BLOCK_HK=cfg["BLOCK_HK"],
        BLOCK_R2=_np2(r2), BLOCK_P=_np2(max(d - rotary_dim, 1)), BLOCK_D=_np2(d),
        IS_NEOX=is_neox, Q_PASS=partial and q_out.data_ptr() != q.data_ptr(),
        K_PASS=partial and (write_kv or ko.data_ptr() != k.data_ptr()), WRITE_KV=write_kv,
        K_SPLIT=ks[5], V_SPLIT=vs[5], POS_MODE=pos_mode, RUNS=runs,
        num_warps=cfg["num_warps"], **({"maxnreg": cfg["maxnreg"]} if cfg.get("maxnreg") else {}),
    )


def _with_runs(variants):
    """vLLM's variants once with page runs (RUNS 1) and, where every dim is rotated and the head dim
    is a power of 2, once with whole pages (RUNS 2: the launcher's choice when a run is a page)."""
    for mode, style, d, r, dt, pos_mode in variants:
        if mode != "vllm":
            yield mode, style, d, r, dt, pos_mode, 0
            continue
        yield mode, style, d, r, dt, pos_mode, 1
        if r == d and d == _np2(d):
            yield mode, style, d, r, dt, pos_mode, 2


# Every variant the launcher can pick, at its largest tiles (the decode-sized launches shrink the
# token blocks: fewer registers): per vendor config x {apply, write to a token-major cache (NHD,
# ragged), to a head-major one (HND), to vLLM's (split K, V along the slots: page runs)} x style,
# plus head dims 64 / 256, partial rotary, the other position forms and dtypes on a few of them.
# What the JIT specializes is a constexpr here too: 3-D inputs have SEQ == 1, unit head-dim strides
# of the cache (or of the unused cache arguments of apply), vLLM's unit x / slot strides.
def compile_specs():
    from .specs import AMD_TARGETS, NVIDIA_TARGETS, KernelSpec, signature, spec_platform
    specs = []
    strides = ("s_qb", "s_qh", "s_qob", "s_qoh", "s_kb", "s_kh", "s_kob", "s_koh", "s_vb", "s_vh",
               "kc_page", "kc_head", "kc_slot", "kc_dhi", "vc_page", "vc_head", "vc_slot", "vc_dhi", "s_cs", "sin_off")
    variants = []
    for mode in ("apply", "NHD|ragged", "HND", "vllm"):
        for style in ("neox", "gptj"):
            variants.append((mode, style, 128, 128, "bf16", POS_TENSOR))
    variants += [("apply", "neox", 64, 64, "fp16", POS_TENSOR), ("vllm", "neox", 64, 64, "fp16", POS_TENSOR),
                 ("apply", "neox", 256, 256, "bf16", POS_TENSOR), ("HND", "gptj", 256, 256, "bf16", POS_TENSOR),
                 ("vllm", "neox", 256, 256, "bf16", POS_TENSOR),
                 ("apply", "gptj", 128, 64, "bf16", POS_RAGGED), ("NHD|ragged", "neox", 128, 64, "bf16", POS_TENSOR),
                 ("vllm", "gptj", 128, 64, "fp16", POS_TENSOR), ("apply", "neox", 128, 128, "fp32", POS_DENSE)]
    for vendor, targets in (("nvidia", NVIDIA_TARGETS), ("amd", AMD_TARGETS)):
        plat = spec_platform(vendor)
        for mode, style, d, r, dt, pos_mode, runs in _with_runs(variants):
            write = mode != "apply"
            head_major = mode in ("HND", "vllm")
            cfg = launch_config(1 << 14, 32, 8, d, vendor, plat.num_sms, write, head_major, 16)
            btq, btk = cfg["BLOCK_TQ"], cfg["BLOCK_TK"]
            cx = dict(D=d, R2=r // 2, CHUNK=max(btq, btk), BLOCK_TQ=btq, BLOCK_TK=btk, BLOCK_HQ=cfg["BLOCK_HQ"],
                      BLOCK_HK=cfg["BLOCK_HK"], BLOCK_R2=_np2(r // 2), BLOCK_P=_np2(max(d - r, 1)),
                      BLOCK_D=_np2(d), IS_NEOX=style == "neox", Q_PASS=r < d, K_PASS=r < d, WRITE_KV=write,
                      K_SPLIT=(16 // (4 if dt == "fp32" else 2)) if mode == "vllm" else 1, V_SPLIT=1,
                      POS_MODE=pos_mode, RUNS=runs if btk > 1 else 0)
            if pos_mode != POS_DENSE:
                cx["SEQ"] = 1
            cx.update(dict(kc_dlo=1, vc_slot=1) if mode == "vllm" else dict(kc_dhi=1, vc_dhi=1))
            idx = "*i64" if write else "*i32"
            sig = signature(_rotary_kernel, cx, **{a: f"*{dt}" for a in ("q", "q_out", "k", "k_out", "v",
                                                                        "k_cache", "v_cache")},
                            cos_sin="*fp32", positions=idx, offsets=idx, indptr=idx, slot_mapping=idx)
            aligned = tuple(a for a in strides if a not in cx and not (mode == "vllm" and a == "kc_slot"))
            specs.append(KernelSpec(
                "rotary", f"{vendor}/{mode}/{style}/{dt}/d{d}/r{r}/pos{pos_mode}" + ("/pages" if runs == 2 else ""),
                _rotary_kernel, sig, cx,
                options=dict(num_warps=cfg["num_warps"]), targets=targets, aligned=aligned))
    return specs
