"""Backend "triton" of attn.decode: split-KV over the batch, GQA heads packed into the M tile,
partial results combined by merge_states."""
from __future__ import annotations

import math

import numpy as np
import torch

from attn import configs, platform
from attn.layouts import validation as V
from attn.scheduling import WorkList, decode_items
from .attention import launch


def config_for(q, kv):
    return configs.lookup("decode", platform.for_tensor(q), head_dim=kv.head_dim,
                          group=q.shape[1] // kv.num_kv_heads, page_size=kv.page_size, dtype=str(q.dtype)[6:])


def choose_splits(kv_lens: np.ndarray, num_kv_heads: int, num_sms: int, block_n: int,
                  num_splits: int | None = None) -> np.ndarray:
    """Chunks per sequence: enough programs to fill the device, longer sequences cut more
    (a balanced split for mixed lengths), no chunk shorter than a few blocks."""
    b = len(kv_lens)
    if num_splits is not None:
        return np.full(b, num_splits)
    if b == 0:
        return np.zeros(0, np.int64)
    target = 2 * num_sms                               # programs wanted in flight
    total = max(int(kv_lens.sum()), 1)
    per_prog = max(total * num_kv_heads // target, 4 * block_n)   # tokens per program
    return np.maximum(1, np.ceil(kv_lens / per_prog)).astype(np.int64)


def decode(q, kv, *, sm_scale=None, window_left=-1, softcap=0.0, logits_transform=None, rotary=None,
           return_lse=False, num_splits=None):
    if rotary is not None:
        V.fail("rotary is not supported by the triton decode yet; rotate q with attn.rotary.apply first",
               NotImplementedError)
    b, hq, d = q.shape
    cfg = config_for(q, kv)
    kv_lens = kv.seq_lens.to("cpu", torch.int64).numpy()
    splits = choose_splits(kv_lens, kv.num_kv_heads, platform.for_tensor(q).num_sms, cfg["BLOCK_N"], num_splits)
    items, merge_indptr = decode_items(kv_lens, splits, cfg["BLOCK_N"])
    work = WorkList.build(items, q.device)
    q_indptr = torch.arange(b + 1, dtype=torch.int32, device=q.device)
    out = torch.empty_like(q)
    lse = torch.empty(b, hq, dtype=torch.float32, device=q.device) if return_lse else None
    n_parts = int(merge_indptr[-1])
    part_o = torch.empty(max(n_parts, 1), hq, d, dtype=torch.float32, device=q.device) if n_parts else None
    part_lse = torch.empty(max(n_parts, 1), hq, dtype=torch.float32, device=q.device) if n_parts else None
    if b:
        launch(q, kv, q_indptr, work, out, lse, cfg, causal=False,
               sm_scale=1.0 / math.sqrt(d) if sm_scale is None else sm_scale, window_left=window_left,
               softcap=softcap, transform=logits_transform, return_lse=return_lse, part_o=part_o,
               part_lse=part_lse)
    if n_parts:
        from attn.reference.merge import merge_states
        for i in np.nonzero(np.diff(merge_indptr))[0]:
            s, e = merge_indptr[i], merge_indptr[i + 1]
            o, l = merge_states(part_o[s:e], part_lse[s:e])
            out[i] = o.to(out.dtype)
            if return_lse:
                lse[i] = l
    return (out, lse) if return_lse else out
