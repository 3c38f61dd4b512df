"""Rotary embedding, by its definition."""
import torch


def rotate(x: torch.Tensor, positions: torch.Tensor, cos_sin_cache: torch.Tensor, style: str = "neox",
           rotary_dim: int | None = None) -> torch.Tensor:
    """x [..., heads, d] rotated at positions [...] (one per row); computed in x's dtype promoted to
    at least float32. cos_sin_cache [max_pos, rotary_dim]: cos in the first half, sin in the second."""
    r = cos_sin_cache.shape[-1] if rotary_dim is None else rotary_dim
    ct = torch.promote_types(x.dtype, torch.float32)
    cs = cos_sin_cache.to(ct)[positions.to(torch.int64)]           # [..., r]
    cos, sin = cs[..., : r // 2].unsqueeze(-2), cs[..., r // 2: r].unsqueeze(-2)
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
