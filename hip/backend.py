"""Backend "hip" of attn.decode: the HIP C++ paged decode kernel (paged_decode.hip), compiled at
first use by hiprtc on ROCm or NVRTC on CUDA and launched on torch's current stream.

    >>> out = attn.decode(q, kv, backend="hip")                     # q [b, q_heads, d]
    >>> p = attn.hip.backend.plan(kv, q_heads=32, num_splits=4)     # once per batch shape
    >>> out = attn.hip.backend.run(p, q, kv)                       # launches only: graph-capturable

Supported: layouts NHD, HND, vllm, ragged / token pool; page_size 1, 8, 16, 32 (vllm: 8, 16, 32);
head_dim 64, 80, 96, 128, 256; any GQA ratio; fp16 and bf16; sm_scale, softcap, window_left,
return_lse. Not supported: logits_transform and rotary (ValueError naming the argument).

status() -> (ok, reason) says whether this backend runs here and why not (`python -m attn info`).
"""
from __future__ import annotations

import ctypes
import functools
import math
from dataclasses import dataclass

import torch

from . import compile as hc
from . import runtime

_DTYPES = {torch.float16: "fp16", torch.bfloat16: "bf16"}
_kernels: dict = {}


# ------------------------------------------------------------------------------ availability
@functools.lru_cache(maxsize=None)
def _toolchain(vendor: str) -> tuple[bool, str]:
    try:
        if vendor == "amd":
            runtime.hiprtc_version()
        else:
            runtime.nvrtc_version()
            runtime._cuda_python()
    except Exception as e:  # ToolchainMissing, or a broken install
        return False, str(e)
    return True, ""


def available(t: torch.Tensor) -> tuple[bool, str]:
    """Whether the hip backend can run on t's device, and why not."""
    if t.device.type != "cuda":
        return False, f"tensors are on {t.device.type}; the hip backend needs a CUDA or ROCm GPU"
    vendor = "amd" if torch.version.hip is not None else "nvidia"
    return _toolchain(vendor)


def status() -> tuple[bool, str]:
    """Whether the hip backend works on this machine, and why not: no GPU, hip-python or cuda-python
    missing, or the kernel does not compile for this GPU. On a machine without a GPU the reason also
    says which compilers work (the CPU tier compiles through them)."""
    if not torch.cuda.is_available():
        parts = []
        for name, fn in (("hiprtc (gfx90a)", runtime.hiprtc_version), ("NVRTC (sm_90)", runtime.nvrtc_version)):
            try:
                fn()
                parts.append(f"{name} compiles")
            except Exception as e:
                parts.append(f"{name} unavailable: {e}")
        return False, "no GPU (torch.cuda.is_available() is False); " + "; ".join(parts)
    dev = torch.device("cuda", torch.cuda.current_device())
    ok, why = available(torch.empty(0, device=dev))
    if not ok:
        return False, why
    try:
        _get_kernels(dev.index, hc.instance_for(128, 16, 1, "fp16", "HND", _warp(dev.index)))
    except Exception as e:
        return False, f"the kernel does not compile or load for {_arch(dev.index)}: {e}"
    return True, f"hip backend compiles and loads for {_arch(dev.index)}"


# ------------------------------------------------------------------------------ kernels
def _arch(index: int) -> str:
    from attn import platform
    return platform.get(index).arch


def _warp(index: int) -> int:
    return hc.warp_of(_arch(index))


def _get_kernels(index: int, inst: hc.Instance):
    key = (index, inst)
    ks = _kernels.get(key)
    if ks is None:
        target = _arch(index)
        binary = hc.compile(inst, target).binary
        vendor = "amd" if target.startswith("gfx") else "nvidia"
        with torch.cuda.device(index):
            ks = runtime.load_module(vendor, binary, hc.KERNELS, index)
        _kernels[key] = ks
    return ks


