"""Merging partial attention states: backend "triton" of attn.merge_state / attn.merge_states, and
the segmented merge that finishes split-KV decode (triton_kernels/decode.py, attn.BatchDecode).

A partial state over a KV range is (o, lse): o the softmax-weighted mean of V over the range,
lse the log-sum-exp of its scores (natural log). Two ranges combine as

    lse = log(exp(lse_a) + exp(lse_b)),  o = o_a * exp(lse_a - lse) + o_b * exp(lse_b - lse)

computed against the running maximum. A part with lse = -inf (it saw no key) has weight 0 and
its o is never read into the sum (it may hold anything); all parts -inf gives o = 0, lse = -inf.

One program merges one (row, head): its parts are loaded BLOCK_P at a time as one
[BLOCK_P, BLOCK_D] tile, so the loads of all parts are in flight together (a row of a b=1 decode
with 32+ splits is one latency, not 32).
"""
from __future__ import annotations

import triton
import triton.language as tl

LOG2E = tl.constexpr(1.4426950408889634)
LN2 = tl.constexpr(0.6931471805599453)


@triton.jit
def _merge_chunk(acc, m, l, o_ptrs, lse, live, dmask):
    """Fold parts (o rows at o_ptrs [P, D], lse [P] in log2 units, live [P]) into the running
    (acc [D], m, l): m the running max (log2), l the sum of weights relative to it."""
    lse = tl.where(live, lse, float("-inf"))
    m_new = tl.maximum(m, tl.max(lse, 0))
    m_safe = tl.where(m_new == float("-inf"), 0.0, m_new)
    w = tl.math.exp2(lse - m_safe)                        # 0 for parts that saw no key
    # o is loaded beside its lse, not after it (one round trip, not two); a part that saw no key
    # may hold anything, NaN included, so its weight 0 is applied by select, not by product.
    o = tl.load(o_ptrs, mask=live[:, None] & dmask[None, :], other=0.0).to(tl.float32)
    o = tl.where((w > 0)[:, None], o, 0.0)
    alpha = tl.math.exp2(m - m_safe)
    acc = acc * alpha + tl.sum(o * w[:, None], 0)
    l = l * alpha + tl.sum(w, 0)
    return acc, m_new, l


@triton.jit
def _merge_row(o_ptr, lse_ptr, s_on, s_ln, row_o, row_l, start, n, out_row, out_lse_row,
               HEAD_DIM: tl.constexpr, BLOCK_D: tl.constexpr, BLOCK_P: tl.constexpr, RETURN_LSE: tl.constexpr):
    """Merge parts start..start+n of one (row, head) (row_o / row_l: its o and lse bases) into out_row."""
    d = tl.arange(0, BLOCK_D)
    dmask = d < HEAD_DIM
    p = tl.arange(0, BLOCK_P)
    acc = tl.zeros((BLOCK_D,), tl.float32)
    m = tl.max(tl.full((BLOCK_P,), float("-inf"), tl.float32), 0)
    l = tl.sum(tl.zeros((BLOCK_P,), tl.float32), 0)
    for j0 in range(0, n, BLOCK_P):
        part = (start + j0 + p).to(tl.int64)
        live = j0 + p < n
        lse = tl.load(row_l + part * s_ln, mask=live, other=float("-inf")) * LOG2E
        acc, m, l = _merge_chunk(acc, m, l, row_o + part[:, None] * s_on + d[None, :], lse, live, dmask)
    seen = l > 0
    out = acc / tl.where(seen, l, 1.0)
    tl.store(out_row + d, out.to(out_row.dtype.element_ty), mask=dmask)
    if RETURN_LSE:
        tl.store(out_lse_row, tl.where(seen, (m + tl.math.log2(tl.where(seen, l, 1.0))) * LN2, float("-inf")))


@triton.jit
def _entry(indptr_ptr, rows_ptr, i, max_rows, HAS_ROWS: tl.constexpr):
    """Merge-list entry i's parts [start, end) and output row; past max_rows an empty entry."""
    ok = i < max_rows
    start = tl.load(indptr_ptr + i, mask=ok, other=0)
    end = tl.load(indptr_ptr + i + 1, mask=ok, other=0)
    r = i
    if HAS_ROWS:
        r = tl.load(rows_ptr + i, mask=ok, other=0)
    return start, end, r


