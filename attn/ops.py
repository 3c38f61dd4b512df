"""The functional API: attn.prefill, attn.decode, attn.merge_state(s).

Each call validates (attn.layouts.validation), picks a backend (attn.dispatch) and runs it.
Under torch.compile the same operations go through `torch.ops.attn.*` custom ops (attn.custom_ops),
so the compiler and CUDA-graph capture see one opaque node each.
"""
from __future__ import annotations

import math

import torch

from attn import dispatch
from attn.layouts import validation as V
from attn.layouts.kvcache import KVCache
from attn.transforms import as_transform


# ------------------------------------------------------------------------------ checks
def check_options(sm_scale, window_left, softcap):
    if sm_scale is not None and not (isinstance(sm_scale, (int, float)) and math.isfinite(sm_scale) and sm_scale > 0):
        V.fail(f"sm_scale must be a finite number > 0 or None; got {sm_scale!r}")
    if not isinstance(window_left, int) or window_left < -1:
        V.fail(f"window_left must be an int >= -1 (-1: no window); got {window_left!r}")
    if not isinstance(softcap, (int, float)) or softcap < 0 or not math.isfinite(softcap):
        V.fail(f"softcap must be a finite number >= 0 (0: off); got {softcap!r}")


def check_q(name: str, q, kv: KVCache, rows: int | None):
    if not isinstance(kv, KVCache):
        V.fail(f"kv must be an attn.layouts.KVCache; got {type(kv).__name__}", TypeError)
    V.check_tensor(name, q, dim=3, device=kv.device)
    if q.dtype != kv.dtype:
        V.fail(f"{name} must have the KV cache's dtype {kv.dtype}; got {q.dtype}", TypeError)
    if rows is not None and q.shape[0] != rows:
        V.fail(f"{name} must have {rows} rows (one per sequence of kv); got {q.shape[0]}")
    if q.shape[2] != kv.head_dim:
        V.fail(f"{name}'s head_dim must match the KV cache's head_dim={kv.head_dim}; got {q.shape[2]}")
    V.check_head_dim("head_dim", kv.head_dim)
    V.check_gqa(q.shape[1], kv.num_kv_heads)
    if q.stride(-1) != 1:
        V.fail(f"{name} must have unit stride along head_dim; got strides {q.stride()}")


def check_q_indptr(q, q_indptr, kv: KVCache, custom_mask):
    V.check_index("q_indptr", q_indptr, length=kv.batch_size + 1, device=q.device)
    if custom_mask is not None:
        V.check_tensor("custom_mask", custom_mask, dim=1, dtype=torch.bool, device=q.device)
    if not V.values_enabled("full"):
        return
    ip = V.check_indptr_values("q_indptr", q_indptr)
    if int(ip[-1]) != q.shape[0]:
        V.fail(f"q_indptr[-1] must equal q's rows {q.shape[0]}; got {int(ip[-1])}")
    q_lens = ip[1:] - ip[:-1]
    kv_lens = kv.seq_lens.to("cpu", torch.int64)
    longer = torch.nonzero(q_lens > kv_lens).flatten()
    if longer.numel():
        i = int(longer[0])
        V.fail(f"sequence {i} has q_len={int(q_lens[i])} > kv_len={int(kv_lens[i])}: queries are bottom-right "
               "aligned to the KV and must be among its tokens")
    if custom_mask is not None:
        want = int((q_lens * kv_lens).sum())
        if custom_mask.shape[0] != want:
            V.fail(f"custom_mask must have sum(q_len * kv_len) = {want} entries; got {custom_mask.shape[0]}")


def _transform_for(backend: str, transform):
    if transform is None:
        return None
    fn = transform.reference_fn if backend == "torch" else transform.triton_fn
    if fn is None:
        need = "a torch callable" if backend == "torch" else "a @triton.jit function"
        V.fail(f"logits_transform has no {backend!r} form: backend {backend!r} needs {need}; "
               "pass attn.LogitsTransform(triton_fn, reference_fn) to run it on every backend")
    return fn


# ------------------------------------------------------------------------------ operations
def prefill(q, kv: KVCache, q_indptr, causal: bool = True, sm_scale: float | None = None, window_left: int = -1,
            softcap: float = 0.0, logits_transform=None, custom_mask=None, rotary=None, return_lse: bool = False,
            backend: str = "auto"):
    """Attention of a ragged batch of queries over a KV cache (prefill, or extend / chunked prefill).

    q            [total_q, q_heads, head_dim], the cache's dtype; q_heads a multiple of kv_heads
    kv           attn.layouts.KVCache in any layout, read in place
    q_indptr     int32/int64 [b+1]: sequence b's queries are q[q_indptr[b]:q_indptr[b+1]],
                 bottom-right aligned: query i sits at position kv_len - q_len + i
    causal       mask keys after the query's position
    sm_scale     softmax scale, default 1/sqrt(head_dim)
    window_left  attend only to keys at positions >= q_pos - window_left (-1: no window)
    softcap      logits = softcap * tanh(logits / softcap) when > 0
    logits_transform  attn.LogitsTransform or @triton.jit (score, batch, q_head, q_pos, kv_pos) -> score
    custom_mask  bool [sum(q_len * kv_len)], FlashInfer's flattened per-request mask (True: attend)
    rotary       attn.Rotary: rotate q (and a ragged K with rotate_k) on load
    return_lse   also return lse [total_q, q_heads] float32, natural log (-inf: no key seen)
    backend      "auto", "triton", "torch"

    Returns out [total_q, q_heads, head_dim] (, lse). Queries that see no key get 0 and lse -inf.

    >>> out = attn.prefill(q, kv, q_indptr, causal=True)
    """
    if V.enabled():
        check_q("q", q, kv, None)
        check_q_indptr(q, q_indptr, kv, custom_mask)
        check_options(sm_scale, window_left, softcap)
    transform = as_transform(logits_transform)
    if torch.compiler.is_compiling():
        from attn.custom_ops import prefill_call
        return prefill_call(q, kv, q_indptr, causal=causal, sm_scale=sm_scale, window_left=window_left,
                            softcap=softcap, transform=transform, custom_mask=custom_mask, rotary=rotary,
                            return_lse=return_lse, backend=backend)
    name, fn = dispatch.resolve("prefill", backend, q)
    return fn(q, kv, q_indptr, causal=causal, sm_scale=sm_scale, window_left=window_left, softcap=softcap,
              logits_transform=_transform_for(name, transform), custom_mask=custom_mask, rotary=rotary,
              return_lse=return_lse)


