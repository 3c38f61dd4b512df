"""write_kv: put new tokens' K and V into the cache at a slot mapping."""
from __future__ import annotations

import torch

from . import validation as V
from .convert import _scatter
from .kvcache import KVCache


def write_kv(kv: KVCache, k_new: torch.Tensor, v_new: torch.Tensor, slot_mapping: torch.Tensor,
             backend: str = "auto") -> None:
    """Write k_new, v_new [tokens, kv_heads, head_dim] into kv's storage, in place.

    slot_mapping  int32/int64 [tokens]: flat slot page * page_size + offset (for ragged / token
                  pool caches, the row); negative entries are skipped (vLLM pads with -1).
    backend       "triton" (GPU, or CPU under TRITON_INTERPRET=1), "torch", or "auto".

    >>> attn.layouts.write_kv(kv, k_new, v_new, slot_mapping)   # vLLM's reshape_and_cache
    """
    check_write_args(kv, k_new, v_new, slot_mapping)
    if backend == "auto":
        from attn.platform import triton_runs_on
        backend = "triton" if triton_runs_on(k_new)[0] and k_new.device.type == "cuda" else "torch"
    if backend == "triton":
        from attn.triton_kernels.kv_write import kv_write
        kv_write(kv, k_new, v_new, slot_mapping)
    elif backend == "torch":
        keep = slot_mapping >= 0
        slots = slot_mapping[keep].to(torch.int64)
        _scatter(kv, slots // kv.page_size, slots % kv.page_size, k_new[keep], v_new[keep])
    else:
        V.fail(f"backend must be 'triton', 'torch' or 'auto' for write_kv; got {backend!r}")


def check_write_args(kv: KVCache, k_new, v_new, slot_mapping):
    if not V.enabled():
        return
    if not isinstance(kv, KVCache):
        V.fail(f"kv must be an attn.layouts.KVCache; got {type(kv).__name__}", TypeError)
    shape = (None, kv.num_kv_heads, kv.head_dim)
    V.check_tensor("k_new", k_new, shape=shape, device=kv.device)
    V.check_tensor("v_new", v_new, shape=(k_new.shape[0],) + shape[1:], device=kv.device)
    for name, t in (("k_new", k_new), ("v_new", v_new)):
        if t.stride(-1) != 1:
            V.fail(f"{name} must have unit stride along head_dim; got strides {t.stride()}")
    V.check_index("slot_mapping", slot_mapping, length=k_new.shape[0], device=kv.device)
    if V.values_enabled("full"):
        # Negative entries are padding (skipped); the rest must be slots of the pool.
        V.check_range("slot_mapping", slot_mapping, 0, kv.num_pages * kv.page_size, mask=slot_mapping >= 0)
