"""Compile the HIP paged-decode kernel ahead of time, for any target, on any machine.

    >>> from attn.hip import compile as hc
    >>> k = hc.compile_instance("gfx90a", head_dim=128, page_size=16, gqa=4, dtype="fp16", layout="HND")
    >>> k.binary[:4], k.resources      # code object (AMD) / cubin (NVIDIA), registers, LDS, spills
    >>> [i.key for i in hc.instances()]   # every instance the dispatcher can pick, per vendor

API (used by ci/compile_matrix.py and by the launcher):

- ``TARGETS``: the compile-checked targets: "gfx90a" through hiprtc (Debian's ROCm 5.2 runtime;
  its clang 15 does not know gfx942/gfx950, so those are checked only with a newer ROCm), "sm_80"
  and "sm_90" through NVRTC (CUDA >= 11.8 for sm_90).
- ``Instance``: one template instance (head_dim, page_size, gqa tile, dtype, warp, kind), where kind is
  "strided" (the NHD, HND and ragged/token-pool layouts: strides are kernel arguments) or "vllm"
  (vLLM's x-split K and slot-contiguous V, a compile-time branch).
- ``instances(warp=None)``: every instance the dispatcher can pick (warp 32 for NVIDIA, 64 for AMD
  CDNA; None = both).
- ``instance_for(head_dim, page_size, gqa, dtype, layout, warp)``: the instance the dispatcher picks.
- ``compile_instance(target, head_dim=, page_size=, gqa=, dtype=, layout=, use_cache=True)`` ->
  ``Compiled`` (binary bytes, target, instance, compiler log, resources dict: registers, spills,
  shared/LDS bytes per kernel where the compiler reports them). A compiler error raises
  ``CompileError`` carrying the full log.
- ``compile(instance, target)``: the same from an ``Instance``.

Compiled binaries are cached on disk under $ATTN_CACHE_DIR/hip (default ~/.cache/attn/hip), keyed
by a hash of the source, the options, the target and the compiler version.
"""
from __future__ import annotations

import hashlib
import os
import re
from dataclasses import dataclass, field
from pathlib import Path

from . import runtime

HERE = Path(__file__).resolve().parent
SOURCE = HERE / "paged_decode.hip"
PRELUDE = HERE / "prelude.h"

HEAD_DIMS = (64, 80, 96, 128, 256)
PAGE_SIZES = (1, 8, 16, 32)
GQA_TILES = (1, 2, 4, 8)          # query heads per work-group; larger ratios use several tiles
DTYPES = ("fp16", "bf16")
KINDS = ("strided", "vllm")
TARGETS = ("gfx90a", "sm_80", "sm_90")
THREADS = 128           # 4 warps / 2 waves: with ~160 registers, 3 work-groups per SM on sm_90
REDUCE_THREADS = 128
MIN_BLOCKS = 3          # NVIDIA: work-groups per SM an instance is compiled for (without, if that spills)
KERNELS = ("attn_paged_decode", "attn_paged_decode_reduce")


class CompileError(RuntimeError):
    """The device compiler rejected the source; ``log`` holds its full output."""

    def __init__(self, msg: str, log: str = ""):
        super().__init__(f"{msg}\n{log}" if log else msg)
        self.log = log