def decode(q, kv: KVCache, sm_scale: float | None = None, window_left: int = -1, softcap: float = 0.0,
           logits_transform=None, rotary=None, return_lse: bool = False, num_splits: int | None = None,
           backend: str = "auto"):
    """Attention of one query token per sequence over a KV cache.

    q            [b, q_heads, head_dim], the cache's dtype; the query of sequence b sits at
                 position seq_lens[b] - 1 (it sees the whole cache, or its window)
    kv           attn.layouts.KVCache with b sequences, any layout, read in place
    num_splits   KV chunks per sequence for split-KV (None: chosen from the batch and the device)
    other options as attn.prefill. For repeated calls (and CUDA graphs) use attn.BatchDecode.

    Returns out [b, q_heads, head_dim] (, lse [b, q_heads] float32).

    >>> out = attn.decode(q, kv)
    """
    if V.enabled():
        check_q("q", q, kv, kv.batch_size)
        check_options(sm_scale, window_left, softcap)
        if num_splits is not None and (not isinstance(num_splits, int) or num_splits < 1):
            V.fail(f"num_splits must be an int >= 1 or None; got {num_splits!r}")
    transform = as_transform(logits_transform)
    if torch.compiler.is_compiling() and num_splits is None:
        from attn.custom_ops import decode_call
        return decode_call(q, kv, sm_scale=sm_scale, window_left=window_left, softcap=softcap, transform=transform,
                           rotary=rotary, return_lse=return_lse, backend=backend)
    auto = None
    if backend == "auto" and q.device.type == "cuda":
        # The path the tuner measured fastest for this bucket (configs/<vendor>/<device>.json).
        from attn import configs, platform
        auto = configs.auto_backend("decode", platform.for_tensor(q), **configs.decode_shape(q, kv))
    name, fn = dispatch.resolve("decode", backend, q, auto_choice=auto)
    kwargs = dict(sm_scale=sm_scale, window_left=window_left, softcap=softcap,
                  logits_transform=_transform_for(name, transform), rotary=rotary, return_lse=return_lse)
    if name != "torch":
        kwargs["num_splits"] = num_splits
    return fn(q, kv, **kwargs)


def merge_state(out_a, lse_a, out_b, lse_b, backend: str = "auto"):
    """Combine two partial attention results over disjoint KV ranges (cascade, split-KV).

    out_a, out_b  [..., heads, d]; lse_a, lse_b [..., heads] float32 natural log (-inf: empty part)
    Returns (out [..., heads, d] in out_a's dtype, lse [..., heads] float32).
    """
    if V.enabled():
        V.check_tensor("out_a", out_a)
        if out_a.dim() < 2:
            V.fail(f"out_a must be [..., heads, head_dim] with at least 2 dims; got shape {list(out_a.shape)}")
        _check_merge("out_a", "lse_a", out_a, lse_a, out_a.shape)
        _check_merge("out_b", "lse_b", out_b, lse_b, out_a.shape, like=out_a)
    _, fn = dispatch.resolve("merge_state", backend, out_a)
    return fn(out_a, lse_a, out_b, lse_b)


def merge_states(outs, lses, backend: str = "auto"):
    """Combine n partial results: outs [n, ..., heads, d], lses [n, ..., heads] -> (out, lse)."""
    if V.enabled():
        V.check_tensor("outs", outs)
        if outs.dim() < 3:
            V.fail(f"outs must be [n, ..., heads, head_dim] with at least 3 dims; got shape {list(outs.shape)}")
        if outs.shape[0] == 0:
            V.fail("outs must hold at least 1 partial result; got 0")
        _check_merge("outs", "lses", outs, lses, outs.shape)
    if torch.compiler.is_compiling():
        from attn import custom_ops  # noqa: F401  (registers torch.ops.attn.*)
        return torch.ops.attn.merge_states(outs, lses, backend)
    _, fn = dispatch.resolve("merge_states", backend, outs)
    return fn(outs, lses)


def _check_merge(oname, lname, out, lse, shape, like=None):
    V.check_tensor(oname, out, shape=tuple(shape), dtype=(torch.float16, torch.bfloat16, torch.float32),
                   device=None if like is None else like.device)
    V.check_tensor(lname, lse, shape=tuple(shape[:-1]), dtype=torch.float32, device=out.device)
