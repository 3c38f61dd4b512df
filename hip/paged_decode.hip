// Paged-attention decode, split-KV: one work-group per (sequence, kv head x GQA tile, partition),
// a reduce kernel across partitions. Compiled by hiprtc (AMD) and NVRTC (NVIDIA) from this one
// source; attn/hip/compile.py defines the ATTN_* constants of one instance.
//
// Work split inside a work-group: a "thread group" of TG x HS lanes owns one token at a time, lane i
// of each of its HS lane sets holding head dims [8i, 8i+8) (one 16-byte vector of K and one of V)
// and GL = G / HS of the tile's query heads (HS > 1 for wide GQA tiles: fewer query and
// accumulator registers per lane; the HS lane sets load the same addresses in the same
// instruction, which the memory pipeline merges). Each thread group streams its own chunks of TU
// consecutive tokens with its own online softmax, so the main loop has no barrier; the NG thread
// groups are merged through LDS once at the end. Every register array is indexed by compile-time
// constants only (fully unrolled loops, no early exits), so nothing lives in scratch memory; the
// page numbers of a chunk are loaded one chunk ahead.
//
// Address math is the layout descriptor's (attn.layouts.descriptors):
//   K: page*k_sp + head*k_sh + slot*k_ss + (d / X)*k_sdhi + d % X   (X = 8 for vLLM's K, else 1)
//   V (ATTN_VLLM == 0): page*v_sp + head*v_sh + slot*v_ss + d          (d contiguous)
//   V (ATTN_VLLM == 1): page*v_sp + head*v_sh + d*v_sd + slot          (slot contiguous)
// Offsets are 64-bit. K/V of a token outside [window start, seq_len) is never loaded; vLLM's V
// vectors (8 slots) are loaded whole from an owned page and out-of-range lanes are *selected*
// to 0, never multiplied, because those slots may hold NaN.
#include "prelude.h"

#ifndef ATTN_HEAD_DIM
#error "ATTN_HEAD_DIM (and the other ATTN_* constants) come from attn.hip.compile"
#endif

#define VEC 8                                               // 16-bit elements per 16-byte vector
#define LOG2E 1.4426950408889634f
#define LN2 0.6931471805599453f

// Lanes per token: the power of two >= vectors per row (head_dim >= 64, so at least 8).
#define ATTN_LANES(nv) ((nv) <= 8 ? 8 : (nv) <= 16 ? 16 : 32)

struct PageMap {
    const void* indptr;
    const void* indices;    // null: identity pages (ragged), physical = indptr[b] + logical
    const void* seq_lens;
    int flags;              // bit 0: indptr int64, bit 1: indices int64, bit 2: seq_lens int64

    ATTN_DEVICE i64 load(const void* p, i64 i, int bit) const {
        return (flags >> bit) & 1 ? ((const i64*)p)[i] : (i64)((const int*)p)[i];
    }
    ATTN_DEVICE int seq_len(int b) const { return (int)load(seq_lens, b, 2); }
    ATTN_DEVICE i64 first(int b) const { return load(indptr, b, 0); }
    ATTN_DEVICE i64 page(i64 first, i64 logical) const {
        return indices ? load(indices, first + logical, 1) : first + logical;
    }
};

// The token range a sequence attends to, aligned down to TU, and its split into partitions.
// Both kernels call this, so they agree on how many partitions hold tokens.
template <int CHUNK, int ALIGN>
ATTN_DEVICE void split_range(int len, int window_left, int num_splits, int& lo, int& a0, int& part_len,
                             int& n_parts) {
    lo = (window_left >= 0 && len - 1 - window_left > 0) ? len - 1 - window_left : 0;
    a0 = lo - lo % ALIGN;
    int span = len - a0;
    if (len <= 0) { part_len = CHUNK; n_parts = 0; return; }
    int per = (span + num_splits - 1) / num_splits;
    part_len = (per + CHUNK - 1) / CHUNK * CHUNK;
    n_parts = (span + part_len - 1) / part_len;
}

// Physical pages of the chunk [t, t + TU): one page when a chunk never crosses pages (slots past
// the sequence stay unread), else one per token (0 for tokens outside [lo, t_end), never read).
template <int PS, int TU, bool ONE_PAGE>
ATTN_DEVICE void chunk_pages(const PageMap& pm, i64 first, int t, int lo, int t_end, i64* pg) {
    if (ONE_PAGE) {
        pg[0] = t < t_end ? pm.page(first, t / PS) : 0;
    } else {
#pragma unroll
        for (int u = 0; u < TU; ++u) {
            const int tu = t + u;
            pg[u] = (tu >= lo && tu < t_end) ? pm.page(first, tu / PS) : 0;
        }
    }
}