# ------------------------------------------------------------------------------ plan / run
@dataclass
class DecodePlan:
    """Everything run() needs besides the data: the instance, the split count, the options, and
    split-KV workspace sized for max_batch sequences."""
    instance: hc.Instance
    device_index: int
    num_splits: int
    q_heads: int
    kv_heads: int
    gqa: int
    tiles: int
    sm_scale: float
    softcap: float
    window_left: int
    return_lse: bool
    max_batch: int
    part_out: torch.Tensor | None     # float32 [max_batch * q_heads * num_splits * head_dim]
    part_lse: torch.Tensor | None     # float32 [max_batch * q_heads * num_splits]
    kernels: dict                     # name -> runtime.Kernel, loaded by plan()


def _fail(msg: str):
    raise ValueError(msg)


def _check_kv(kv) -> tuple[str, tuple, tuple]:
    """Kernel kind and (K, V) stride arguments; a clear error for what the kernel cannot read."""
    name = kv.layout.name
    if kv.dtype not in _DTYPES:
        _fail(f"kv dtype must be float16 or bfloat16 for the hip backend; got {kv.dtype}")
    ks, vs = kv.k_strides, kv.v_strides
    if name == "vllm":
        if ks.split != 8 or ks.dlo != 1:
            _fail(f"k_cache for layout 'vllm' must have x=8 contiguous elements; got x={ks.split}, stride {ks.dlo}")
        if vs.slot != 1:
            _fail(f"v_cache for layout 'vllm' must have unit stride along page_size; got {vs.slot}")
        kargs, vargs = (ks.page, ks.head, ks.slot, ks.dhi), (vs.page, vs.head, 1, vs.dhi)
        vec_strides = kargs + (vs.page, vs.head, vs.dhi)
    else:
        if ks.dhi != 1 or vs.dhi != 1:
            _fail(f"k_cache and v_cache must have unit stride along head_dim for the hip backend; "
                  f"got {ks.dhi} and {vs.dhi}")
        kargs, vargs = (ks.page, ks.head, ks.slot, 1), (vs.page, vs.head, vs.slot, 1)
        vec_strides = kargs[:3] + vargs[:3]
    # Every K/V access is a 16-byte vector: base pointers and strides must keep that alignment.
    for t, what in ((kv.k, "k_cache"), (kv.v, "v_cache")):
        if t.data_ptr() % 16:
            _fail(f"{what} must start at a 16-byte aligned address for the hip backend; got {t.data_ptr():#x}")
    bad = [s for s in vec_strides if s % 8]
    if bad:
        _fail(f"k_cache/v_cache strides must be multiples of 8 elements (16 bytes) for the hip backend; "
              f"got K strides {tuple(ks)}, V strides {tuple(vs)}")
    return ("vllm" if name == "vllm" else "strided"), kargs, vargs


def _resident_blocks(index: int, inst: hc.Instance) -> int:
    """Decode work-groups resident per multiprocessor (the driver's occupancy calculator; 1 if unknown)."""
    key = ("occupancy", index, inst)
    n = _kernels.get(key)
    if n is None:
        n = _get_kernels(index, inst)["attn_paged_decode"].max_active_blocks(hc.THREADS) or 1
        _kernels[key] = n
    return n


