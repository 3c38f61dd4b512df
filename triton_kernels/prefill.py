"""Backend "triton" of attn.prefill: plan the batch's query tiles, launch attention.py's kernel.

The functional form plans on every call (one host sync for the lengths); attn.BatchPrefill
plans once and replays."""
from __future__ import annotations

import math

import numpy as np
import torch

from attn import configs, platform
from attn.layouts import validation as V
from attn.scheduling import WorkList, prefill_items
from .attention import launch, tile_shape


def config_for(q, kv):
    return configs.lookup("prefill", platform.for_tensor(q), head_dim=kv.head_dim,
                          group=q.shape[1] // kv.num_kv_heads, page_size=kv.page_size, dtype=str(q.dtype)[6:])


def mask_indptr_for(q_lens: np.ndarray, kv_lens: np.ndarray, custom_mask, device):
    """Start of each request's [q_len, kv_len] bits in FlashInfer's flattened custom mask."""
    sizes = q_lens.astype(np.int64) * kv_lens.astype(np.int64)
    if custom_mask.shape[0] != int(sizes.sum()):
        V.fail(f"custom_mask must have sum(q_len * kv_len) = {int(sizes.sum())} entries; got {custom_mask.shape[0]}")
    return torch.from_numpy(np.concatenate([[0], np.cumsum(sizes)[:-1]])).to(device)


def prefill(q, kv, q_indptr, *, causal=True, sm_scale=None, window_left=-1, softcap=0.0, logits_transform=None,
            custom_mask=None, rotary=None, return_lse=False):
    if rotary is not None:
        V.fail("rotary is not supported by the triton prefill yet; rotate q with attn.rotary.apply first",
               NotImplementedError)
    total_q, hq, d = q.shape
    ip = q_indptr.to("cpu", torch.int64).numpy()
    if ip[-1] != total_q or (np.diff(ip) < 0).any():
        V.check_indptr_values("q_indptr", q_indptr)
        V.fail(f"q_indptr[-1] must equal q's rows {total_q}; got {int(ip[-1])}")
    q_lens = np.diff(ip)
    cfg = config_for(q, kv)
    _, tq, _ = tile_shape(hq // kv.num_kv_heads, cfg["BLOCK_M"])
    work = WorkList.build(prefill_items(q_lens, tq), q.device)
    mask_indptr = None
    if custom_mask is not None:
        kv_lens = kv.seq_lens.to("cpu", torch.int64).numpy()
        mask_indptr = mask_indptr_for(q_lens, kv_lens, custom_mask, q.device)
    out = torch.empty_like(q)
    lse = torch.empty(total_q, hq, dtype=torch.float32, device=q.device) if return_lse else None
    if total_q:
        launch(q, kv, q_indptr, work, out, lse, cfg, causal=causal,
               sm_scale=1.0 / math.sqrt(d) if sm_scale is None else sm_scale, window_left=window_left,
               softcap=softcap, transform=logits_transform, custom_mask=custom_mask, mask_indptr=mask_indptr,
               return_lse=return_lse)
    return (out, lse) if return_lse else out
