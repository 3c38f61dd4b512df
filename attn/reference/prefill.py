"""Attention of ragged queries over a KVCache, by its definition, one sequence at a time."""
from __future__ import annotations

import math

import torch

from attn.layouts.convert import gather
from attn.layouts import validation as V
from attn.rotary import check_rotary
from .rotary import rotate


def prefill(q, kv, q_indptr, *, causal=True, sm_scale=None, window_left=-1, softcap=0.0,
            logits_transform=None, custom_mask=None, rotary=None, return_lse=False,
            compute_dtype=torch.float32):
    """q [total_q, q_heads, d] with q_indptr [b+1]; queries bottom-right aligned: query i of
    sequence b sits at position kv_len - q_len + i. Returns out [total_q, q_heads, d] in q's dtype
    (and lse [total_q, q_heads] float32, natural log, -inf where a query sees no key).

    logits_transform: a torch callable (score, batch, q_head, q_pos, kv_pos) -> score on
    broadcastable tensors. custom_mask: bool [sum(q_len * kv_len)], FlashInfer's flattened form
    (True = attend). rotary: attn.Rotary; q is rotated at its position, and K too when
    rotary.rotate_k (a ragged K given un-rotated)."""
    total_q, hq, d = q.shape
    scale = 1.0 / math.sqrt(d) if sm_scale is None else sm_scale
    k_rows, v_rows, kv_ip = gather(kv)
    qi = q_indptr.to("cpu", torch.int64)
    ki = kv_ip.to("cpu", torch.int64)
    if qi.numel() and (qi[0] != 0 or (qi.diff() < 0).any()):
        V.check_indptr_values("q_indptr", qi)
    if custom_mask is not None:
        want = int((qi.diff() * ki.diff()).sum())
        if custom_mask.dim() != 1 or custom_mask.shape[0] != want:
            V.fail(f"custom_mask must be 1-D with sum(q_len * kv_len) = {want} entries; got shape "
                   f"{list(custom_mask.shape)}")
    if rotary is not None:
        check_rotary(rotary, d, q.device, ki.diff().tolist())
    group = hq // kv.num_kv_heads
    out = torch.zeros(total_q, hq, d, dtype=compute_dtype, device=q.device)
    lse = torch.full((total_q, hq), float("-inf"), dtype=torch.float32, device=q.device)
    mask_off = 0
    for b in range(kv.batch_size):
        q0, q1, k0, k1 = int(qi[b]), int(qi[b + 1]), int(ki[b]), int(ki[b + 1])
        lq, lk = q1 - q0, k1 - k0
        if custom_mask is not None:
            m_b = custom_mask[mask_off: mask_off + lq * lk].reshape(lq, lk).to(q.device)
            mask_off += lq * lk
        if lq == 0 or lk == 0:
            continue
        qb = q[q0:q1].to(compute_dtype)
        kb = k_rows[k0:k1].to(compute_dtype)
        vb = v_rows[k0:k1].to(compute_dtype)
        q_pos = torch.arange(lk - lq, lk, device=q.device)
        kv_pos = torch.arange(lk, device=q.device)
        if rotary is not None:
            qb = rotate(qb, q_pos, rotary.cos_sin_cache, rotary.style, rotary.rotary_dim).to(compute_dtype)
            if rotary.rotate_k:
                kb = rotate(kb, kv_pos, rotary.cos_sin_cache, rotary.style, rotary.rotary_dim).to(compute_dtype)
        kb = kb.repeat_interleave(group, dim=1)                    # [lk, hq, d]
        vb = vb.repeat_interleave(group, dim=1)
        s = torch.einsum("qhd,khd->hqk", qb, kb) * scale            # [hq, lq, lk]
        if softcap > 0:
            s = softcap * torch.tanh(s / softcap)
        if logits_transform is not None:
            heads = torch.arange(hq, device=q.device)[:, None, None]
            s = logits_transform(s, b, heads, q_pos[None, :, None], kv_pos[None, None, :])
        keep = torch.ones(lq, lk, dtype=torch.bool, device=q.device)
        if causal:
            keep &= kv_pos[None, :] <= q_pos[:, None]
        if window_left >= 0:
            keep &= kv_pos[None, :] >= q_pos[:, None] - window_left
        if custom_mask is not None:
            keep &= m_b
        s = s.masked_fill(~keep[None], float("-inf"))
        m = s.amax(dim=-1, keepdim=True)
        live = torch.isfinite(m)
        p = torch.exp(s - torch.where(live, m, torch.zeros_like(m)))
        denom = p.sum(dim=-1, keepdim=True)
        o = torch.einsum("hqk,khd->qhd", p / torch.clamp(denom, min=1e-30), vb)
        out[q0:q1] = o
        lse[q0:q1] = torch.where(live, m + torch.log(denom), m).squeeze(-1).T.float()
    out = out.to(q.dtype)
    return (out, lse) if return_lse else out
