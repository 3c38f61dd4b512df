"""attn: portable attention kernels for LLM inference over the KV cache you already have.

    import attn
    kv = attn.layouts.KVCache.paged(k_cache, v_cache, kv_indptr, kv_indices, seq_lens, layout="HND")
    out = attn.prefill(q, kv, q_indptr, causal=True)
    out = attn.decode(q_decode, kv)
"""
from attn import custom_ops, layouts, platform, reference, rotary  # custom_ops: registers torch.ops.attn.*
from attn.layouts import KVCache, set_validation, get_validation
from attn.ops import decode, merge_state, merge_states, prefill
from attn.rotary import Rotary
from attn.transforms import LogitsTransform

__version__ = "0.1.0"


def _map_hip_sources():
    # hip/ has no __init__.py, so that `import hip` from the repository root stays hip-python's.
    # A wheel copies it to attn/hip (a namespace package), but setuptools' editable finder cannot
    # map a folder without __init__.py under attn: in an editable install, map it here.
    import os
    import sys
    from importlib.machinery import ModuleSpec
    from importlib.util import module_from_spec
    here = os.path.dirname(os.path.abspath(__file__))
    src = os.path.join(os.path.dirname(here), "hip")
    if "attn.hip" in sys.modules or os.path.isdir(os.path.join(here, "hip")) or not os.path.isdir(src):
        return
    spec = ModuleSpec("attn.hip", None, is_package=True)
    spec.submodule_search_locations = [src]
    sys.modules["attn.hip"] = globals()["hip"] = module_from_spec(spec)


_map_hip_sources()

__all__ = [
    "prefill", "decode", "merge_state", "merge_states", "KVCache", "Rotary", "LogitsTransform",
    "layouts", "platform", "rotary", "set_validation", "get_validation",
]


def __getattr__(name):
    # Plan/run wrappers load their kernels' modules; keep `import attn` light.
    if name == "compat":
        import importlib
        return importlib.import_module("attn.compat")
    if name in ("BatchDecode", "BatchPrefill", "BatchAttention"):
        from attn import plans
        return getattr(plans, name)
    raise AttributeError(f"module 'attn' has no attribute {name!r}")