template <int D, int PS, int G, int HS, int DT, int WARP, bool VLLM, int NT, int TU>
__device__ void paged_decode_partition(
    const u16* __restrict__ q, i64 q_sb, i64 q_sh,
    const u16* __restrict__ k, i64 k_sp, i64 k_sh, i64 k_ss, i64 k_sdhi,
    const u16* __restrict__ v, i64 v_sp, i64 v_sh, i64 v_ss, i64 v_sd,
    PageMap pm, int kv_heads, int gqa, int num_splits,
    float sm_scale, float softcap, int window_left,
    u16* __restrict__ out, i64 o_sb, i64 o_sh, float* __restrict__ lse,
    float* __restrict__ part_out, float* __restrict__ part_lse) {
    constexpr int NV = D / VEC;                  // vectors per head row
    constexpr int TG = ATTN_LANES(NV);            // lanes per token (80, 96: 10, 12 of 16 busy)
    constexpr int GL = G / HS;                   // query heads per lane: HS lane sets split the tile
    constexpr int NG = NT / (TG * HS);           // thread groups per work-group
    constexpr int CHUNK = NG * TU;               // tokens per work-group iteration
    static_assert(D % VEC == 0 && TG <= 32 && TG * HS <= WARP && G % HS == 0, "head_dim / head split");
    static_assert(!VLLM || (TU == VEC && PS % VEC == 0), "vllm V is read 8 slots at a time");
    constexpr bool ONE_PAGE = PS % TU == 0;      // a chunk never crosses a page

    const int b = blockIdx.x;
    const int tiles = (gqa + G - 1) / G;
    const int kvh = blockIdx.y / tiles;
    const int g0 = (blockIdx.y % tiles) * G;     // first query head of this tile within the kv head
    const int part = blockIdx.z;
    const int tid = threadIdx.x;
    const int lane = tid % TG;
    const int hs = (tid / TG) % HS;              // which GL heads of the tile this lane holds
    const int grp = tid / (TG * HS);
    const int gl0 = g0 + hs * GL;                // first query head of this lane within the kv head
    const bool lane_on = lane < NV;

    const int len = pm.seq_len(b);
    int lo, a0, part_len, n_parts;
    split_range<CHUNK, TU>(len, window_left, num_splits, lo, a0, part_len, n_parts);
    const bool direct = part_out == nullptr;
    if (part >= n_parts && !(direct && part == 0)) return;
    const int t_begin = a0 + part * part_len;
    const int t_end = min(t_begin + part_len, len);

    // Queries of this tile, pre-scaled so that scores come out in log2 units.
    const float qscale = softcap > 0.f ? sm_scale : sm_scale * LOG2E;
    float qr[GL][VEC];
#pragma unroll
    for (int g = 0; g < GL; ++g) {
        const bool on = lane_on && gl0 + g < gqa;
        const u16* qp = q + b * q_sb + (i64)(kvh * gqa + (on ? gl0 + g : 0)) * q_sh + lane * VEC;
#pragma unroll
        for (int e = 0; e < VEC; ++e) qr[g][e] = on ? attn_to_float<DT>(qp[e]) * qscale : 0.f;
    }

    float acc[GL][VEC], m[GL], l[GL];
#pragma unroll
    for (int g = 0; g < GL; ++g) {
        m[g] = -attn_inf();
        l[g] = 0.f;
#pragma unroll
        for (int e = 0; e < VEC; ++e) acc[g][e] = 0.f;
    }

    const i64 first = pm.first(b);
    const u16* kh = k + (i64)kvh * k_sh;
    const u16* vh = v + (i64)kvh * v_sh;
    const float cap_log2 = softcap * LOG2E;
    const float inv_cap = softcap > 0.f ? 1.f / softcap : 0.f;

    // Page numbers are loaded one chunk ahead, so a chunk's K/V loads never wait on its page lookup.
    constexpr int NPG = ONE_PAGE ? 1 : TU;
    i64 pg[NPG];
    int t0 = t_begin + grp * TU;
    chunk_pages<PS, TU, ONE_PAGE>(pm, first, t0, lo, t_end, pg);
    for (; t0 < t_end; t0 += CHUNK) {
        attn_u32x4 kv_k[TU], kv_v[TU];
        bool valid[TU];
#pragma unroll
        for (int u = 0; u < TU; ++u) {
            const int t = t0 + u;
            valid[u] = t >= lo && t < t_end;
        }
        const attn_u32x4 z = {0u, 0u, 0u, 0u};
        if (ONE_PAGE) {
            // One page holds the chunk: one 64-bit base per tensor, slots step by the slot stride.
            const int slot0 = t0 % PS;
            const int d = lane * VEC;
            const u16* kb = kh + pg[0] * k_sp + (i64)slot0 * k_ss + (VLLM ? (i64)lane * k_sdhi : (i64)d);
            const u16* vb = VLLM ? vh + pg[0] * v_sp + (i64)d * v_sd + slot0 : vh + pg[0] * v_sp + (i64)slot0 * v_ss + d;
#pragma unroll
            for (int u = 0; u < TU; ++u) {
                kv_k[u] = z;
                if (valid[u] && lane_on) kv_k[u] = *(const attn_u32x4*)(kb + (i64)u * k_ss);
                kv_v[u] = z;
                if (VLLM) {
                    // Row d = lane*8 + u of V, slots [slot0, slot0 + 8) of the chunk's page.
                    if (lane_on) kv_v[u] = *(const attn_u32x4*)(vb + (i64)u * v_sd);
                } else {
                    if (valid[u] && lane_on) kv_v[u] = *(const attn_u32x4*)(vb + (i64)u * v_ss);
                }
            }
        } else {
#pragma unroll
            for (int u = 0; u < TU; ++u) {
                const int slot = (t0 + u) % PS;
                const i64 p = pg[u];
                kv_k[u] = z;
                kv_v[u] = z;
                if (valid[u] && lane_on) {
                    kv_k[u] = *(const attn_u32x4*)(kh + p * k_sp + (i64)slot * k_ss + lane * VEC);
                    kv_v[u] = *(const attn_u32x4*)(vh + p * v_sp + (i64)slot * v_ss + lane * VEC);
                }
            }
        }
        chunk_pages<PS, TU, ONE_PAGE>(pm, first, t0 + CHUNK, lo, t_end, pg);

        // Scores: per-lane partial dot products, summed over the TG lanes of the token.
        float s[GL][TU];
#pragma unroll
        for (int u = 0; u < TU; ++u) {
            float kf[VEC];
            attn_unpack8<DT>(kv_k[u], kf);
#pragma unroll
            for (int g = 0; g < GL; ++g) {
                float a = 0.f;
#pragma unroll
                for (int e = 0; e < VEC; ++e) a += qr[g][e] * kf[e];
#pragma unroll
                for (int off = TG / 2; off > 0; off /= 2) a += attn_shfl_xor(a, off, TG, TG * HS);
                if (softcap > 0.f) a = cap_log2 * attn_tanh(a * inv_cap);
                s[g][u] = valid[u] ? a : -attn_inf();
            }
        }

        // Online softmax of this thread group. A chunk holds at least one valid token, so the
        // running max is finite after it and exp2(-inf - m) is 0 for masked tokens.
#pragma unroll
        for (int g = 0; g < GL; ++g) {
            float mx = m[g];
#pragma unroll
            for (int u = 0; u < TU; ++u) mx = attn_fmax(mx, s[g][u]);
            const float alpha = attn_exp2(m[g] - mx);
            m[g] = mx;
            l[g] *= alpha;
#pragma unroll
            for (int e = 0; e < VEC; ++e) acc[g][e] *= alpha;
#pragma unroll
            for (int u = 0; u < TU; ++u) {
                s[g][u] = attn_exp2(s[g][u] - mx);
                l[g] += s[g][u];
            }
        }
        if (!VLLM) {
#pragma unroll
            for (int u = 0; u < TU; ++u) {
                float vf[VEC];
                attn_unpack8<DT>(kv_v[u], vf);
#pragma unroll
                for (int g = 0; g < GL; ++g)
#pragma unroll
                    for (int e = 0; e < VEC; ++e) acc[g][e] += s[g][u] * vf[e];
            }
        } else {
            // kv_v[e] holds V[d = lane*8 + e][slots of tokens 0..7]; masked slots are selected to 0.
#pragma unroll
            for (int e = 0; e < VEC; ++e) {
                float vf[VEC];
                attn_unpack8<DT>(kv_v[e], vf);
#pragma unroll
                for (int u = 0; u < TU; ++u) vf[u] = valid[u] ? vf[u] : 0.f;
#pragma unroll
                for (int g = 0; g < GL; ++g)
#pragma unroll
                    for (int u = 0; u < TU; ++u) acc[g][e] += s[g][u] * vf[u];
            }
        }
    }

    // Merge the NG thread groups: global max, rescale, tree-sum through LDS. Head hs*GL + g of the
    // tile lives in lane set hs (an LDS index known only at run time; registers stay compile-time).
    __shared__ float sm_m[NG][G];
    __shared__ float sm_l[NG][G];
    __shared__ float sm_acc[NG / 2 > 0 ? NG / 2 : 1][G][TG * VEC];
    if (lane == 0)
#pragma unroll
        for (int g = 0; g < GL; ++g) { sm_m[grp][hs * GL + g] = m[g]; sm_l[grp][hs * GL + g] = l[g]; }
    __syncthreads();
    float L[GL], M[GL];
#pragma unroll
    for (int g = 0; g < GL; ++g) {
        const int h = hs * GL + g;
        float mx = -attn_inf();
        for (int r = 0; r < NG; ++r) mx = attn_fmax(mx, sm_m[r][h]);
        float sum = 0.f;
        for (int r = 0; r < NG; ++r) sum += sm_m[r][h] == -attn_inf() ? 0.f : sm_l[r][h] * attn_exp2(sm_m[r][h] - mx);
        M[g] = mx;
        L[g] = sum;
        const float sc = m[g] == -attn_inf() ? 0.f : attn_exp2(m[g] - mx);
#pragma unroll
        for (int e = 0; e < VEC; ++e) acc[g][e] *= sc;
    }
#pragma unroll
    for (int half = NG / 2; half > 0; half /= 2) {
        if (grp >= half && grp < 2 * half)
#pragma unroll
            for (int g = 0; g < GL; ++g)
#pragma unroll
                for (int e = 0; e < VEC; ++e) sm_acc[grp - half][hs * GL + g][lane * VEC + e] = acc[g][e];
        __syncthreads();
        if (grp < half)
#pragma unroll
            for (int g = 0; g < GL; ++g)
#pragma unroll
                for (int e = 0; e < VEC; ++e) acc[g][e] += sm_acc[grp][hs * GL + g][lane * VEC + e];
        __syncthreads();
    }
    if (grp != 0 || !lane_on) return;

    // No early exit from this loop (heads past gqa are skipped, not broken out of): a loop with a
    // break is not always fully unrolled, and then acc[g] would live in scratch memory.
#pragma unroll
    for (int g = 0; g < GL; ++g) {
        if (gl0 + g < gqa) {
            const int qh = kvh * gqa + gl0 + g;
            const bool empty = L[g] == 0.f;          // no token (seq_len 0): out 0, lse -inf
            const float inv = empty ? 0.f : 1.f / L[g];
            const float lse2 = empty ? -attn_inf() : M[g] + attn_log2(L[g]);
            if (direct) {
                u16 o[VEC];
#pragma unroll
                for (int e = 0; e < VEC; ++e) o[e] = attn_from_float<DT>(acc[g][e] * inv);
                attn_u32x4 w = {o[0] | ((u32)o[1] << 16), o[2] | ((u32)o[3] << 16),
                                o[4] | ((u32)o[5] << 16), o[6] | ((u32)o[7] << 16)};
                *(attn_u32x4*)(out + b * o_sb + qh * o_sh + lane * VEC) = w;
                if (lse && lane == 0) lse[(i64)b * kv_heads * gqa + qh] = lse2 * LN2;
            } else {
                const i64 row = ((i64)b * kv_heads * gqa + qh) * num_splits + part;
                float* po = part_out + row * D + lane * VEC;
#pragma unroll
                for (int e = 0; e < VEC; ++e) po[e] = acc[g][e] * inv;
                if (lane == 0) part_lse[row] = lse2;
            }
        }
    }
}

