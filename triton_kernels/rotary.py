"""Rotary embedding: q and k rotated in one launch, optionally with the rotated k and v written
straight into a KV cache of any layout (vLLM's rotary_embedding + reshape_and_cache, fused).

Grid: (token blocks, q head blocks + k head blocks). A program owns BLOCK_T tokens x BLOCK_H heads
of either q or k: it loads the tokens' cos/sin rows once and reuses them across its heads. The op
reads and writes each element once, so it is bound by memory bandwidth; tiles are sized to a few
thousand elements so that every thread issues several 16-byte loads, and the token block shrinks
for small batches so that the decode step still fills the machine.
"""
import torch
import triton
import triton.language as tl

from .addressing import kv_offset

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
def _rotate_heads(
    x, s_xb, s_xs, s_xh,               # source [tokens or (b, s), heads, d], unit stride along d
    y, s_yb, s_ys, s_yh,               # destination when not writing a cache
    cache, c_page, c_head, c_slot, c_dhi, c_dlo,   # destination when TO_CACHE
    v, s_vb, s_vs, s_vh, v_cache, vc_page, vc_head, vc_slot, vc_dhi, vc_dlo,
    tb, ts, t_live, page, in_page, cos, sin, h0, H,
    D: tl.constexpr, R2: tl.constexpr,
    BLOCK_H: tl.constexpr, BLOCK_R2: tl.constexpr, BLOCK_P: tl.constexpr, BLOCK_D: tl.constexpr,
    IS_NEOX: tl.constexpr, HAS_PASS: tl.constexpr, TO_CACHE: tl.constexpr,
    K_SPLIT: tl.constexpr, V_SPLIT: tl.constexpr,
):
    """Rotate heads h0..h0+BLOCK_H of BLOCK_T tokens; store to y, or (TO_CACHE) to the cache at
    (page, in_page) and copy v beside it. tb, ts, t_live, page, in_page: [BLOCK_T, 1, 1]."""
    h = h0 + tl.arange(0, BLOCK_H)[None, :, None]
    i = tl.arange(0, BLOCK_R2)[None, None, :]
    m = t_live & (h < H) & (i < R2)
    src = x + tb * s_xb + ts * s_xs + h * s_xh
    if IS_NEOX:
        # Halves: contiguous runs, so each half is one vectorized load.
        d1 = i
        d2 = i + R2
        x1 = tl.load(src + d1, mask=m).to(tl.float32)
        x2 = tl.load(src + d2, mask=m).to(tl.float32)
    else:
        # Interleaved pairs: one contiguous (vectorized) load of the rotated dims, pairs split in
        # registers, rather than two stride-2 loads.
        d12 = tl.arange(0, 2 * BLOCK_R2)[None, None, :]
        m12 = t_live & (h < H) & (d12 < 2 * R2)
        x12 = tl.load(src + d12, mask=m12).to(tl.float32)
        x1, x2 = tl.split(tl.reshape(x12, (x12.shape[0], BLOCK_H, BLOCK_R2, 2)))
    o1 = x1 * cos - x2 * sin
    o2 = x2 * cos + x1 * sin
    if not IS_NEOX:
        o12 = tl.reshape(tl.join(o1, o2), (x12.shape[0], BLOCK_H, 2 * BLOCK_R2))
    if HAS_PASS:
        p = 2 * R2 + tl.arange(0, BLOCK_P)[None, None, :]
        mp = t_live & (h < H) & (p < D)
        xp = tl.load(src + p, mask=mp)
    if TO_CACHE:
        ety = cache.dtype.element_ty
        if IS_NEOX:
            tl.store(cache + kv_offset(page, h, in_page, d1, c_page, c_head, c_slot, c_dhi, c_dlo, K_SPLIT),
                     o1.to(ety), mask=m)
            tl.store(cache + kv_offset(page, h, in_page, d2, c_page, c_head, c_slot, c_dhi, c_dlo, K_SPLIT),
                     o2.to(ety), mask=m)
        else:
            tl.store(cache + kv_offset(page, h, in_page, d12, c_page, c_head, c_slot, c_dhi, c_dlo, K_SPLIT),
                     o12.to(ety), mask=m12)
        if HAS_PASS:
            tl.store(cache + kv_offset(page, h, in_page, p, c_page, c_head, c_slot, c_dhi, c_dlo, K_SPLIT),
                     xp.to(ety), mask=mp)
        # v: the whole head, copied beside k.
        dv = tl.arange(0, BLOCK_D)[None, None, :]
        mv = t_live & (h < H) & (dv < D)
        vv = tl.load(v + tb * s_vb + ts * s_vs + h * s_vh + dv, mask=mv)
        tl.store(v_cache + kv_offset(page, h, in_page, dv, vc_page, vc_head, vc_slot, vc_dhi, vc_dlo, V_SPLIT),
                 vv.to(v_cache.dtype.element_ty), mask=mv)
    else:
        dst = y + tb * s_yb + ts * s_ys + h * s_yh
        ety = y.dtype.element_ty
        if IS_NEOX:
            tl.store(dst + d1, o1.to(ety), mask=m)
            tl.store(dst + d2, o2.to(ety), mask=m)
        else:
            tl.store(dst + d12, o12.to(ety), mask=m12)
        if HAS_PASS:
            tl.store(dst + p, xp, mask=mp)


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
    n_tokens, SEQ, HQ, HK, D: tl.constexpr, R2: tl.constexpr,
    BLOCK_T: tl.constexpr, BLOCK_HQ: tl.constexpr, BLOCK_HK: tl.constexpr, BLOCK_R2: tl.constexpr,
    BLOCK_P: tl.constexpr, BLOCK_D: tl.constexpr,
    IS_NEOX: tl.constexpr, Q_PASS: tl.constexpr, K_PASS: tl.constexpr, WRITE_KV: tl.constexpr,
    K_SPLIT: tl.constexpr, V_SPLIT: tl.constexpr, POS_MODE: tl.constexpr,
):
    hb = tl.program_id(1)
    t = tl.program_id(0).to(tl.int64) * BLOCK_T + tl.arange(0, BLOCK_T)
    t_live = t < n_tokens
    pos = _positions(t, n_tokens, positions, offsets, indptr, n_seqs, search_steps, SEQ, POS_MODE)
    # Out-of-range positions are rejected by validation "full"; clamp so that no input reads
    # outside the cache.
    pos = tl.minimum(tl.maximum(pos, 0), max_pos - 1)
    i = tl.arange(0, BLOCK_R2)[None, :]
    cmask = t_live[:, None] & (i < R2)
    c_ptr = cos_sin + pos[:, None] * s_cs + i
    cos = tl.load(c_ptr, mask=cmask, other=0.0).to(tl.float32)[:, None, :]
    sin = tl.load(c_ptr + sin_off, mask=cmask, other=0.0).to(tl.float32)[:, None, :]
    tb = (t // SEQ)[:, None, None]
    ts = (t % SEQ)[:, None, None]
    live3 = t_live[:, None, None]
    n_qb = tl.cdiv(HQ, BLOCK_HQ)
    if hb < n_qb:
        _rotate_heads(q, s_qb, s_qs, s_qh, q_out, s_qob, s_qos, s_qoh,
                      k_cache, kc_page, kc_head, kc_slot, kc_dhi, kc_dlo,
                      v, s_vb, s_vs, s_vh, v_cache, vc_page, vc_head, vc_slot, vc_dhi, vc_dlo,
                      tb, ts, live3, tb, ts, cos, sin, hb * BLOCK_HQ, HQ, D, R2,
                      BLOCK_HQ, BLOCK_R2, BLOCK_P, BLOCK_D, IS_NEOX, Q_PASS, False, K_SPLIT, V_SPLIT)
    else:
        h0 = (hb - n_qb) * BLOCK_HK
        if WRITE_KV:
            slot = tl.load(slot_mapping + t, mask=t_live, other=-1).to(tl.int64)
            # Negative slots are padding (vLLM); slots past the cache are rejected by validation
            # "full" and skipped here, never written out of bounds.
            w_live = (t_live & (slot >= 0) & (slot < n_slots))[:, None, None]
            page = (slot // page_size)[:, None, None]
            in_page = (slot % page_size)[:, None, None]
            _rotate_heads(k, s_kb, s_ks, s_kh, k_out, s_kob, s_kos, s_koh,
                          k_cache, kc_page, kc_head, kc_slot, kc_dhi, kc_dlo,
                          v, s_vb, s_vs, s_vh, v_cache, vc_page, vc_head, vc_slot, vc_dhi, vc_dlo,
                          tb, ts, w_live, page, in_page, cos, sin, h0, HK, D, R2,
                          BLOCK_HK, BLOCK_R2, BLOCK_P, BLOCK_D, IS_NEOX, K_PASS, True, K_SPLIT, V_SPLIT)
        else:
            _rotate_heads(k, s_kb, s_ks, s_kh, k_out, s_kob, s_kos, s_koh,
                          k_cache, kc_page, kc_head, kc_slot, kc_dhi, kc_dlo,
                          v, s_vb, s_vs, s_vh, v_cache, vc_page, vc_head, vc_slot, vc_dhi, vc_dlo,
                          tb, ts, live3, tb, ts, cos, sin, h0, HK, D, R2,
                          BLOCK_HK, BLOCK_R2, BLOCK_P, BLOCK_D, IS_NEOX, K_PASS, False, K_SPLIT, V_SPLIT)


# Per-vendor launch shape, measured choices (see benchmarks/bench_rotary.py):
#   tile             elements (all heads of the block x head_dim x tokens) one program moves
#   max_heads        heads per program at most
#   programs_per_sm  the token block shrinks until the grid has this many programs per SM
#                    (decode-sized batches); 0: never shrink (the interpreter: fewer programs, faster)
_CONFIGS = {
    "nvidia": dict(num_warps=4, tile=4096, max_heads=8, programs_per_sm=4),
    "amd": dict(num_warps=4, tile=8192, max_heads=8, programs_per_sm=4),
    "cpu": dict(num_warps=1, tile=1 << 14, max_heads=64, programs_per_sm=0),
}


def launch_config(n_tokens: int, hq: int, hk: int, d: int, platform) -> dict:
    cfg = _CONFIGS.get(platform.vendor, _CONFIGS["nvidia"])
    bhq = min(triton.next_power_of_2(hq), cfg["max_heads"])
    bhk = min(triton.next_power_of_2(hk), cfg["max_heads"])
    per_token = max(bhq, bhk) * triton.next_power_of_2(d)
    bt = max(1, min(64, triton.next_power_of_2(max(1, cfg["tile"] // per_token))))
    bt = min(bt, triton.next_power_of_2(max(n_tokens, 1)))
    n_hb = triton.cdiv(hq, bhq) + triton.cdiv(hk, bhk)
    want = cfg["programs_per_sm"] * platform.num_sms
    while bt > 1 and triton.cdiv(n_tokens, bt) * n_hb < want:
        bt //= 2
    return dict(BLOCK_T=bt, BLOCK_HQ=bhq, BLOCK_HK=bhk, num_warps=cfg["num_warps"])


def _bsh(t: torch.Tensor):
    """(stride over batch, stride over seq, stride over heads) of [tokens, h, d] or [b, s, h, d]."""
    if t.dim() == 4:
        return t.stride(0), t.stride(1), t.stride(2)
    return t.stride(0), 0, t.stride(1)


def rotary(q, k, q_out, k_out, cos_sin_cache, rotary_dim: int, is_neox: bool, *, positions=None,
           offsets=None, indptr=None, kv=None, v=None, slot_mapping=None, config=None) -> None:
    """One launch. q [T, HQ, D] or [b, s, HQ, D] into q_out (may be q); k likewise into k_out, or,
    with kv given, k rotated and v into kv's storage at slot_mapping. Inputs validated by the caller;
    exactly one of positions [T] / offsets [b] (+ indptr [b+1] for 3-D inputs) is given."""
    from attn.platform import for_tensor
    dense = q.dim() == 4
    n_tokens = q.shape[0] * q.shape[1] if dense else q.shape[0]
    hq, d = q.shape[-2], q.shape[-1]
    hk = k.shape[-2]
    if n_tokens == 0:
        return
    cfg = dict(config or launch_config(n_tokens, hq, hk, d, for_tensor(q)))
    write_kv = kv is not None
    r2 = rotary_dim // 2
    if positions is not None:
        pos_mode, pos_t, off_t, ip_t, n_seqs = POS_TENSOR, positions, positions, positions, 1
    elif dense:
        pos_mode, pos_t, off_t, ip_t, n_seqs = POS_DENSE, offsets, offsets, offsets, offsets.shape[0]
    else:
        pos_mode, pos_t, off_t, ip_t, n_seqs = POS_RAGGED, offsets, offsets, indptr, offsets.shape[0]
    steps = max(1, (n_seqs - 1).bit_length()) if pos_mode == POS_RAGGED else 0
    if write_kv:
        kc, vc, ks, vs = kv.k, kv.v, kv.k_strides, kv.v_strides
        page_size, n_slots = kv.page_size, kv.num_pages * kv.page_size
        vst = _bsh(v)
    else:
        kc, vc, ks, vs = q, q, (0, 0, 0, 0, 0, 1), (0, 0, 0, 0, 0, 1)
        page_size, n_slots, vst, v, slot_mapping = 1, 0, (0, 0, 0), q, positions if positions is not None else offsets
    ko = k if k_out is None else k_out
    grid = (triton.cdiv(n_tokens, cfg["BLOCK_T"]), triton.cdiv(hq, cfg["BLOCK_HQ"]) + triton.cdiv(hk, cfg["BLOCK_HK"]))
    _rotary_kernel[grid](
        q, *_bsh(q), q_out, *_bsh(q_out),
        k, *_bsh(k), ko, *_bsh(ko),
        v, *vst,
        kc, *ks[:5], vc, *vs[:5],
        slot_mapping, page_size, n_slots,
        cos_sin_cache, cos_sin_cache.stride(0), cos_sin_cache.shape[1] // 2, cos_sin_cache.shape[0],
        pos_t, off_t, ip_t, n_seqs, steps,
        n_tokens, q.shape[1] if dense else 1, hq, hk, d, r2,
        BLOCK_T=cfg["BLOCK_T"], BLOCK_HQ=cfg["BLOCK_HQ"], BLOCK_HK=cfg["BLOCK_HK"],
        BLOCK_R2=triton.next_power_of_2(r2), BLOCK_P=triton.next_power_of_2(max(d - rotary_dim, 1)),
        BLOCK_D=triton.next_power_of_2(d),
        IS_NEOX=is_neox, Q_PASS=rotary_dim < d and q_out.data_ptr() != q.data_ptr(),
        K_PASS=rotary_dim < d and (write_kv or ko.data_ptr() != k.data_ptr()), WRITE_KV=write_kv,
        K_SPLIT=ks[5], V_SPLIT=vs[5], POS_MODE=pos_mode,
        num_warps=cfg["num_warps"],
    )
