"""Registers every backend's implementations with attn.dispatch (imported on first dispatch)."""
from attn import reference
from attn.dispatch import register
from attn.platform import triton_runs_on

for _op in ("prefill", "decode", "merge_state", "merge_states"):
    register(_op, "torch")(getattr(reference, _op))


def _triton_available(t):
    return triton_runs_on(t)


# Triton kernels: each module exposes the operation's signature (see attn.ops).
try:
    from attn.triton_kernels import prefill as _tp
    register("prefill", "triton", _triton_available)(_tp.prefill)
except ImportError:
    pass
try:
    from attn.triton_kernels import decode as _td
    register("decode", "triton", _triton_available)(_td.decode)
except ImportError:
    pass
try:
    from attn.triton_kernels import merge as _tm
    register("merge_state", "triton", _triton_available)(_tm.merge_state)
    register("merge_states", "triton", _triton_available)(_tm.merge_states)
except ImportError:
    pass
try:
    from attn.hip import backend as _hb
    register("decode", "hip", _hb.available)(_hb.decode)
except ImportError:
    pass
