"""Rotary embedding, by its definition: the "torch" backend of attn.rotary and the oracle of its tests."""
from __future__ import annotations

import torch


def rotate(x: torch.Tensor, positions: torch.Tensor, cos_sin_cache: torch.Tensor, style: str = "neox",
           rotary_dim: int | None = None) -> torch.Tensor:
    """x [..., heads, d] rotated at positions [...] (one per row); computed in x's dtype promoted to
    at least float32. cos_sin_cache [max_pos, W]: cos in the first half, sin in the second; the
    first rotary_dim/2 frequencies are used (rotary_dim defaults to W, the usual case)."""
    w = cos_sin_cache.shape[-1]
    r = w if rotary_dim is None else rotary_dim
    ct = torch.promote_types(x.dtype, torch.float32)
    cs = cos_sin_cache.to(ct)[positions.to(torch.int64)]           # [..., W]
    cos, sin = cs[..., : r // 2].unsqueeze(-2), cs[..., w // 2: w // 2 + r // 2].unsqueeze(-2)
    xr = x[..., :r].to(ct)
    if style == "neox":
        x1, x2 = xr[..., : r // 2], xr[..., r // 2:]
        out = torch.cat([x1 * cos - x2 * sin, x2 * cos + x1 * sin], dim=-1)
    elif style == "gptj":
        x1, x2 = xr[..., 0::2], xr[..., 1::2]
        out = torch.stack([x1 * cos - x2 * sin, x2 * cos + x1 * sin], dim=-1).flatten(-2)
    else:
        raise ValueError(f"style must be 'neox' or 'gptj'; got {style!r}")
    return torch.cat([out, x[..., r:].to(ct)], dim=-1)


def token_positions(n_tokens: int, positions=None, offsets=None, indptr=None, seq_len: int | None = None):
    """int64 [n_tokens] positions from the per-token form, or from per-sequence offsets: for
    [b, s, ...] inputs (seq_len=s) token (i, j) sits at offsets[i] + j; for ragged inputs, token t of
    sequence b (indptr[b] <= t < indptr[b+1]) sits at offsets[b] + t - indptr[b]."""
    if positions is not None:
        return positions.reshape(-1).to(torch.int64)
    off = offsets.to(torch.int64)
    if seq_len is not None:
        return (off[:, None] + torch.arange(seq_len, device=off.device)).reshape(-1)
    ip = indptr.to(torch.int64)
    t = torch.arange(n_tokens, device=off.device)
    b = torch.searchsorted(ip, t, right=True) - 1
    return off[b] + t - ip[b]


def apply(q, k, cos_sin_cache, style, rotary_dim, inplace, **pos):
    """attn.rotary.apply on validated inputs (q, k [tokens, h, d] or [b, s, h, d])."""
    dense = q.dim() == 4
    p = token_positions(q.shape[0] * q.shape[1] if dense else q.shape[0], seq_len=q.shape[1] if dense else None,
                        **pos)
    p = p.view(q.shape[:2]) if dense else p
    q_out = rotate(q, p, cos_sin_cache, style, rotary_dim).to(q.dtype)
    k_out = rotate(k, p, cos_sin_cache, style, rotary_dim).to(k.dtype)
    if inplace:
        q.copy_(q_out)
        k.copy_(k_out)
        return q, k
    return q_out, k_out


def apply_and_write_kv(q, k_new, v_new, cos_sin_cache, kv, slot_mapping, style, rotary_dim, inplace, **pos):
    """attn.rotary.apply_and_write_kv on validated inputs: rotate, then write_kv's torch path."""
    from attn.layouts import write_kv
    q_out, k_rot = apply(q, k_new, cos_sin_cache, style, rotary_dim, inplace=False, **pos)
    ok = (slot_mapping >= 0) & (slot_mapping < kv.num_pages * kv.page_size)
    write_kv(kv, k_rot[ok], v_new[ok], slot_mapping[ok], backend="torch")
    if inplace:
        q.copy_(q_out)
        return q
    return q_out
