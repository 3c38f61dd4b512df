"""flash-attn's entry points on attn: the argument names and semantics users come with.

    from attn.compat import flash_attn_varlen_func, flash_attn_with_kvcache

Both route to attn.prefill / attn.decode over an attn.layouts.KVCache built around the caller's
tensors (read in place). What flash-attn supports and attn does not (dropout, ALiBi slopes, a
right-side window, left padding) raises an error naming the argument.
"""
from __future__ import annotations

import torch

import attn
from attn.layouts import KVCache
from attn.layouts import validation as V


def _window(window_size, causal: bool) -> int:
    left, right = window_size
    if right not in (-1, 0) or (right == 0 and not causal and left != -1):
        V.fail(f"window_size=({left}, {right}): attn supports a left window only (right must be -1, or 0 "
               "with causal=True)")
    return -1 if left is None or left < 0 else int(left)


def _unsupported(**kw):
    for name, (value, ok) in kw.items():
        if not ok:
            V.fail(f"{name}={value!r} is not supported by attn.compat")


def flash_attn_varlen_func(q, k, v, cu_seqlens_q, cu_seqlens_k, max_seqlen_q=None, max_seqlen_k=None,
                           dropout_p: float = 0.0, softmax_scale=None, causal: bool = False,
                           window_size=(-1, -1), softcap: float = 0.0, alibi_slopes=None,
                           deterministic: bool = False, return_attn_probs: bool = False, block_table=None,
                           backend: str = "auto"):
    """flash-attn's varlen attention.

    q            [total_q, q_heads, d]; cu_seqlens_q int32 [b+1]
    k, v         [total_k, kv_heads, d] with cu_seqlens_k [b+1]; or, with block_table
                 [b, max_blocks], paged [num_blocks, block_size, kv_heads, d] (NHD) and
                 cu_seqlens_k giving each sequence's length
    Returns out [total_q, q_heads, d] (and, with return_attn_probs, (out, softmax_lse
    [q_heads, total_q], None): attn never materializes the probabilities).
    max_seqlen_q / max_seqlen_k / deterministic are accepted and not needed.
    """
    _unsupported(dropout_p=(dropout_p, dropout_p == 0.0), alibi_slopes=(alibi_slopes, alibi_slopes is None))
    if block_table is None:
        kv = KVCache.ragged(k, v, cu_seqlens_k)
    else:
        lens = (cu_seqlens_k[1:] - cu_seqlens_k[:-1]).to(torch.int32)
        kv = KVCache.from_page_table(k, v, block_table, lens, layout="NHD")
    out = attn.prefill(q, kv, cu_seqlens_q, causal=causal, sm_scale=softmax_scale,
                       window_left=_window(window_size, causal), softcap=softcap,
                       return_lse=return_attn_probs, backend=backend)
    if return_attn_probs:
        out, lse = out
        return out, lse.transpose(0, 1).contiguous(), None
    return out