@triton.jit
def merge_kernel(
    o_ptr, lse_ptr, s_on, s_or, s_oh, s_ln, s_lr, s_lh,
    indptr_ptr, n_parts, num_rows_ptr, rows_ptr, grid_rows, max_rows,
    out_ptr, s_xr, s_xh, out_lse_ptr, s_yr, s_yh,
    NUM_HEADS: tl.constexpr, HEAD_DIM: tl.constexpr, BLOCK_D: tl.constexpr, BLOCK_P: tl.constexpr,
    SEGMENTED: tl.constexpr, HAS_ROWS: tl.constexpr, RETURN_LSE: tl.constexpr,
):
    """Program (row slot i, head h). SEGMENTED: entry i of the merge list has parts
    indptr[i]..indptr[i+1] of o [parts, heads, D] (s_or = 0) and writes output row rows[i]
    (HAS_ROWS) or i; entries >= num_rows are not there, and a program takes entries i,
    i + grid_rows, ... (a grid sized once for a CUDA graph, whatever the list's length). An
    entry with no parts is left alone (its attention program wrote the row).
    Else (merge_states): parts j = 0..n_parts-1 at j*s_on + r*s_or."""
    pid = tl.program_id(0)
    h = pid % NUM_HEADS
    if SEGMENTED:
        # The merge runs right after the attention launch, its data in L2: its time is the chain of
        # dependent loads. The entry's indptr (and row) are loaded beside num_rows, and the next
        # entry's at the end of each one (entries < max_rows exist: indptr has max_rows + 1).
        i = pid // NUM_HEADS
        start, end, r = _entry(indptr_ptr, rows_ptr, i, max_rows, HAS_ROWS)
        for _ in range(i, tl.load(num_rows_ptr), grid_rows):
            if end > start:
                _merge_row(o_ptr, lse_ptr, s_on, s_ln, o_ptr + h * s_oh, lse_ptr + h * s_lh, start, end - start,
                           out_ptr + r.to(tl.int64) * s_xr + h * s_xh, out_lse_ptr + r.to(tl.int64) * s_yr + h * s_yh,
                           HEAD_DIM, BLOCK_D, BLOCK_P, RETURN_LSE)
            i += grid_rows
            start, end, r = _entry(indptr_ptr, rows_ptr, i, max_rows, HAS_ROWS)
    else:
        r = pid // NUM_HEADS
        _merge_row(o_ptr, lse_ptr, s_on, s_ln, o_ptr + r.to(tl.int64) * s_or + h * s_oh,
                   lse_ptr + r.to(tl.int64) * s_lr + h * s_lh, 0, n_parts,
                   out_ptr + r.to(tl.int64) * s_xr + h * s_xh, out_lse_ptr + r.to(tl.int64) * s_yr + h * s_yh,
                   HEAD_DIM, BLOCK_D, BLOCK_P, RETURN_LSE)


