"""Merging partial attention states (out, lse) computed over disjoint KV ranges."""
import torch


def merge_states(outs: torch.Tensor, lses: torch.Tensor):
    """outs [n, ..., heads, d], lses [n, ..., heads] (natural log) -> (out, lse) over all n.
    A part with lse -inf (it saw no keys) contributes nothing; all parts -inf gives 0 and -inf."""
    lses = lses.to(torch.promote_types(lses.dtype, torch.float32))
    m = lses.max(dim=0).values
    m_safe = torch.where(torch.isfinite(m), m, torch.zeros_like(m))
    w = torch.exp(lses - m_safe)                                   # exp(-inf) = 0 for empty parts
    total = w.sum(dim=0)
    out = (outs.to(w.dtype) * w.unsqueeze(-1)).sum(dim=0) / torch.clamp(total, min=1e-30).unsqueeze(-1)
    lse = torch.where(total > 0, m_safe + torch.log(total), torch.full_like(m, float("-inf")))
    return out, lse


def merge_state(out_a, lse_a, out_b, lse_b):
    return merge_states(torch.stack([out_a, out_b]), torch.stack([lse_a, lse_b]))
