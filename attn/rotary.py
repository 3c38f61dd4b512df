"""Rotary position embedding: the cos/sin cache, standalone rotation, rotation fused with the KV
cache write, and attn.Rotary for rotation fused into attention."""
from __future__ import annotations

from dataclasses import dataclass

import torch

from attn.layouts import validation as V


@dataclass(frozen=True)
class Rotary:
    """Rotate q (and, with rotate_k, a ragged K given un-rotated) inside the attention kernel.

    cos_sin_cache  float [max_position, rotary_dim]: cos in the first half, sin in the second
    style          "neox" (halves) or "gptj" (interleaved pairs)
    rotary_dim     dims rotated (<= head_dim); the rest pass through. Default: the cache's width.
    """
    cos_sin_cache: torch.Tensor
    style: str = "neox"
    rotary_dim: int | None = None
    rotate_k: bool = False

    def __post_init__(self):
        if self.style not in ("neox", "gptj"):
            V.fail(f"style must be 'neox' or 'gptj'; got {self.style!r}")
        V.check_tensor("cos_sin_cache", self.cos_sin_cache, dim=2)
        if self.rotary_dim is None:
            object.__setattr__(self, "rotary_dim", self.cos_sin_cache.shape[1])
        if self.rotary_dim % 2 or self.rotary_dim > self.cos_sin_cache.shape[1]:
            V.fail(f"rotary_dim must be even and <= cos_sin_cache.shape[1]={self.cos_sin_cache.shape[1]}; "
                   f"got {self.rotary_dim}")


def cos_sin_cache(max_position: int, rotary_dim: int, base: float = 10000.0, scaling: dict | None = None,
                  dtype: torch.dtype = torch.float32, device=None) -> torch.Tensor:
    """[max_position, rotary_dim]: cos(pos * inv_freq) then sin(pos * inv_freq), inv_freq[i] =
    base ** (-2i / rotary_dim), computed in float64 then cast."""
    if rotary_dim % 2:
        V.fail(f"rotary_dim must be even; got {rotary_dim}")
    if scaling:
        V.fail(f"scaling {scaling!r} is not supported yet", NotImplementedError)
    inv_freq = base ** (-torch.arange(0, rotary_dim, 2, dtype=torch.float64) / rotary_dim)
    freqs = torch.arange(max_position, dtype=torch.float64)[:, None] * inv_freq[None, :]
    return torch.cat([freqs.cos(), freqs.sin()], dim=-1).to(dtype=dtype, device=device)


def apply(q, k, positions, cos_sin_cache, style="neox", rotary_dim=None, inplace=False):
    """Rotate q [tokens, q_heads, d] and k [tokens, kv_heads, d] at positions [tokens]."""
    from attn.reference.rotary import rotate
    q_out = rotate(q, positions, cos_sin_cache, style, rotary_dim).to(q.dtype)
    k_out = rotate(k, positions, cos_sin_cache, style, rotary_dim).to(k.dtype)
    if inplace:
        q.copy_(q_out)
        k.copy_(k_out)
        return q, k
    return q_out, k_out