def choose_splits(groups: int, max_len: int, slots: int, chunk: int, max_splits: int = 256) -> int:
    """KV partitions per sequence for `groups` work-groups per partition (batch x kv heads x GQA
    tiles), sequences of up to max_len tokens, `slots` work-groups resident on the whole device,
    partitions a multiple of `chunk` tokens. Models the run time as waves x (tokens per partition +
    a fixed cost of two chunks per work-group) and takes the cheapest, fewer splits on a tie: a wave
    only part full (64 x 4096 on 132 SMs x 3 resident) costs as much as a full one."""
    max_len = max(int(max_len), 1)
    top = max(1, min(max_splits, -(-max_len // max(chunk, 128))))   # >= 128 tokens a partition
    best, best_cost = 1, None
    for s in range(1, top + 1):
        per = -(-(-(-max_len // s)) // chunk) * chunk
        parts = -(-max_len // per)
        if parts < s:               # the same partitions as a smaller split count
            continue
        waves = -(-groups * parts // max(slots, 1))
        cost = waves * (per + 2 * chunk)
        if best_cost is None or cost < best_cost * 0.98:
            best, best_cost = s, cost
    return best


def plan(kv, q_heads: int, *, sm_scale: float | None = None, window_left: int = -1, softcap: float = 0.0,
         return_lse: bool = False, num_splits: int | None = None, max_batch: int | None = None,
         max_seq_len: int | None = None) -> DecodePlan:
    """Host-side work for decode over `kv` with `q_heads` query heads: picks the kernel instance and
    the split count, compiles/loads the kernel, allocates the split-KV workspace for max_batch.

    num_splits   KV partitions per sequence; None: choose_splits() from the batch, the longest
                 sequence (max_seq_len, else kv.max_pages_hint, else one host sync on kv.seq_lens)
                 and the work-groups the device holds at once (SMs x the kernel's occupancy)
    max_batch    sequences the workspace holds (default: kv's batch); run() accepts up to that
    """
    if kv.device.type != "cuda":
        _fail(f"kv must be on a GPU for the hip backend; got {kv.device}")
    kind, _, _ = _check_kv(kv)
    if q_heads % kv.num_kv_heads:
        _fail(f"q_heads must be a multiple of kv_heads={kv.num_kv_heads}; got {q_heads}")
    idx = kv.device.index if kv.device.index is not None else torch.cuda.current_device()
    gqa = q_heads // kv.num_kv_heads
    inst = hc.instance_for(kv.head_dim, kv.page_size, gqa, _DTYPES[kv.dtype], kv.layout.name, _warp(idx))
    tiles = -(-gqa // inst.gqa)
    b = kv.batch_size if max_batch is None else max_batch
    if num_splits is None:
        if max_seq_len is None:
            max_seq_len = (kv.max_pages_hint * kv.page_size if kv.max_pages_hint is not None
                           else kv.max_seq_len())
        if window_left >= 0:
            max_seq_len = min(max_seq_len, window_left + 1 + inst.tokens_per_lane)
        from attn import platform
        slots = platform.get(idx).num_sms * _resident_blocks(idx, inst)
        num_splits = choose_splits(b * kv.num_kv_heads * tiles, max_seq_len, slots, inst.chunk_tokens)
    elif not isinstance(num_splits, int) or num_splits < 1:
        _fail(f"num_splits must be an int >= 1 or None; got {num_splits!r}")
    if num_splits > 65535:
        _fail(f"num_splits must be <= 65535; got {num_splits}")
    part_out = part_lse = None
    if num_splits > 1:
        part_out = torch.empty(b * q_heads * num_splits * kv.head_dim, dtype=torch.float32, device=kv.device)
        part_lse = torch.empty(b * q_heads * num_splits, dtype=torch.float32, device=kv.device)
    scale = 1.0 / math.sqrt(kv.head_dim) if sm_scale is None else float(sm_scale)
    return DecodePlan(inst, idx, num_splits, q_heads, kv.num_kv_heads, gqa, tiles, scale, float(softcap),
                      int(window_left), bool(return_lse), b, part_out, part_lse, _get_kernels(idx, inst))


def run(p: DecodePlan, q: torch.Tensor, kv, out: torch.Tensor | None = None, lse: torch.Tensor | None = None):
    """Launch the planned decode: q [b, q_heads, head_dim] (b <= p.max_batch) over kv (same layout,
    geometry and dtype as planned). Returns out [b, q_heads, head_dim] (, lse [b, q_heads] float32).
    No host synchronization; out/lse may be given (e.g. static buffers for a CUDA graph)."""
    b = q.shape[0]
    if b > p.max_batch:
        _fail(f"q has {b} sequences but the plan holds at most max_batch={p.max_batch}")
    if q.shape[1] != p.q_heads or q.shape[2] != p.instance.head_dim or q.stride(2) != 1:
        _fail(f"q must be [b, {p.q_heads}, {p.instance.head_dim}] with unit stride along head_dim; "
              f"got shape {list(q.shape)}, strides {q.stride()}")
    kind, kargs, vargs = _check_kv(kv)
    inst = p.instance
    if (kind != inst.kind or kv.head_dim != inst.head_dim or kv.page_size != inst.page_size
            or kv.num_kv_heads != p.kv_heads or _DTYPES[kv.dtype] != inst.dtype or q.dtype != kv.dtype):
        _fail(f"q and kv must match the plan ({inst.kind} layout, page_size {inst.page_size}, head_dim "
              f"{inst.head_dim}, {p.kv_heads} kv heads, {inst.dtype}); got {kv.layout.name} layout, page_size "
              f"{kv.page_size}, head_dim {kv.head_dim}, {kv.num_kv_heads} kv heads, kv {kv.dtype}, q {q.dtype}")
    if out is None:
        out = torch.empty_like(q, memory_format=torch.contiguous_format)
    if p.return_lse and lse is None:
        lse = torch.empty(b, p.q_heads, dtype=torch.float32, device=q.device)
    if b == 0:
        return (out, lse) if p.return_lse else out
    if out.dtype != q.dtype or out.stride(2) != 1 or (out.stride(0) % 8) or (out.stride(1) % 8) or out.data_ptr() % 16:
        _fail(f"out must have q's dtype, unit stride along head_dim, 16-byte aligned rows; got {out.dtype}, "
              f"strides {out.stride()}")
    indptr, indices, seq_lens = kv.page_indptr, kv.page_indices, kv.seq_lens
    flags = (int(indptr.dtype == torch.int64) | (int(indices is not None and indices.dtype == torch.int64) << 1)
             | (int(seq_lens.dtype == torch.int64) << 2))
    P = ctypes.c_void_p
    i64 = ctypes.c_int64
    i32 = ctypes.c_int
    ptr = lambda t: P(t.data_ptr() if t is not None else 0)  # noqa: E731
    lse_p = ptr(lse if p.return_lse else None)
    split = p.num_splits > 1
    ks = p.kernels
    stream = torch.cuda.current_stream(q.device).cuda_stream
    args = [ptr(q), i64(q.stride(0)), i64(q.stride(1)),
            ptr(kv.k), *(i64(s) for s in kargs), ptr(kv.v), *(i64(s) for s in vargs),
            ptr(indptr), ptr(indices), ptr(seq_lens), i32(flags),
            i32(p.kv_heads), i32(p.gqa), i32(p.num_splits), ctypes.c_float(p.sm_scale),
            ctypes.c_float(p.softcap), i32(p.window_left),
            ptr(out), i64(out.stride(0)), i64(out.stride(1)), lse_p,
            ptr(p.part_out if split else None), ptr(p.part_lse if split else None)]
    ks["attn_paged_decode"].launch((b, p.kv_heads * p.tiles, p.num_splits), (hc.THREADS, 1, 1), args, stream)
    if split:
        rargs = [ptr(indptr), ptr(indices), ptr(seq_lens), i32(flags), i32(p.q_heads), i32(p.num_splits),
                 i32(p.window_left), ptr(p.part_out), ptr(p.part_lse), ptr(out), i64(out.stride(0)),
                 i64(out.stride(1)), lse_p]
        ks["attn_paged_decode_reduce"].launch((b, p.q_heads, 1), (hc.REDUCE_THREADS, 1, 1), rargs, stream)
    return (out, lse) if p.return_lse else out


def decode(q, kv, *, sm_scale=None, window_left=-1, softcap=0.0, logits_transform=None, rotary=None,
           return_lse=False, num_splits=None):
    """attn.decode's signature (see attn.ops.decode). No host sync when num_splits is given or kv
    carries max_pages_hint; otherwise one, to size the split from the longest sequence."""
    if logits_transform is not None:
        _fail("logits_transform is not supported by the hip backend; use backend='triton' or 'torch'")
    if rotary is not None:
        _fail("rotary is not supported by the hip backend; rotate q first (attn.rotary.apply) or use "
              "backend='triton'")
    p = plan(kv, q.shape[1], sm_scale=sm_scale, window_left=window_left, softcap=softcap,
             return_lse=return_lse, num_splits=num_splits, max_batch=q.shape[0])
    return run(p, q, kv)