// One work-group per (sequence, query head): combine the partitions that hold tokens.
template <int D, int DT, int WARP, int TUC, int ALIGN>
__device__ void paged_decode_reduce(PageMap pm, int q_heads, int num_splits, int window_left,
                                    const float* __restrict__ part_out, const float* __restrict__ part_lse,
                                    u16* __restrict__ out, i64 o_sb, i64 o_sh, float* __restrict__ lse) {
    const int b = blockIdx.x, qh = blockIdx.y;
    int lo, a0, part_len, n_parts;
    split_range<TUC, ALIGN>(pm.seq_len(b), window_left, num_splits, lo, a0, part_len, n_parts);
    const i64 row0 = ((i64)b * q_heads + qh) * num_splits;
    // Every warp computes max and sum over the partitions itself: no barrier.
    const int lane = threadIdx.x % WARP;
    float mx = -attn_inf();
    for (int p = lane; p < n_parts; p += WARP) mx = attn_fmax(mx, part_lse[row0 + p]);
#pragma unroll
    for (int off = WARP / 2; off > 0; off /= 2) mx = attn_fmax(mx, attn_shfl_xor(mx, off, WARP, WARP));
    float sum = 0.f;
    for (int p = lane; p < n_parts; p += WARP) sum += attn_exp2(part_lse[row0 + p] - mx);
#pragma unroll
    for (int off = WARP / 2; off > 0; off /= 2) sum += attn_shfl_xor(sum, off, WARP, WARP);
    const bool empty = n_parts == 0;
    const float inv = empty ? 0.f : 1.f / sum;
    for (int d = threadIdx.x; d < D; d += blockDim.x) {
        float a = 0.f;
        for (int p = 0; p < n_parts; ++p)
            a += attn_exp2(part_lse[row0 + p] - mx) * part_out[(row0 + p) * D + d];
        out[b * o_sb + qh * o_sh + d] = attn_from_float<DT>(a * inv);
    }
    if (lse && threadIdx.x == 0) lse[(i64)b * q_heads + qh] = empty ? -attn_inf() : (mx + attn_log2(sum)) * LN2;
}

