"""Decode (one query token per sequence) by its definition: prefill with q_len 1."""
import torch

from .prefill import prefill


def decode(q, kv, *, sm_scale=None, window_left=-1, softcap=0.0, logits_transform=None, rotary=None,
           return_lse=False, compute_dtype=torch.float32):
    """q [b, q_heads, d]: the query of sequence b sits at position seq_lens[b] - 1."""
    q_indptr = torch.arange(q.shape[0] + 1, dtype=torch.int64)
    return prefill(q, kv, q_indptr, causal=True, sm_scale=sm_scale, window_left=window_left, softcap=softcap,
                   logits_transform=logits_transform, rotary=rotary, return_lse=return_lse,
                   compute_dtype=compute_dtype)