@triton.jit
def merge_two_kernel(
    a_ptr, la_ptr, b_ptr, lb_ptr, out_ptr, lse_ptr,
    s_ar, s_ah, s_lar, s_lah, s_br, s_bh, s_lbr, s_lbh,
    NUM_HEADS: tl.constexpr, HEAD_DIM: tl.constexpr, BLOCK_D: tl.constexpr,
):
    """merge_state: program (row, head) of out [rows, heads, D], lse [rows, heads] (contiguous)."""
    pid = tl.program_id(0)
    r = (pid // NUM_HEADS).to(tl.int64)
    h = pid % NUM_HEADS
    d = tl.arange(0, BLOCK_D)
    dmask = d < HEAD_DIM
    la = tl.load(la_ptr + r * s_lar + h * s_lah) * LOG2E
    lb = tl.load(lb_ptr + r * s_lbr + h * s_lbh) * LOG2E
    m = tl.maximum(la, lb)
    m_safe = tl.where(m == float("-inf"), 0.0, m)
    wa = tl.math.exp2(la - m_safe)
    wb = tl.math.exp2(lb - m_safe)
    zero = tl.zeros((BLOCK_D,), tl.float32)            # scalar masks as vectors (the interpreter wants them)
    oa = tl.load(a_ptr + r * s_ar + h * s_ah + d, mask=dmask & (zero + wa > 0), other=0.0).to(tl.float32)
    ob = tl.load(b_ptr + r * s_br + h * s_bh + d, mask=dmask & (zero + wb > 0), other=0.0).to(tl.float32)
    l = wa + wb
    seen = l > 0
    out = (oa * wa + ob * wb) / tl.where(seen, l, 1.0)
    row = r * NUM_HEADS + h
    tl.store(out_ptr + row * HEAD_DIM + d, out.to(out_ptr.dtype.element_ty), mask=dmask)
    tl.store(lse_ptr + row, tl.where(seen, (m + tl.math.log2(tl.where(seen, l, 1.0))) * LN2, float("-inf")))


# ---------------------------------------------------------------------------------- launchers
MERGE_BLOCK_P = 16       # parts per tile: 16 x 128 fp32 is 16 registers a thread at 4 warps


def _block_d(d: int) -> int:
    return max(triton.next_power_of_2(d), 16)


def _warps(block_d: int) -> int:
    # 256 wide (head_dim 192 / 256) at 4 warps spilled 16 bytes on sm_90 (fp16 merge_states,
    # compile matrix); 8 warps none.
    return 8 if block_d >= 256 else 4 if block_d >= 128 else 2


def merge_segments(part_o, part_lse, merge_indptr, num_rows, out, lse, *, max_rows: int, rows=None,
                   grid_rows: int | None = None):
    """The split-KV merge: entry i of the merge list combines rows merge_indptr[i]:merge_indptr[i+1]
    of part_o [parts, heads, d] / part_lse [parts, heads] (float32, contiguous) into output row
    rows[i] (int32 [max_rows]; None: row i) of out (and lse). Entries with no parts are not touched;
    entries >= num_rows[0] do not exist. out has unit stride along d.
    Launch only: no host sync. The grid is grid_rows * heads programs (default max_rows), each
    walking the list with stride grid_rows: a short list costs little under a large max_rows."""
    heads, d = part_o.shape[1], part_o.shape[2]
    if merge_indptr.numel() < max_rows + 1 or (rows is not None and rows.numel() < max_rows):
        raise ValueError(f"merge list sized for max_rows={max_rows} needs merge_indptr >= {max_rows + 1} and rows >= "
                         f"{max_rows} entries; got {merge_indptr.numel()} and {None if rows is None else rows.numel()}")
    bd = _block_d(d)
    ret = lse is not None
    grid_rows = max(1, min(max_rows, grid_rows or max_rows))
    merge_kernel[(grid_rows * heads,)](
        part_o, part_lse, part_o.stride(0), 0, part_o.stride(1), part_lse.stride(0), 0, part_lse.stride(1),
        merge_indptr, 0, num_rows, rows if rows is not None else merge_indptr, grid_rows, max_rows,
        out, out.stride(0), out.stride(1), lse if ret else part_lse, lse.stride(0) if ret else 0,
        lse.stride(1) if ret else 0,
        NUM_HEADS=heads, HEAD_DIM=d, BLOCK_D=bd, BLOCK_P=MERGE_BLOCK_P, SEGMENTED=True, HAS_ROWS=rows is not None,
        RETURN_LSE=ret, num_warps=_warps(bd),
    )


def merge_states(outs, lses):
    """outs [n, ..., heads, d], lses [n, ..., heads] float32 -> (out [..., heads, d] in outs' dtype,
    lse [..., heads] float32)."""
    import torch
    n, heads, d = outs.shape[0], outs.shape[-2], outs.shape[-1]
    mid = tuple(outs.shape[1:-2])
    rows = 1
    for s in mid:
        rows *= s
    o = outs.reshape(n, rows, heads, d)
    if o.stride(-1) != 1:
        o = o.contiguous()
    lv = lses.reshape(n, rows, heads)
    out = torch.empty(rows, heads, d, dtype=outs.dtype, device=outs.device)
    lse = torch.empty(rows, heads, dtype=torch.float32, device=outs.device)
    if rows * heads:
        bd = _block_d(d)
        merge_kernel[(rows * heads,)](
            o, lv, o.stride(0), o.stride(1), o.stride(2), lv.stride(0), lv.stride(1), lv.stride(2),
            lv, n, lv, lv, 1, 1,
            out, out.stride(0), out.stride(1), lse, lse.stride(0), lse.stride(1),
            NUM_HEADS=heads, HEAD_DIM=d, BLOCK_D=bd, BLOCK_P=min(MERGE_BLOCK_P, max(triton.next_power_of_2(n), 2)),
            SEGMENTED=False, HAS_ROWS=False, RETURN_LSE=True, num_warps=_warps(bd),
        )
    return out.reshape(*mid, heads, d), lse.reshape(*mid, heads)


def merge_state(out_a, lse_a, out_b, lse_b):
    """Two partial states over disjoint KV ranges: out_* [..., heads, d], lse_* [..., heads]
    float32 -> (out in out_a's dtype, lse float32)."""
    import torch
    heads, d = out_a.shape[-2], out_a.shape[-1]
    lead = tuple(out_a.shape[:-2])
    rows = 1
    for s in lead:
        rows *= s

    def rows_view(t, last):
        v = t.reshape(rows, heads, *last)
        return v if not last or v.stride(-1) == 1 else v.contiguous()

    a, b = rows_view(out_a, (d,)), rows_view(out_b, (d,))
    la, lb = rows_view(lse_a, ()), rows_view(lse_b, ())
    out = torch.empty(rows, heads, d, dtype=out_a.dtype, device=out_a.device)
    lse = torch.empty(rows, heads, dtype=torch.float32, device=out_a.device)
    if rows * heads:
        bd = _block_d(d)
        merge_two_kernel[(rows * heads,)](
            a, la, b, lb, out, lse,
            a.stride(0), a.stride(1), la.stride(0), la.stride(1), b.stride(0), b.stride(1),
            lb.stride(0), lb.stride(1),
            NUM_HEADS=heads, HEAD_DIM=d, BLOCK_D=bd, num_warps=_warps(bd),
        )
    return out.reshape(*lead, heads, d), lse.reshape(*lead, heads)


# ---------------------------------------------------------------------------------- compile specs
def compile_specs():
    """merge_kernel (segmented for split-KV decode, with and without lse; uniform for merge_states)
    and merge_two_kernel, for the head dims attn supports and each output dtype."""
    from .specs import KernelSpec, signature
    specs = []
    for dt in ("fp16", "bf16", "fp32"):
        for hd in (64, 80, 96, 128, 192, 256):
            bd = _block_d(hd)
            opts = dict(num_warps=_warps(bd))
            # segmented_rows: BatchAttention's merge list (output rows named by a row list)
            for name, seg, ret, rows in (("segmented", True, False, False), ("segmented_lse", True, True, False),
                                         ("segmented_rows", True, False, True), ("states", False, True, False)):
                if dt == "fp32" and seg:
                    continue                        # decode outputs are 16-bit
                cx = dict(NUM_HEADS=32, HEAD_DIM=hd, BLOCK_D=bd, BLOCK_P=MERGE_BLOCK_P, SEGMENTED=seg,
                          HAS_ROWS=rows, RETURN_LSE=ret, s_lh=1)   # unit strides: the JIT makes them constexpr
                if not seg:
                    cx["grid_rows"] = cx["max_rows"] = 1    # merge_states passes 1: the JIT specializes it
                if ret:
                    cx["s_yh"] = 1
                # zeros (segmented rows, an absent lse) are multiples of 16, as are the row strides
                aligned = ("s_on", "s_ln", "s_xr", "s_or", "s_lr", "s_yr") + (() if ret else ("s_yh",))
                sig = signature(merge_kernel, cx, o_ptr="*fp32" if seg else f"*{dt}", lse_ptr="*fp32",
                                indptr_ptr="*i32", num_rows_ptr="*i32", rows_ptr="*i32", out_ptr=f"*{dt}",
                                out_lse_ptr="*fp32")
                specs.append(KernelSpec("merge", f"{name}/{dt}/d{hd}", merge_kernel, sig, cx, options=opts,
                                        aligned=aligned))
            cx = dict(NUM_HEADS=32, HEAD_DIM=hd, BLOCK_D=bd, s_lah=1, s_lbh=1)
            sig = signature(merge_two_kernel, cx, a_ptr=f"*{dt}", la_ptr="*fp32", b_ptr=f"*{dt}", lb_ptr="*fp32",
                            out_ptr=f"*{dt}", lse_ptr="*fp32")
            specs.append(KernelSpec("merge", f"two/{dt}/d{hd}", merge_two_kernel, sig, cx, options=opts))
    return specs
