"""torch.library custom ops: `torch.ops.attn.prefill`, `.decode`, `.merge_state`, `.merge_states`.

torch.compile and CUDA-graph capture see each operation as one opaque node with a fake (meta)
implementation for shape propagation. A KVCache is passed as its tensors plus the layout name;
a logits transform by its registered name (attn.custom_ops.register_transform), since a schema
holds tensors and scalars only. attn.prefill / attn.decode route here while compiling.
"""
from __future__ import annotations

import torch

from attn.layouts.kvcache import KVCache

_transforms: dict[str, object] = {}


def register_transform(t) -> str:
    """Make a LogitsTransform reachable from a custom op by name."""
    _transforms[t.name] = t
    return t.name


def _kv(k, v, layout, page_indptr, page_indices, seq_lens):
    return KVCache.from_parts(k, v, layout, page_indptr, page_indices, seq_lens)


def _rotary(cache, style, rotary_dim, rotate_k):
    if cache is None:
        return None
    from attn.rotary import Rotary
    return Rotary(cache, style, rotary_dim, rotate_k)


@torch.library.custom_op("attn::prefill", mutates_args=())
def prefill_op(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, layout: str, page_indptr: torch.Tensor,
               page_indices: torch.Tensor | None, seq_lens: torch.Tensor, q_indptr: torch.Tensor, causal: bool,
               sm_scale: float, window_left: int, softcap: float, transform: str,
               custom_mask: torch.Tensor | None, rotary_cache: torch.Tensor | None, rotary_style: str,
               rotary_dim: int, rotate_k: bool, backend: str) -> tuple[torch.Tensor, torch.Tensor]:
    from attn.ops import prefill
    out, lse = prefill(q, _kv(k, v, layout, page_indptr, page_indices, seq_lens), q_indptr, causal=causal,
                       sm_scale=sm_scale, window_left=window_left, softcap=softcap,
                       logits_transform=_transforms[transform] if transform else None, custom_mask=custom_mask,
                       rotary=_rotary(rotary_cache, rotary_style, rotary_dim, rotate_k), return_lse=True,
                       backend=backend)
    return out, lse


@prefill_op.register_fake
def _(q, k, v, layout, page_indptr, page_indices, seq_lens, q_indptr, causal, sm_scale, window_left, softcap,
      transform, custom_mask, rotary_cache, rotary_style, rotary_dim, rotate_k, backend):
    return torch.empty_like(q), q.new_empty(q.shape[:2], dtype=torch.float32)


@torch.library.custom_op("attn::decode", mutates_args=())
def decode_op(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, layout: str, page_indptr: torch.Tensor,
              page_indices: torch.Tensor | None, seq_lens: torch.Tensor, sm_scale: float, window_left: int,
              softcap: float, transform: str, rotary_cache: torch.Tensor | None, rotary_style: str,
              rotary_dim: int, backend: str) -> tuple[torch.Tensor, torch.Tensor]:
    from attn.ops import decode
    out, lse = decode(q, _kv(k, v, layout, page_indptr, page_indices, seq_lens), sm_scale=sm_scale,
                      window_left=window_left, softcap=softcap,
                      logits_transform=_transforms[transform] if transform else None,
                      rotary=_rotary(rotary_cache, rotary_style, rotary_dim, False), return_lse=True, backend=backend)
    return out, lse


@decode_op.register_fake
def _(q, k, v, layout, page_indptr, page_indices, seq_lens, sm_scale, window_left, softcap, transform,
      rotary_cache, rotary_style, rotary_dim, backend):
    return torch.empty_like(q), q.new_empty(q.shape[:2], dtype=torch.float32)


@torch.library.custom_op("attn::merge_states", mutates_args=())
def merge_states_op(outs: torch.Tensor, lses: torch.Tensor, backend: str) -> tuple[torch.Tensor, torch.Tensor]:
    from attn.ops import merge_states
    out, lse = merge_states(outs, lses, backend=backend)
    return out.clone(), lse.clone()


@merge_states_op.register_fake
def _(outs, lses, backend):
    return outs.new_empty(outs.shape[1:]), lses.new_empty(lses.shape[1:])


def prefill_call(q, kv, q_indptr, *, causal, sm_scale, window_left, softcap, transform, custom_mask, rotary,
                 return_lse, backend):
    """attn.prefill under torch.compile: flatten the descriptor into the op's schema."""
    import math
    name = register_transform(transform) if transform is not None else ""
    out, lse = torch.ops.attn.prefill(
        q, kv.k, kv.v, kv.layout.name, kv.page_indptr, kv.page_indices, kv.seq_lens, q_indptr, causal,
        1.0 / math.sqrt(q.shape[-1]) if sm_scale is None else float(sm_scale), window_left, float(softcap), name,
        custom_mask, rotary.cos_sin_cache if rotary else None, rotary.style if rotary else "neox",
        rotary.rotary_dim if rotary else 0, bool(rotary and rotary.rotate_k), backend)
    return (out, lse) if return_lse else out


def decode_call(q, kv, *, sm_scale, window_left, softcap, transform, rotary, return_lse, backend):
    import math
    name = register_transform(transform) if transform is not None else ""
    out, lse = torch.ops.attn.decode(
        q, kv.k, kv.v, kv.layout.name, kv.page_indptr, kv.page_indices, kv.seq_lens,
        1.0 / math.sqrt(q.shape[-1]) if sm_scale is None else float(sm_scale), window_left, float(softcap), name,
        rotary.cos_sin_cache if rotary else None, rotary.style if rotary else "neox",
        rotary.rotary_dim if rotary else 0, backend)
    return (out, lse) if return_lse else out