@dataclass(frozen=True)
class Instance:
    head_dim: int
    page_size: int
    gqa: int              # query heads per work-group (the GQA tile)
    dtype: str            # "fp16" or "bf16"
    warp: int             # 32 (NVIDIA) or 64 (AMD CDNA)
    kind: str             # "strided" or "vllm"

    @property
    def head_split(self) -> int:
        """HS: lane sets a GQA tile's query heads are split over, so that a lane holds at most 4
        (vllm, which takes 8 tokens a step: 2) query heads with their accumulators in registers; only
        where the HS sets still fit one warp, since they load the same K/V addresses in one
        instruction."""
        hs = max(1, self.gqa // (2 if self.kind == "vllm" else 4))   # vllm: 8 tokens a step, 2 heads
        while hs > 1 and self.group_lanes * hs > self.warp:
            hs //= 2
        return hs

    @property
    def heads_per_lane(self) -> int:
        return self.gqa // self.head_split

    @property
    def tokens_per_lane(self) -> int:
        """TU: consecutive tokens a thread group loads per step (16-byte loads in flight: 2*TU).
        vLLM's V is read 8 slots per vector; otherwise fewer tokens for more query heads per lane
        keep the registers (q, accumulators, scores) under the budget."""
        if self.kind == "vllm":
            return 8
        tu = {1: 8, 2: 8, 4: 4, 8: 2}[self.heads_per_lane]
        if self.page_size < tu and self.heads_per_lane > 1:
            tu = min(tu, 4)     # a page per token: TU 64-bit page numbers are held a chunk ahead
        return tu

    @property
    def key(self) -> str:
        return (f"d{self.head_dim}_ps{self.page_size}_g{self.gqa}_{self.dtype}_w{self.warp}_{self.kind}")

    def defines(self) -> dict[str, int]:
        return {
            "ATTN_HEAD_DIM": self.head_dim, "ATTN_PAGE_SIZE": self.page_size, "ATTN_GQA": self.gqa,
            "ATTN_DTYPE": DTYPES.index(self.dtype), "ATTN_WARP": self.warp,
            "ATTN_VLLM": int(self.kind == "vllm"), "ATTN_THREADS": THREADS,
            "ATTN_REDUCE_THREADS": REDUCE_THREADS, "ATTN_TU": self.tokens_per_lane,
            "ATTN_HSPLIT": self.head_split,
        }

    @property
    def group_lanes(self) -> int:
        n = self.head_dim // 8
        return 1 << (n - 1).bit_length()

    @property
    def chunk_tokens(self) -> int:
        """Tokens one work-group covers per loop step; a partition is a multiple of this."""
        return (THREADS // (self.group_lanes * self.head_split)) * self.tokens_per_lane


@dataclass
class Compiled:
    instance: Instance
    target: str
    binary: bytes
    log: str = ""
    resources: dict = field(default_factory=dict)


def kind_of(layout: str) -> str:
    """Kernel kind of a layout name: NHD, HND, ragged (and token pool) are strides; vllm is split."""
    if layout in ("vllm",):
        return "vllm"
    if layout in ("NHD", "HND", "ragged", "strided"):
        return "strided"
    raise ValueError(f"layout must be one of NHD, HND, ragged, vllm for the hip backend; got {layout!r}")


def gqa_tiles(kind: str) -> tuple[int, ...]:
    """GQA tiles of a kind. vLLM's kind reads 8 tokens per step (V is slot-contiguous), so a tile of 8
    query heads would not fit the registers; it runs GQA 8 as two tiles of 4 (the second read of
    K/V mostly hits L2)."""
    return GQA_TILES if kind == "strided" else GQA_TILES[:-1]


def _gqa_tile(gqa: int, kind: str) -> int:
    tiles = gqa_tiles(kind)
    for t in tiles:
        if gqa <= t:
            return t
    return tiles[-1]


def instance_for(head_dim: int, page_size: int, gqa: int, dtype: str, layout: str, warp: int) -> Instance:
    """The instance the dispatcher runs for a problem (raises ValueError if there is none)."""
    if head_dim not in HEAD_DIMS:
        raise ValueError(f"head_dim must be one of {HEAD_DIMS} for the hip backend; got {head_dim}")
    if page_size not in PAGE_SIZES:
        raise ValueError(f"page_size must be one of {PAGE_SIZES} for the hip backend; got {page_size}")
    kind = kind_of(layout)
    if kind == "vllm" and page_size % 8:
        raise ValueError(f"page_size must be a multiple of 8 for the hip backend's vllm layout; got {page_size}")
    if dtype not in DTYPES:
        raise ValueError(f"dtype must be one of {DTYPES} for the hip backend; got {dtype!r}")
    if gqa < 1:
        raise ValueError(f"gqa must be >= 1; got {gqa}")
    return Instance(head_dim, page_size, _gqa_tile(gqa, kind), dtype, warp, kind)


def instances(warp: int | None = None) -> list[Instance]:
    """Every instance the dispatcher can pick: head dims x page sizes x GQA tiles x dtypes x kinds."""
    warps = (32, 64) if warp is None else (warp,)
    out = []
    for w in warps:
        for kind in KINDS:
            for ps in PAGE_SIZES:
                if kind == "vllm" and ps % 8:
                    continue
                for d in HEAD_DIMS:
                    for g in gqa_tiles(kind):
                        for dt in DTYPES:
                            out.append(Instance(d, ps, g, dt, w, kind))
    return out


def warp_of(target: str) -> int:
    if target.startswith("sm_"):
        return 32
    if target.startswith("gfx9"):
        return 64           # CDNA / GCN: wave64
    if target.startswith("gfx"):
        return 32           # RDNA: wave32 by default
    raise ValueError(f"target must be an sm_XX or gfxXXX name; got {target!r}")


def source() -> tuple[str, str]:
    return SOURCE.read_text(), PRELUDE.read_text()


def options(inst: Instance, target: str) -> list[str]:
    defs = [f"-D{k}={v}" for k, v in inst.defines().items()]
    if target.startswith("sm_"):
        return [f"--gpu-architecture={target}", "-std=c++17", "--use_fast_math", "--ptxas-options=-v", *defs,
                f"-DATTN_MIN_BLOCKS={MIN_BLOCKS}"]
    return [f"--offload-arch={target}", "-O3", "-std=c++17", *defs]


def cache_dir() -> Path:
    root = os.environ.get("ATTN_CACHE_DIR") or os.path.join(os.path.expanduser("~"), ".cache", "attn")
    return Path(root) / "hip"


def _cache_key(inst: Instance, target: str, opts: list[str], compiler: str) -> str:
    src, pre = source()
    h = hashlib.sha256()
    for part in (src, pre, " ".join(opts), target, compiler):
        h.update(part.encode())
        h.update(b"\0")
    return f"{inst.key}_{target}_{h.hexdigest()[:20]}"


def compile(inst: Instance, target: str, use_cache: bool = True) -> Compiled:
    """Compile one instance for one target (hiprtc for gfx*, NVRTC for sm_*), through the disk cache."""
    if inst.warp != warp_of(target):
        raise ValueError(f"instance {inst.key} has warp {inst.warp} but target {target} runs warp {warp_of(target)}")
    opts = options(inst, target)
    nvidia = target.startswith("sm_")
    compiler = runtime.nvrtc_version() if nvidia else runtime.hiprtc_version()
    key = _cache_key(inst, target, opts, compiler)
    path = cache_dir() / (key + (".cubin" if nvidia else ".hsaco"))
    if use_cache and path.is_file():
        binary = path.read_bytes()
        log_path = path.with_suffix(".log")
        log = log_path.read_text() if log_path.is_file() else ""
        return Compiled(inst, target, binary, log, resources(binary, log, nvidia))
    src, pre = source()
    fn = runtime.nvrtc_compile if nvidia else runtime.hiprtc_compile
    binary, log = fn(src, "paged_decode.hip", {"prelude.h": pre}, opts)
    if nvidia and _spills(resources(binary, log, nvidia)):
        # options() asks ptxas for the occupancy the work-group size was chosen for (MIN_BLOCKS per
        # SM: at most 168 registers at 128 threads). Left to itself it gave head_dim 128 GQA 4 175
        # registers (2 work-groups an SM) once the shuffles carried a member mask (ca72c1b), where
        # 161 had fitted 3; the H200's HIP decode then read 2518-2714 GB/s against 2782-3200
        # before. An instance that spills within that budget is compiled without it.
        binary, log = fn(src, "paged_decode.hip", {"prelude.h": pre},
                         [o for o in opts if not o.startswith("-DATTN_MIN_BLOCKS=")])
    if use_cache:
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            tmp = path.with_suffix(f".tmp{os.getpid()}")
            tmp.write_bytes(binary)
            os.replace(tmp, path)
            path.with_suffix(".log").write_text(log)
        except OSError:
            pass            # a read-only cache is not an error: compile again next time
    return Compiled(inst, target, binary, log, resources(binary, log, nvidia))


def compile_instance(target: str, *, head_dim: int, page_size: int, gqa: int, dtype: str = "fp16",
                     layout: str = "HND", use_cache: bool = True) -> Compiled:
    """Compile the instance the dispatcher would pick for these parameters, for `target`."""
    inst = instance_for(head_dim, page_size, gqa, dtype, layout, warp_of(target))
    return compile(inst, target, use_cache=use_cache)


# ------------------------------------------------------------------ resource reports
_PTXAS_FN = re.compile(r"Function properties for (\w+)")
_PTXAS_USED = re.compile(r"Used (\d+) registers(?:.*?(\d+) bytes smem)?")
_PTXAS_SPILL = re.compile(r"(\d+) bytes stack frame, (\d+) bytes spill stores, (\d+) bytes spill loads")


def _spills(res: dict) -> bool:
    return any(r.get("spill_store_bytes", 0) or r.get("stack_bytes", 0) for r in res.values())


def resources(binary: bytes, log: str, nvidia: bool) -> dict:
    """Per kernel: registers, spills and shared memory, from ptxas -v (NVIDIA) or the code object's
    metadata note (AMD). Empty when unavailable."""
    try:
        return _ptxas_resources(log) if nvidia else _amd_resources(binary)
    except Exception:  # a report is best effort; the binary is what matters
        return {}


def _ptxas_resources(log: str) -> dict:
    out, cur = {}, None
    for line in log.splitlines():
        m = _PTXAS_FN.search(line)
        if m:
            cur = out.setdefault(m.group(1), {})
            continue
        if cur is None:
            continue
        m = _PTXAS_SPILL.search(line)
        if m:
            cur.update(stack_bytes=int(m.group(1)), spill_store_bytes=int(m.group(2)),
                       spill_load_bytes=int(m.group(3)))
        m = _PTXAS_USED.search(line)
        if m:
            cur["registers"] = int(m.group(1))
            cur["shared_bytes"] = int(m.group(2) or 0)
    return out


def _amd_resources(binary: bytes) -> dict:
    from .amdgpu_meta import kernel_resources
    return kernel_resources(binary)
