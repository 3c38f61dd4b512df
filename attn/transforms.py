"""Logits transforms: a score modification specialized into the attention kernel at compile time.

A transform is a `@triton.jit` function (score, batch, q_head, q_pos, kv_pos) -> score applied
to the scaled (and soft-capped) logits before masking and the softmax (FlexAttention's
score_mod, CK-tile's logits functor). The "torch" backend needs the same function on torch
tensors: bundle both in a LogitsTransform so every backend, and the tests, can run it.

Examples here: `alibi(num_heads)` (a per-head linear distance bias) and `soft_cap(cap)`.
Writing one::

    @triton.jit
    def causal_decay(score, batch, q_head, q_pos, kv_pos):    # all arguments broadcast to score
        return score - 0.01 * (q_pos - kv_pos).to(tl.float32)

    decay = attn.LogitsTransform(causal_decay, lambda s, b, h, qp, kp: s - 0.01 * (qp - kp))
    out = attn.prefill(q, kv, q_indptr, logits_transform=decay)

score is float32 and already scaled by sm_scale (and soft-capped when softcap > 0); q_head, q_pos
and kv_pos are integer tensors (q_pos bottom-right aligned: kv_len - q_len + i), batch a scalar.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Callable


@dataclass(frozen=True)
class LogitsTransform:
    triton_fn: Callable                 # @triton.jit (score, batch, q_head, q_pos, kv_pos) -> score
    reference_fn: Callable | None = None  # the same on broadcastable torch tensors
    name: str = ""

    def __post_init__(self):
        if not self.name:
            fn = getattr(self.triton_fn, "fn", self.triton_fn)
            object.__setattr__(self, "name", f"{fn.__module__}.{fn.__qualname__}")


def as_transform(t) -> LogitsTransform | None:
    """Accept a LogitsTransform, a bare @triton.jit function (Triton backends only), a torch
    callable (the torch backend only), or None."""
    if t is None or isinstance(t, LogitsTransform):
        return t
    try:
        from triton.runtime.jit import JITFunction
        if isinstance(t, JITFunction):
            return LogitsTransform(t, None)
    except ImportError:
        pass
    if callable(t):
        return LogitsTransform(None, t, name=f"{t.__module__}.{getattr(t, '__qualname__', 'fn')}")
    raise TypeError(f"logits_transform must be a @triton.jit function, a torch callable or an "
                    f"attn.LogitsTransform; got {type(t).__name__}")


# ------------------------------------------------------------------------------ examples
# Transforms with a parameter (a head count, a cap) are generated as source text with the value
# written in: the kernel is specialized on the transform, and Triton keys its compile cache on a
# function's source, so two parameters must be two sources (a closure or a module global would
# share one cache entry between them).

def _jit_from_source(name: str, src: str):
    import linecache

    import triton
    import triton.language as tl
    filename = f"<attn.transforms.{name}>"
    linecache.cache[filename] = (len(src), None, src.splitlines(True), filename)   # inspect.getsource
    scope = {"tl": tl, "triton": triton}
    exec(compile(src, filename, "exec"), scope)
    return triton.jit(scope[name])


def alibi(num_heads: int) -> LogitsTransform:
    """ALiBi (Press et al.): score - slope(h) * |q_pos - kv_pos| with slope(h) = 2**(-8 (h + 1) / H),
    the paper's slopes for a power-of-two head count H (other H get the same formula).
    Under a causal mask this is the usual ALiBi bias slope * (kv_pos - q_pos).

    >>> out = attn.prefill(q, kv, q_indptr, logits_transform=attn.transforms.alibi(32))
    """
    if not isinstance(num_heads, int) or num_heads < 1:
        raise ValueError(f"num_heads must be an int >= 1; got {num_heads!r}")
    name = f"alibi_h{num_heads}"
    src = (f"def {name}(score, batch, q_head, q_pos, kv_pos):\n"
           f"    slope = tl.math.exp2(-8.0 * (q_head + 1).to(tl.float32) / {float(num_heads)!r})\n"
           f"    dist = tl.abs(q_pos - kv_pos).to(tl.float32)\n"
           f"    return score - slope * dist\n")

    def reference(score, batch, q_head, q_pos, kv_pos):
        slope = 2.0 ** (-8.0 * (q_head + 1).to(score.dtype) / num_heads)
        return score - slope * (q_pos - kv_pos).abs().to(score.dtype)
    return LogitsTransform(_jit_from_source(name, src), reference, name=f"attn.transforms.alibi({num_heads})")


def soft_cap(cap: float) -> LogitsTransform:
    """Soft-capping as a transform: cap * tanh(score / cap) (Gemma 2, Grok), the same function as
    the built-in `softcap=` option, written here as an example of a user transform.

    >>> out = attn.prefill(q, kv, q_indptr, logits_transform=attn.transforms.soft_cap(50.0))
    """
    cap = float(cap)
    if not cap > 0 or cap != cap or cap == float("inf"):
        raise ValueError(f"cap must be a finite number > 0; got {cap!r}")
    name = "soft_cap_" + repr(cap).replace(".", "p").replace("-", "m").replace("+", "")
    # tanh(x) = 2 sigmoid(2x) - 1: tl has no tanh on every backend.
    src = (f"def {name}(score, batch, q_head, q_pos, kv_pos):\n"
           f"    x = score * {1.0 / cap!r}\n"
           f"    return {cap!r} * (2.0 * tl.sigmoid(2.0 * x) - 1.0)\n")

    def reference(score, batch, q_head, q_pos, kv_pos):
        return cap * (score / cap).tanh()
    return LogitsTransform(_jit_from_source(name, src), reference, name=f"attn.transforms.soft_cap({cap})")