#define ATTN_NG (ATTN_THREADS / (ATTN_LANES(ATTN_HEAD_DIM / VEC) * ATTN_HSPLIT))

// NVIDIA only (attn.hip.compile: options() sets it): work-groups per SM for ptxas to keep; an
// instance that would spill within that register budget is compiled without it.
#ifndef ATTN_MIN_BLOCKS
#define ATTN_MIN_BLOCKS 1
#endif

extern "C" __global__ void __launch_bounds__(ATTN_THREADS, ATTN_MIN_BLOCKS) attn_paged_decode(
    const u16* q, i64 q_sb, i64 q_sh,
    const u16* k, i64 k_sp, i64 k_sh, i64 k_ss, i64 k_sdhi,
    const u16* v, i64 v_sp, i64 v_sh, i64 v_ss, i64 v_sd,
    const void* page_indptr, const void* page_indices, const void* seq_lens, int idx_flags,
    int kv_heads, int gqa, int num_splits, float sm_scale, float softcap, int window_left,
    u16* out, i64 o_sb, i64 o_sh, float* lse, float* part_out, float* part_lse) {
    PageMap pm{page_indptr, page_indices, seq_lens, idx_flags};
    paged_decode_partition<ATTN_HEAD_DIM, ATTN_PAGE_SIZE, ATTN_GQA, ATTN_HSPLIT, ATTN_DTYPE, ATTN_WARP, ATTN_VLLM != 0,
                           ATTN_THREADS, ATTN_TU>(
        q, q_sb, q_sh, k, k_sp, k_sh, k_ss, k_sdhi, v, v_sp, v_sh, v_ss, v_sd, pm, kv_heads, gqa, num_splits,
        sm_scale, softcap, window_left, out, o_sb, o_sh, lse, part_out, part_lse);
}

extern "C" __global__ void __launch_bounds__(ATTN_REDUCE_THREADS) attn_paged_decode_reduce(
    const void* page_indptr, const void* page_indices, const void* seq_lens, int idx_flags,
    int q_heads, int num_splits, int window_left,
    const float* part_out, const float* part_lse, u16* out, i64 o_sb, i64 o_sh, float* lse) {
    PageMap pm{page_indptr, page_indices, seq_lens, idx_flags};
    paged_decode_reduce<ATTN_HEAD_DIM, ATTN_DTYPE, ATTN_WARP, ATTN_NG * ATTN_TU, ATTN_TU>(
        pm, q_heads, num_splits, window_left, part_out, part_lse, out, o_sb, o_sh, lse);
}
