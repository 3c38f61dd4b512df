"""The "torch" backend: float32 (or float64) references for every operation, on any device.

The oracle of every kernel test and the fallback on a machine without a GPU. Written for
clarity, one sequence at a time; not for speed."""
from .decode import decode
from .merge import merge_state, merge_states
from .prefill import prefill
from .rotary import rotate

__all__ = ["prefill", "decode", "merge_state", "merge_states", "rotate"]
