"""Input checks with messages that name the argument, the expected and the received value.

Levels (attn.set_validation):
  "off"   no checks at all (the caller vouches for every input);
  "cheap" (default) metadata checks (shape, dtype, device, stride, head_dim, GQA ratio, page size)
          on every call, plus the page map's values (indptr monotone, page indices in range,
          lengths that fit their pages) when a KVCache is built, as a few vectorized reductions
          and one host sync. Skipped while a CUDA graph is being captured;
  "full"  also the values of every per-call index input (q_indptr against the KV lengths,
          slot mappings, rotary positions) on every call.
Kernels mask by sequence length and read page indices only for live tokens, so an input that
passed "cheap" cannot make a kernel read out of bounds.
"""
from __future__ import annotations

import torch

_LEVELS = ("off", "cheap", "full")
_level = "cheap"

# Tested head dims (DESIGN.md's matrix); kernels take any multiple of 8 in [16, 256] and pad
# non-powers of two inside the kernel.
TESTED_HEAD_DIMS = (64, 80, 96, 128, 192, 256)
INDEX_DTYPES = (torch.int32, torch.int64)
KV_DTYPES = (torch.float16, torch.bfloat16, torch.float32)


def set_validation(level: str) -> None:
    """Set how much attn checks its inputs: "off", "cheap" (default) or "full"."""
    global _level
    if level not in _LEVELS:
        raise ValueError(f"validation level must be one of {_LEVELS}; got {level!r}")
    _level = level


def get_validation() -> str:
    return _level


def enabled(level: str = "cheap") -> bool:
    return _LEVELS.index(_level) >= _LEVELS.index(level)


def values_enabled(level: str = "cheap") -> bool:
    """Value checks read tensors on the host: never while a CUDA graph is being captured."""
    if not enabled(level):
        return False
    return not (torch.cuda.is_available() and torch.cuda.is_current_stream_capturing())


def fail(msg: str, exc=ValueError):
    raise exc(msg)


def check_tensor(name: str, t, *, dim: int | None = None, dtype=None, device=None, shape=None):
    """shape: a tuple of ints or None per dim (None: any size)."""
    if not isinstance(t, torch.Tensor):
        fail(f"{name} must be a torch.Tensor; got {type(t).__name__}", TypeError)
    if dim is not None and t.dim() != dim:
        fail(f"{name} must have {dim} dims; got shape {tuple(t.shape)}")
    if dtype is not None:
        allowed = dtype if isinstance(dtype, tuple) else (dtype,)
        if t.dtype not in allowed:
            fail(f"{name} must have dtype {' or '.join(str(d) for d in allowed)}; got {t.dtype}", TypeError)
    if device is not None and t.device != _as_device(device):
        fail(f"{name} must be on device {device}; got {t.device}")
    if shape is not None:
        if t.dim() != len(shape) or any(e is not None and e != g for e, g in zip(shape, t.shape)):
            want = "[" + ", ".join("*" if e is None else str(e) for e in shape) + "]"
            fail(f"{name} must have shape {want}; got {list(t.shape)}")


def _as_device(device):
    from attn.platform import as_device
    return as_device(device)


def check_index(name: str, t, *, length: int | None = None, device=None):
    check_tensor(name, t, dim=1, dtype=INDEX_DTYPES, device=device)
    if length is not None and t.shape[0] != length:
        fail(f"{name} must have {length} entries; got {t.shape[0]}")
    if t.shape[0] > 1 and t.stride(0) != 1:
        # Kernels index these with a unit stride: a strided view would be read as its storage.
        fail(f"{name} must be contiguous (stride 1); got stride {t.stride(0)}: pass {name}.contiguous()")


def check_indptr(name: str, t, *, device=None):
    """An index tensor of batch + 1 offsets (its values: check_indptr_values)."""
    check_index(name, t, device=device)
    if t.shape[0] < 1:
        fail(f"{name} must have batch + 1 >= 1 entries; got 0")


def check_indptr_values(name: str, indptr: torch.Tensor, total: int | None = None, total_name: str = ""):
    """indptr[0] == 0, non-decreasing, and (when total is given) indptr[-1] <= total."""
    ip = indptr.detach().to("cpu", torch.int64)
    if ip.numel() == 0:
        fail(f"{name} must have at least 1 entry; got 0")
    if ip[0] != 0:
        fail(f"{name}[0] must be 0; got {int(ip[0])}")
    bad = torch.nonzero(ip[1:] < ip[:-1])
    if bad.numel():
        i = int(bad[0]) + 1
        fail(f"{name} must be non-decreasing; {name}[{i}]={int(ip[i])} < {name}[{i - 1}]={int(ip[i - 1])}")
    if total is not None and int(ip[-1]) > total:
        fail(f"{name}[-1] must be <= {total} ({total_name}); got {int(ip[-1])}")
    return ip


def check_range(name: str, t: torch.Tensor, low: int, high: int, mask: torch.Tensor | None = None):
    """Every (masked) entry of t in [low, high)."""
    v = t.detach().to("cpu", torch.int64)
    if mask is not None:
        idx = torch.nonzero(mask.to("cpu").flatten()).flatten()
        v_sel = v.flatten()[idx]
    else:
        idx = None
        v_sel = v.flatten()
    bad = torch.nonzero((v_sel < low) | (v_sel >= high)).flatten()
    if bad.numel():
        j = int(bad[0])
        pos = int(idx[j]) if idx is not None else j
        fail(f"{name} must be in [{low}, {high}); {name}[{_unravel(pos, t.shape)}]={int(v_sel[j])}")


def _unravel(flat: int, shape) -> str:
    if len(shape) <= 1:
        return str(flat)
    out = []
    for s in reversed(shape):
        out.append(flat % s)
        flat //= s
    return ", ".join(str(i) for i in reversed(out))


def check_head_dim(name: str, head_dim: int):
    if head_dim % 8 or not 16 <= head_dim <= 256:
        fail(f"{name} must be a multiple of 8 in [16, 256] (e.g. {', '.join(map(str, TESTED_HEAD_DIMS))}); "
             f"got {head_dim}")


def check_gqa(q_heads: int, kv_heads: int):
    if kv_heads <= 0 or q_heads <= 0 or q_heads % kv_heads:
        fail(f"q heads must be a multiple of kv heads (GQA/MQA); got q_heads={q_heads}, kv_heads={kv_heads}")
