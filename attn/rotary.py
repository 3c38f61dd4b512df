"""Rotary position embedding: the cos/sin cache, standalone rotation, rotation fused with the KV
cache write, and attn.Rotary for rotation fused into attention.

    cache = attn.rotary.cos_sin_cache(8192, 128, base=500000.0, scaling={"type": "llama3", "factor": 8.0,
                                      "low_freq_factor": 1.0, "high_freq_factor": 4.0,
                                      "original_max_position": 8192}, device="cuda")
    q, k = attn.rotary.apply(q, k, positions, cache)                        # one launch
    q = attn.rotary.apply_and_write_kv(q, k, v, positions, cache, kv, slot_mapping)   # + the cache write
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import torch

from attn.layouts import validation as V

STYLES = ("neox", "gptj")
BACKENDS = ("auto", "triton", "torch")
_CACHE_DTYPES = (torch.float32, torch.float16, torch.bfloat16, torch.float64)


@dataclass(frozen=True)
class Rotary:
    """Rotate q (and, with rotate_k, a ragged K given un-rotated) inside the attention kernel.

    cos_sin_cache  float [max_position, W]: cos in the first half, sin in the second (cos_sin_cache())
    style          "neox" (halves) or "gptj" (interleaved pairs)
    rotary_dim     dims rotated (<= head_dim); the rest pass through. Default: W. A smaller value
                   rotates with the cache's first rotary_dim/2 frequencies.
    """
    cos_sin_cache: torch.Tensor
    style: str = "neox"
    rotary_dim: int | None = None
    rotate_k: bool = False

    def __post_init__(self):
        _check_style(self.style)
        V.check_tensor("cos_sin_cache", self.cos_sin_cache, dim=2, dtype=_CACHE_DTYPES)
        if not isinstance(self.rotary_dim, (int, type(None))) or isinstance(self.rotary_dim, bool):
            V.fail(f"rotary_dim must be an int or None; got {self.rotary_dim!r}", TypeError)
        if self.rotary_dim is None:
            object.__setattr__(self, "rotary_dim", self.cos_sin_cache.shape[1])
        if self.rotary_dim % 2 or not 0 < self.rotary_dim <= self.cos_sin_cache.shape[1]:
            V.fail(f"rotary_dim must be even and in (0, cos_sin_cache.shape[1]={self.cos_sin_cache.shape[1]}]; "
                   f"got {self.rotary_dim}")


def check_rotary(rotary, head_dim: int, device, kv_lens) -> None:
    """rotary usable on device at head_dim over sequences of kv_lens tokens (host ints): q and K sit
    at positions below kv_len, each reading its row of cos_sin_cache."""
    from attn import platform
    if not isinstance(rotary, Rotary):
        V.fail(f"rotary must be an attn.Rotary; got {type(rotary).__name__}", TypeError)
    cs = rotary.cos_sin_cache
    if cs.device != platform.as_device(device):
        V.fail(f"rotary.cos_sin_cache must be on {device}; got {cs.device}")
    if cs.stride(1) != 1:
        V.fail(f"rotary.cos_sin_cache must have unit stride along its last dim; got strides {cs.stride()}")
    if rotary.rotary_dim > head_dim:
        V.fail(f"rotary.rotary_dim must be <= head_dim={head_dim}; got {rotary.rotary_dim}")
    longest = max((int(n) for n in kv_lens), default=0)
    if longest > cs.shape[0]:
        V.fail(f"rotary.cos_sin_cache must have a row for every position below the longest kv_len={longest}; "
               f"got {cs.shape[0]} rows")


# ------------------------------------------------------------------------------------ the cache

def cos_sin_cache(max_position: int, rotary_dim: int, base: float = 10000.0, scaling: dict | None = None,
                  dtype: torch.dtype = torch.float32, device=None) -> torch.Tensor:
    """The [max_position, rotary_dim] cache: cos(p * inv_freq) then sin(p * inv_freq) (vLLM's
    convention), inv_freq[i] = base ** (-2i / rotary_dim) before scaling; computed in float64, then cast.

    scaling (HuggingFace rope_scaling names; "type" or "rope_type"; "original_max_position" or
    "original_max_position_embeddings"):
      {"type": "linear", "factor": f}            positions divided by f (inv_freq / f)
      {"type": "dynamic", "factor": f, "original_max_position": L}
                                                 NTK-aware base for a context of max_position tokens:
                                                 base * (f * max_position / L - (f - 1)) ** (r / (r - 2)),
                                                 unscaled when max_position <= L
      {"type": "yarn", "factor": f, "original_max_position": L, "beta_fast": 32, "beta_slow": 1,
       "extrapolation_factor": 1, "attn_factor": 1[, "mscale": m, "mscale_all_dim": a]}
                                                 YaRN: per-frequency blend of interpolation and
                                                 extrapolation, cos and sin scaled by
                                                 attn_factor * mscale(f) (DeepSeek's ratio with m, a)
      {"type": "llama3", "factor": f, "low_freq_factor": lo, "high_freq_factor": hi,
       "original_max_position": L}               Llama 3.1: long wavelengths divided by f, short ones
                                                 kept, a smooth blend between

    >>> cache = cos_sin_cache(4096, 128, base=10000.0, scaling={"type": "linear", "factor": 2.0})
    """
    if not isinstance(rotary_dim, int) or rotary_dim <= 0 or rotary_dim % 2:
        V.fail(f"rotary_dim must be a positive even int; got {rotary_dim!r}")
    if not isinstance(max_position, int) or isinstance(max_position, bool) or max_position <= 0:
        V.fail(f"max_position must be a positive int; got {max_position!r}")
    if not math.isfinite(base) or base <= 1:
        V.fail(f"base must be a finite number > 1; got {base!r}")
    if dtype not in _CACHE_DTYPES:
        V.fail(f"dtype must be one of {', '.join(map(str, _CACHE_DTYPES))}; got {dtype}", TypeError)
    exps = torch.arange(0, rotary_dim, 2, dtype=torch.float64) / rotary_dim
    inv_freq = base ** -exps
    mscale = 1.0
    if scaling:
        kind, get = _scaling_kind(scaling)
        factor = float(get("factor"))
        if not math.isfinite(factor) or factor <= 0:
            V.fail(f"scaling['factor'] must be a finite positive number; got {factor}")
        if kind in ("dynamic", "yarn", "llama3") and int(get("original_max_position")) <= 0:
            V.fail(f"scaling['original_max_position'] must be positive; got {get('original_max_position')}")
        if kind == "dynamic" and rotary_dim < 4:
            V.fail(f"dynamic scaling needs rotary_dim >= 4 (its exponent is r / (r - 2)); got {rotary_dim}")
        if kind == "linear":
            inv_freq = inv_freq / factor
        elif kind == "dynamic":
            orig = int(get("original_max_position"))
            if max_position > orig:
                ntk_base = base * (factor * max_position / orig - (factor - 1)) ** (rotary_dim / (rotary_dim - 2))
                inv_freq = ntk_base ** -exps
        elif kind == "yarn":
            orig = int(get("original_max_position"))
            beta_fast, beta_slow = float(get("beta_fast", 32)), float(get("beta_slow", 1))
            extrapolation = float(get("extrapolation_factor", 1.0))

            def dim_of(rotations):     # the dim whose wavelength fits `rotations` times in orig
                return rotary_dim * math.log(orig / (rotations * 2 * math.pi)) / (2 * math.log(base))
            low = max(math.floor(dim_of(beta_fast)), 0)
            high = min(math.ceil(dim_of(beta_slow)), rotary_dim - 1)
            if high == low:
                high += 0.001           # avoid a division by zero in the ramp
            ramp = ((torch.arange(rotary_dim // 2, dtype=torch.float64) - low) / (high - low)).clamp(0, 1)
            keep = (1 - ramp) * extrapolation        # 1: extrapolate (original frequency)
            inv_freq = inv_freq / factor * (1 - keep) + inv_freq * keep
            m, m_all = get("mscale", None), get("mscale_all_dim", None)
            if m is not None or m_all is not None:
                mscale = _yarn_mscale(factor, float(m or 1.0)) / _yarn_mscale(factor, float(m_all or 0.0))
            else:
                mscale = _yarn_mscale(factor)
            mscale *= float(get("attn_factor", 1.0))
        elif kind == "llama3":
            orig = int(get("original_max_position"))
            lo, hi = float(get("low_freq_factor")), float(get("high_freq_factor"))
            if hi <= lo:
                V.fail(f"scaling['high_freq_factor'] must be > low_freq_factor={lo}; got {hi}")
            wavelen = 2 * math.pi / inv_freq
            smooth = ((orig / wavelen - lo) / (hi - lo)).clamp(0, 1)   # 0: long waves, 1: short ones
            inv_freq = (1 - smooth) * inv_freq / factor + smooth * inv_freq
    freqs = torch.arange(max_position, dtype=torch.float64)[:, None] * inv_freq[None, :]
    return (torch.cat([freqs.cos(), freqs.sin()], dim=-1) * mscale).to(dtype=dtype, device=device)


def _scaling_kind(scaling: dict):
    if not isinstance(scaling, dict):
        V.fail(f"scaling must be a dict like {{'type': 'linear', 'factor': 2.0}}; got {type(scaling).__name__}",
               TypeError)
    kind = scaling.get("type", scaling.get("rope_type"))
    kinds = ("linear", "dynamic", "yarn", "llama3")
    if kind not in kinds:
        V.fail(f"scaling['type'] must be one of {kinds}; got {kind!r}")
    aliases = {"original_max_position": "original_max_position_embeddings"}
    missing = object()

    def get(key, default=missing):
        val = scaling.get(key, scaling.get(aliases.get(key, key), default))
        if val is missing:
            V.fail(f"scaling of type {kind!r} needs {key!r}; got keys {sorted(scaling)}")
        return val
    return kind, get


def _yarn_mscale(factor: float, mscale: float = 1.0) -> float:
    return 0.1 * mscale * math.log(factor) + 1.0 if factor > 1 else 1.0


# ------------------------------------------------------------------------------------ rotation

def apply(q, k, positions=None, cos_sin_cache=None, style: str = "neox", rotary_dim: int | None = None,
          inplace: bool = False, backend: str = "auto", *, offsets=None, indptr=None):
    """Rotate q and k at their tokens' positions, in one launch.

    q              [tokens, q_heads, d] or [b, s, q_heads, d]; fp16/bf16/fp32, unit stride along d
                   (other strides free: a view into a fused qkv tensor works, in place too)
    k              [tokens, kv_heads, d] or [b, s, kv_heads, d], same form and d as q
    positions      int32/int64 [tokens] (or [b, s]): each token's position, in [0, max_position)
    cos_sin_cache  float [max_position, W] from cos_sin_cache(); fp32 recommended
    style          "neox" (rotate halves: Llama, most models) or "gptj" (rotate interleaved pairs)
    rotary_dim     dims rotated, even, <= d (default W); dims past it are copied unchanged
    inplace        rotate q and k in their own storage and return them
    backend        "triton" (GPU, or CPU under TRITON_INTERPRET=1), "torch" (reference), "auto"
                   (triton on a GPU, torch on the CPU)
    offsets, indptr  instead of positions (FlashInfer's apply_rope form): offsets int [b] is each
                   sequence's first position; with [b, s, h, d] inputs token (i, j) sits at
                   offsets[i] + j; with ragged inputs indptr int [b+1] (indptr[-1] == tokens) bounds
                   sequence b's tokens and token t sits at offsets[b] + t - indptr[b]
    Returns (q_rot, k_rot) in q's and k's dtypes (q and k themselves when inplace).

    >>> q, k = attn.rotary.apply(q, k, positions, cache, style="neox")
    >>> q, k = attn.rotary.apply(q, k, cos_sin_cache=cache, offsets=kv_lens - q_lens, indptr=q_indptr)
    """
    key = _memo_key("apply", q, k, positions, cos_sin_cache, offsets, indptr, style, rotary_dim)
    if key is not None and key in _VALIDATED:
        pos = ({"positions": positions} if positions is not None else
               {"offsets": offsets} if indptr is None else {"offsets": offsets, "indptr": indptr})
    else:
        pos = _check_apply(q, k, positions, cos_sin_cache, style, rotary_dim, offsets, indptr)
        _remember(key)
    r = cos_sin_cache.shape[1] if rotary_dim is None else rotary_dim
    if _backend(backend, q, "apply") == "torch":
        from attn.reference.rotary import apply as ref
        return ref(q, k, cos_sin_cache, style, r, inplace, **pos)
    from attn.triton_kernels.rotary import rotary
    q_out = q if inplace else torch.empty(q.shape, dtype=q.dtype, device=q.device)
    k_out = k if inplace else torch.empty(k.shape, dtype=k.dtype, device=k.device)
    rotary(q, k, q_out, k_out, cos_sin_cache, r, style == "neox", **pos)
    return q_out, k_out


def apply_and_write_kv(q, k_new, v_new, positions=None, cos_sin_cache=None, kv=None, slot_mapping=None,
                       style: str = "neox", rotary_dim: int | None = None, inplace: bool = False,
                       backend: str = "auto", *, offsets=None, indptr=None):
    """Rotate q and k_new, and write the rotated k_new and v_new into kv's storage at slot_mapping,
    in one launch (what a server does on every step: vLLM's rotary + reshape_and_cache).

    q              [tokens, q_heads, d] (unit stride along d)
    k_new, v_new   [tokens, kv_heads, d] (unit stride along d), kv_heads and d those of kv
    positions      int32/int64 [tokens] (or offsets [b] + indptr [b+1], as in apply())
    cos_sin_cache  float [max_position, W]
    kv             attn.layouts.KVCache, any layout (NHD, HND, vllm, ragged / token pool); written in
                   place in its dtype
    slot_mapping   int32/int64 [tokens]: page * page_size + offset in page (for ragged / token pool
                   caches, the row); negative entries are padding and skip the write (q is still
                   rotated)
    Returns the rotated q (q itself when inplace); k_new and v_new are not modified.

    >>> q = attn.rotary.apply_and_write_kv(q, k, v, positions, cache, kv, slot_mapping)
    """
    from attn.layouts.kv_write import check_write_args
    from attn.layouts.kvcache import KVCache
    if not isinstance(kv, KVCache):
        V.fail(f"kv must be an attn.layouts.KVCache; got {type(kv).__name__}", TypeError)
    key = _memo_key("write", q, k_new, positions, cos_sin_cache, offsets, indptr, style, rotary_dim,
                    v_new, slot_mapping, kv.k, kv.v, kv.layout.name, kv.page_size, kv.num_kv_heads, kv.head_dim)
    if key is not None and key in _VALIDATED:
        pos = ({"positions": positions} if positions is not None else
               {"offsets": offsets} if indptr is None else {"offsets": offsets, "indptr": indptr})
    else:
        if V.enabled():
            if q.dim() != 3:
                V.fail(f"q must have 3 dims [tokens, q_heads, head_dim] for apply_and_write_kv; got shape {list(q.shape)}")
            check_write_args(kv, k_new, v_new, slot_mapping)
        pos = _check_apply(q, k_new, positions, cos_sin_cache, style, rotary_dim, offsets, indptr, k_name="k_new")
        _remember(key)
    r = cos_sin_cache.shape[1] if rotary_dim is None else rotary_dim
    if _backend(backend, q, "apply_and_write_kv") == "torch":
        from attn.reference.rotary import apply_and_write_kv as ref
        return ref(q, k_new, v_new, cos_sin_cache, kv, slot_mapping, style, r, inplace, **pos)
    from attn.triton_kernels.rotary import rotary
    q_out = q if inplace else torch.empty(q.shape, dtype=q.dtype, device=q.device)
    rotary(q, k_new, q_out, None, cos_sin_cache, r, style == "neox", kv=kv, v=v_new,
           slot_mapping=slot_mapping, **pos)
    return q_out


# ------------------------------------------------------------------------------------ checks

# The "cheap" checks read metadata only (shapes, strides, dtypes, devices): a call whose metadata
# matches one that passed them passes them too, so a serving loop pays for them once per shape.
# Value checks ("full") always run.
_VALIDATED: set = set()
_MEMO_MAX = 1024


def _meta(t):
    if isinstance(t, torch.Tensor):
        return (t.shape, t.stride(), t.dtype, t.device)
    return t if t is None or isinstance(t, (int, str)) else (type(t), id(t))


def _memo_key(*parts):
    if V.get_validation() != "cheap":
        return None
    return tuple(_meta(p) for p in parts)


def _remember(key):
    if key is not None:
        if len(_VALIDATED) >= _MEMO_MAX:
            _VALIDATED.clear()
        _VALIDATED.add(key)

def _check_style(style):
    if style not in STYLES:
        V.fail(f"style must be 'neox' or 'gptj'; got {style!r}")


def _backend(backend: str, t: torch.Tensor, op: str) -> str:
    if backend not in BACKENDS:
        V.fail(f"backend must be one of {BACKENDS} for rotary.{op}; got {backend!r}")
    if backend == "auto":
        return "triton" if t.device.type == "cuda" else "torch"
    if backend == "triton":
        from attn.platform import triton_runs_on
        ok, why = triton_runs_on(t)
        if not ok:
            V.fail(f"backend='triton' for rotary.{op}: {why}", RuntimeError)
    return backend


def _check_apply(q, k, positions, cache, style, rotary_dim, offsets, indptr, k_name="k") -> dict:
    """Validate, and return the position arguments as keywords (positions, or offsets [+ indptr])."""
    pos = ({"positions": positions} if positions is not None else
           {"offsets": offsets} if indptr is None else {"offsets": offsets, "indptr": indptr})
    if not V.enabled():
        return pos
    _check_style(style)
    V.check_tensor("q", q)
    if q.dim() not in (3, 4):
        V.fail(f"q must be [tokens, q_heads, head_dim] or [b, s, q_heads, head_dim]; got shape {list(q.shape)}")
    dev, lead = q.device, tuple(q.shape[:-2])
    V.check_tensor(k_name, k, dim=q.dim(), dtype=V.KV_DTYPES, device=dev)
    V.check_tensor("q", q, dtype=V.KV_DTYPES)
    if tuple(k.shape[:-2]) != lead or k.shape[-1] != q.shape[-1]:
        V.fail(f"{k_name} must have shape [{', '.join(map(str, lead))}, *, {q.shape[-1]}] like q; got {list(k.shape)}")
    for name, t in (("q", q), (k_name, k)):
        if t.stride(-1) != 1:
            V.fail(f"{name} must have unit stride along head_dim; got strides {t.stride()}")
    V.check_tensor("cos_sin_cache", cache, dim=2, dtype=_CACHE_DTYPES, device=dev)
    if cache.stride(1) != 1:
        V.fail(f"cos_sin_cache must have unit stride along its last dim; got strides {cache.stride()}")
    d, w = q.shape[-1], cache.shape[1]
    r = w if rotary_dim is None else rotary_dim
    if w % 2 or not isinstance(r, int) or r <= 0 or r % 2 or r > w or r > d:
        V.fail(f"rotary_dim must be a positive even int <= head_dim={d} and <= cos_sin_cache.shape[1]={w} "
               f"(even); got rotary_dim={r}, cos_sin_cache shape {list(cache.shape)}")
    n = math.prod(lead)
    if (positions is None) == (offsets is None):
        V.fail("give exactly one of positions and offsets (+ indptr); got "
               + ("both" if positions is not None else "neither"))
    if positions is not None:
        if positions.dim() > 1 and tuple(positions.shape) != lead:
            V.fail(f"positions must have shape [{n}] or {list(lead)}; got {list(positions.shape)}")
        V.check_index("positions", positions.reshape(-1) if positions.dim() > 1 else positions, length=n, device=dev)
        if positions.dim() > 1 and not positions.is_contiguous():
            V.fail(f"positions must be contiguous; got strides {positions.stride()}")
        if V.values_enabled("full"):
            V.check_range("positions", positions, 0, cache.shape[0])
        return pos
    if q.dim() == 4:
        if indptr is not None:
            V.fail("indptr is for ragged [tokens, heads, d] inputs; with [b, s, heads, d] give offsets alone")
        V.check_index("offsets", offsets, length=q.shape[0], device=dev)
        if V.values_enabled("full"):
            V.check_range("offsets", offsets, 0, cache.shape[0] - q.shape[1] + 1)
        return pos
    if indptr is None:
        V.fail("offsets with ragged [tokens, heads, d] inputs needs indptr [b+1] (or give positions)")
    V.check_index("indptr", indptr, device=dev)
    V.check_index("offsets", offsets, length=indptr.shape[0] - 1, device=dev)
    if offsets.shape[0] == 0 and n:
        V.fail(f"indptr must describe at least one sequence for {n} tokens; got shape {list(indptr.shape)}")
    if V.values_enabled("full"):
        ip = V.check_indptr_values("indptr", indptr, n, f"tokens={n}")
        if int(ip[-1]) != n:
            V.fail(f"indptr[-1] must equal the number of tokens {n}; got {int(ip[-1])}")
        last = offsets.to("cpu", torch.int64) + (ip[1:] - ip[:-1]) - 1
        V.check_range("offsets", offsets, 0, cache.shape[0])
        V.check_range("offsets + sequence length - 1", last, 0, cache.shape[0], mask=ip[1:] > ip[:-1])
    return pos
