"""Logits transforms: a score modification specialized into the attention kernel at compile time.

A transform is a `@triton.jit` function (score, batch, q_head, q_pos, kv_pos) -> score applied
to the scaled (and soft-capped) logits before masking and the softmax (FlexAttention's
score_mod, CK-tile's logits functor). The "torch" backend needs the same function on torch
tensors: bundle both in a LogitsTransform so every backend, and the tests, can run it.
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
