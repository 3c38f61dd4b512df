"""attn: portable attention kernels for LLM inference over the KV cache you already have.

    import attn
    kv = attn.layouts.KVCache.paged(k_cache, v_cache, kv_indptr, kv_indices, seq_lens, layout="HND")
    out = attn.prefill(q, kv, q_indptr, causal=True)
    out = attn.decode(q_decode, kv)
"""
from attn import layouts, platform, rotary
from attn.layouts import KVCache, set_validation, get_validation
from attn.ops import decode, merge_state, merge_states, prefill
from attn.rotary import Rotary
from attn.transforms import LogitsTransform

__version__ = "0.1.0"

__all__ = [
    "prefill", "decode", "merge_state", "merge_states", "KVCache", "Rotary", "LogitsTransform",
    "layouts", "platform", "rotary", "set_validation", "get_validation",
]


def __getattr__(name):
    # Plan/run wrappers load their kernels' modules; keep `import attn` light.
    if name in ("BatchDecode", "BatchPrefill", "BatchAttention"):
        from attn import plans
        return getattr(plans, name)
    raise AttributeError(f"module 'attn' has no attribute {name!r}")
