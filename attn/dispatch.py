"""Backend registry: operation name -> backend name -> implementation.

Backends register themselves ("torch" here; "triton" and "hip" from their modules). "auto"
asks attn.configs for the tuned choice, then falls back to the first backend that runs here.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

import torch

BACKENDS = ("triton", "hip", "torch")


@dataclass
class Impl:
    fn: Callable
    # (example tensor) -> (runs here?, why not); checked when the backend is resolved.
    available: Callable[[torch.Tensor], tuple[bool, str]]


_registry: dict[str, dict[str, Impl]] = {}
_loaded = False


def register(op: str, backend: str, available: Callable | None = None):
    def deco(fn):
        _registry.setdefault(op, {})[backend] = Impl(fn, available or (lambda t: (True, "")))
        return fn
    return deco


def _load_backends():
    """Import the modules that register backends (lazily: attn imports fast, hip-python never)."""
    global _loaded
    if _loaded:
        return
    _loaded = True
    from . import backends  # noqa: F401  (registers torch, triton, hip)


def implementations(op: str) -> dict[str, Impl]:
    _load_backends()
    return _registry.get(op, {})


def why_unavailable(op: str, backend: str, example: torch.Tensor) -> str:
    impls = implementations(op)
    if backend not in impls:
        return f"no {backend!r} implementation of {op} (have: {sorted(impls)})"
    ok, why = impls[backend].available(example)
    return "" if ok else why


def resolve(op: str, backend: str, example: torch.Tensor, auto_choice: str | None = None) -> tuple[str, Callable]:
    """The implementation to run; a clear error when the named backend cannot run here."""
    impls = implementations(op)
    if backend == "auto":
        order = ([auto_choice] if auto_choice else []) + [b for b in BACKENDS if b != auto_choice]
        if example.device.type == "cpu":
            # On the CPU the float32 reference is the fast path; the interpreter is for tests.
            order = ["torch"]
        for name in order:
            if name in impls and impls[name].available(example)[0]:
                return name, impls[name].fn
        raise RuntimeError(f"no backend of {op} runs on {example.device}")
    if backend not in BACKENDS:
        raise ValueError(f"backend must be one of {('auto',) + BACKENDS}; got {backend!r}")
    why = why_unavailable(op, backend, example)
    if why:
        raise RuntimeError(f"backend {backend!r} cannot run {op} here: {why}")
    return backend, impls[backend].fn
