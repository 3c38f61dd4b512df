"""Registers every backend's implementations with attn.dispatch (imported on first dispatch)."""
from attn import reference
from attn.dispatch import register
from attn.platform import triton_runs_on

for _op in ("prefill", "decode"):
    register(_op, "torch")(getattr(reference, _op))


# The reference merges in float32 (or wider) and returns that; the operation returns out in the
# inputs' dtype, as the Triton backend does.
@register("merge_states", "torch")
def _merge_states(outs, lses):
    out, lse = reference.merge_states(outs, lses)
    return out.to(outs.dtype), lse.float()


@register("merge_state", "torch")
def _merge_state(out_a, lse_a, out_b, lse_b):
    out, lse = reference.merge_state(out_a, lse_a, out_b, lse_b)
    return out.to(out_a.dtype), lse.float()


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