def flash_attn_with_kvcache(q, k_cache, v_cache, k=None, v=None, rotary_cos=None, rotary_sin=None,
                            cache_seqlens=None, cache_batch_idx=None, cache_leftpad=None, block_table=None,
                            softmax_scale=None, causal: bool = False, window_size=(-1, -1), softcap: float = 0.0,
                            rotary_interleaved: bool = True, alibi_slopes=None, num_splits: int = 0,
                            return_softmax_lse: bool = False, backend: str = "auto"):
    """flash-attn's attention over a KV cache, appending new tokens first.

    q            [b, seqlen_q, q_heads, d]
    k_cache      [b_cache, seqlen_cache, kv_heads, d] (dense), or paged [num_blocks, block_size,
                 kv_heads, d] with block_table int32 [b, max_blocks]; v_cache likewise
    k, v         optional [b, seqlen_new, kv_heads, d]: written into the cache at positions
                 cache_seqlens[i] .. + seqlen_new (in place), then attended
    rotary_cos, rotary_sin  optional [seqlen_ro, rotary_dim / 2]: q and the new k rotated at their
                 positions (cache_seqlens[i] + j); rotary_interleaved: GPT-J pairs, else NeoX halves
    cache_seqlens int or int32 [b]: tokens already in the cache
    cache_batch_idx optional [b]: which cache row each batch entry uses (dense caches)
    Returns out [b, seqlen_q, q_heads, d] (, softmax_lse [b, q_heads, seqlen_q]).
    """
    _unsupported(cache_leftpad=(cache_leftpad, cache_leftpad is None),
                 alibi_slopes=(alibi_slopes, alibi_slopes is None))
    V.check_tensor("q", q, dim=4)
    b, sq, hq, d = q.shape
    dev = q.device
    if cache_seqlens is None:
        V.fail("cache_seqlens must be given (an int or int32 [b])")
    if isinstance(cache_seqlens, int):
        cache_seqlens = torch.full((b,), cache_seqlens, dtype=torch.int32, device=dev)
    V.check_index("cache_seqlens", cache_seqlens, length=b, device=dev)
    if block_table is None:
        rows = (torch.arange(b, device=dev, dtype=torch.int32) if cache_batch_idx is None
                else cache_batch_idx.to(torch.int32))
        page_table, page_size = rows[:, None], k_cache.shape[1]
    else:
        if cache_batch_idx is not None:
            V.fail("cache_batch_idx applies to dense caches; with block_table, give each entry's pages")
        page_table, page_size = block_table, k_cache.shape[1]
    n_new = 0 if k is None else k.shape[1]
    lens = (cache_seqlens + n_new).to(torch.int32)
    kv = KVCache.from_page_table(k_cache, v_cache, page_table, lens, layout="NHD")

    rotary = None
    if rotary_cos is not None:
        if rotary_sin is None:
            V.fail("rotary_sin must be given with rotary_cos")
        cache = torch.cat([rotary_cos, rotary_sin], dim=-1).float()
        style = "gptj" if rotary_interleaved else "neox"
        qpos = (cache_seqlens[:, None] + torch.arange(sq, device=dev)[None, :]).reshape(-1)
        if n_new:
            kpos = (cache_seqlens[:, None] + torch.arange(n_new, device=dev)[None, :]).reshape(-1)
            _, k = attn.rotary.apply(k.reshape(b * n_new, -1, d), k.reshape(b * n_new, -1, d), kpos, cache,
                                     style=style)
            k = k.reshape(b, n_new, -1, d)
        rotary = (qpos, cache, style)
    if n_new:
        if v is None:
            V.fail("v must be given with k")
        pos = cache_seqlens[:, None].to(torch.int64) + torch.arange(n_new, device=dev)[None, :]
        pages = page_table.to(torch.int64).gather(1, pos // page_size)
        slots = (pages * page_size + pos % page_size).reshape(-1)
        attn.layouts.write_kv(kv, k.reshape(b * n_new, -1, d).contiguous(), v.reshape(b * n_new, -1, d).contiguous(),
                              slots)

    q_rows = q.reshape(b * sq, hq, d)
    if rotary is not None:
        qpos, cache, style = rotary
        q_rows, _ = attn.rotary.apply(q_rows, q_rows[:, :1], qpos, cache, style=style)
    q_indptr = torch.arange(b + 1, device=dev, dtype=torch.int32) * sq
    # flash-attn's causal mask is bottom-right aligned, like attn's; with seqlen_q 1 it is a no-op.
    out = attn.prefill(q_rows, kv, q_indptr, causal=causal, sm_scale=softmax_scale,
                       window_left=_window(window_size, causal), softcap=softcap,
                       return_lse=return_softmax_lse, backend=backend)
    if return_softmax_lse:
        out, lse = out
        return out.reshape(b, sq, hq, d), lse.reshape(b, sq, hq).transpose(1, 2).contiguous()
    return out.reshape(b, sq, hq, d)
