"""What this directory's cache-write sweeps share (sweep_write, sweep_regs, sweep_tile, sweep_vllm):
the inputs (tokens x (32 q, 8 kv heads) x 128, neox, positions below 65536), paged caches at
shuffled page-16 slots, the interpreter check of one launch against the reference, and the
registers / spills of the variants a run compiled. SMALL=1: float32 on the CPU (TRITON_INTERPRET=1)."""
import os

import torch

from attn import benchutil as bu
from attn.reference.rotary import apply_and_write_kv as ref_write
from attn.rotary import cos_sin_cache
from attn.triton_kernels.rotary import _rotary_kernel

SMALL = bool(os.environ.get("SMALL"))
DEV = "cpu" if SMALL else "cuda"
DTYPE = torch.float32 if SMALL else torch.bfloat16
CACHE = cos_sin_cache(65536, 128, dtype=torch.float32).to(DEV)


def inputs(tokens, n_sets, gen):
    """n_sets of (q, k, v, positions, q_out)."""
    sets = []
    for _ in range(n_sets):
        q = torch.randn(tokens, 32, 128, device=DEV, generator=gen).to(DTYPE)
        k = torch.randn(tokens, 8, 128, device=DEV, generator=gen).to(DTYPE)
        v = torch.randn(tokens, 8, 128, device=DEV, generator=gen).to(DTYPE)
        pos = torch.randint(0, 65536, (tokens,), device=DEV, generator=gen)
        sets.append((q, k, v, pos, torch.empty_like(q)))
    return sets


def write_bytes(tokens):
    """The bench's byte count of a write: q read + written, k and v read and written."""
    return 2.0 * tokens * (32 + 2 * 8) * 128 * torch.empty(0, dtype=DTYPE).element_size()


def paged(layout, tokens, n, gen):
    """n page-16 caches of `layout` (shuffled pages) and each one's slots for tokens 0..tokens-1."""
    kvs = [bu.make_kv([tokens], layout=layout, page_size=16, gen=gen, device=DEV, dtype=DTYPE) for _ in range(n)]
    t = torch.arange(tokens, device=DEV)
    return kvs, [kv.page_indices.long()[t // 16] * 16 + t % 16 for kv in kvs]


def write_call(s, kv, slots, cfg):
    """One apply_and_write_kv launch of input set s into kv at slots, with launch config cfg."""
    from attn.triton_kernels.rotary import rotary as launch
    q, k, v, pos, qo = s
    return lambda: launch(q, k, qo, None, CACHE, 128, True, positions=pos, kv=kv, v=v, slot_mapping=slots, config=cfg)


def check_write(s, kv, slots, cfg, layout, gen):
    """Max abs error of one launch (q out, the whole cache) against the reference on a copy of the
    cache taken before the launch (a wrong slot shows as a difference anywhere)."""
    q, k, v, pos, qo = s
    ref = bu.make_kv([q.shape[0]], layout=layout, page_size=16, gen=gen, device=DEV, dtype=DTYPE)
    ref.k.copy_(kv.k), ref.v.copy_(kv.v)
    write_call(s, kv, slots, cfg)()
    q_ref = ref_write(q, k, v, CACHE, ref, slots, "neox", 128, False, positions=pos)
    return max(float((q_ref - qo).abs().max()), float((ref.k - kv.k).abs().max()), float((ref.v - kv.v).abs().max()))


def compiled():
    """The rotary kernel's compiled variants in this process, by id (empty in the interpreter)."""
    try:
        return {id(k): k for k in _rotary_kernel.device_caches[torch.cuda.current_device()][0].values()}
    except Exception:                      # noqa: BLE001 (interpreter, or another Triton's cache shape)
        return {}


def new_regs(before):
    """'registers / spills' of the variants compiled since `before` (a compiled() snapshot)."""
    return ", ".join(f"{k.n_regs} / {k.n_spills}" for i, k in compiled().items() if i not in before) or "(cached)"
