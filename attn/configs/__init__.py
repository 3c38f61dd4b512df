"""Kernel configurations: tuned per device (attn/configs/<vendor>/<device>.json, written by
`python -m attn tune`), with heuristics that are sane on both vendors when a device has no file.

    cfg = lookup("decode", platform, head_dim=128, group=4, page_size=16, dtype="bfloat16",
                 batch=64, kv_len=4096)                  # -> {"BLOCK_M": 16, "BLOCK_N": 64, ...}
    auto_backend("decode", platform, **same_shape)     # -> "hip" / "triton" / None (no measurement)

A file holds, per operation, a list of entries {"bucket": {...}, "config": {...}, "backend": ...,
"time_us": ..., "heuristic_time_us": ...}. A bucket is a shape: discrete keys (dtype, head_dim, and
layout: the KV layout's family, layouts.Layout.family) must match; size keys (group, page_size,
batch, q_len, kv_len) are compared in log2 distance and the nearest entry wins. Keys the caller
does not give are not compared; a bucket without a layout was tuned on a "rows" layout. A device
with no file, or a shape with no entry of its dtype, head_dim and layout, gets heuristic().

Files are read once per (vendor, device) and lookups are memoized per shape: no file I/O and no
search on the hot path. Vendor differences live here, as data: a kernel never asks which vendor it
runs on.
"""
from __future__ import annotations

import contextlib
import json
import math
import os
from pathlib import Path

from attn.platform import Platform, dtype_name

_DIR = Path(__file__).parent
EXACT_KEYS = ("dtype", "head_dim", "layout")
#: What a bucket without the key means. Files from before the layout key were tuned on HND / NHD /
#: ragged caches: their decode configs made vLLM's layout 0.79x slower on the H200 (8 x 32768).
BUCKET_DEFAULTS = {"layout": "rows"}
# How much a factor of 2 counts, per size key: page size 1 vs 16 is another kernel variant and a
# different GQA group changes the tile's row
# packing more than a different batch size does.
WEIGHTS = {"group": 4.0, "page_size": 8.0, "batch": 1.0, "q_len": 1.0, "kv_len": 1.0}

_files: dict[tuple[str, str], dict] = {}
_memo: dict = {}
_overrides: dict[str, dict] = {}
_generation = 0          # bumped whenever a lookup could answer differently (see generation())
_config_dir: Path | None = None


# ------------------------------------------------------------------------------ files
def config_dir() -> Path:
    """Where device files are read from: ATTN_CONFIG_DIR, use_dir(), or this package."""
    if _config_dir is not None:
        return _config_dir
    env = os.environ.get("ATTN_CONFIG_DIR")
    return Path(env) if env else _DIR


def use_dir(path) -> None:
    """Read device files from `path` (None: the package's own); clears the caches."""
    global _config_dir
    _config_dir = None if path is None else Path(path)
    clear_cache()


def clear_cache() -> None:
    global _generation
    _files.clear()
    _memo.clear()
    _generation += 1


def generation() -> int:
    """A counter that changes whenever lookup() could answer differently (caches cleared, another
    config directory, an override entered or left): callers that memoize a lookup on a hot path key
    their memo on it."""
    return _generation


def file_for(plat: Platform, root=None) -> Path:
    return Path(root or config_dir()) / plat.vendor / f"{plat.config_key}.json"


def load_file(path) -> dict:
    """A device file as a dict ({} when there is none)."""
    p = Path(path)
    if not p.exists():
        return {}
    data = json.loads(p.read_text())
    if not isinstance(data, dict) or not isinstance(data.get("ops", {}), dict):
        raise ValueError(f"{p}: expected a JSON object with an 'ops' object; got {type(data).__name__}")
    return data


def tuned(plat: Platform) -> dict:
    """The device file's contents (cached: read once per device)."""
    key = (plat.vendor, plat.config_key)
    if key not in _files:
        _files[key] = load_file(file_for(plat))
    return _files[key]


# ------------------------------------------------------------------------------ lookup
def lookup(op: str, plat: Platform, **shape) -> dict:
    """Kernel parameters for `op` at `shape` on `plat`: the nearest tuned entry over the heuristic.

    shape: head_dim, dtype ("bfloat16", ...), and any of group, page_size, batch, q_len, kv_len.
    Returns a fresh dict the caller may modify.
    """
    if _overrides and op in _overrides:
        cfg = heuristic(op, plat, **shape)
        cfg.update(_overrides[op])
        return cfg
    key = (op, plat, tuple(sorted(shape.items())))
    hit = _memo.get(key)
    if hit is None:
        cfg = heuristic(op, plat, **shape)
        entry = nearest(tuned(plat).get("ops", {}).get(op, []), shape)
        if entry is not None:
            cfg.update(entry.get("config", {}))
        hit = _memo[key] = (cfg, entry)
    return dict(hit[0])


def entry_for(op: str, plat: Platform, **shape) -> dict | None:
    """The tuned entry lookup() would use (with its measured times), or None."""
    lookup(op, plat, **shape)
    if _overrides and op in _overrides:
        return None
    return _memo[(op, plat, tuple(sorted(shape.items())))][1]


def auto_backend(op: str, plat: Platform, **shape) -> str | None:
    """The backend the tuner measured fastest for the nearest bucket ("hip", "triton"), or None
    when nothing was measured for this device and shape (dispatch then takes the first available)."""
    entry = entry_for(op, plat, **shape)
    return entry.get("backend") if entry else None


def distance(bucket: dict, shape: dict) -> float | None:
    """log2 distance between a stored bucket and a query shape; None when an exact key differs."""
    d = 0.0
    bucket = {**BUCKET_DEFAULTS, **bucket}
    for k, v in shape.items():
        if k not in bucket or v is None:
            continue
        b = bucket[k]
        if k in EXACT_KEYS or not isinstance(v, (int, float)) or isinstance(v, bool):
            if str(b) != str(v):
                return None
            continue
        d += WEIGHTS.get(k, 1.0) * abs(math.log2(max(float(b), 1.0)) - math.log2(max(float(v), 1.0)))
    for k in EXACT_KEYS:               # an entry must say which dtype and head_dim it was tuned for
        if k in shape and k not in bucket:
            return None
    return d


def nearest(entries, shape: dict) -> dict | None:
    """The entry whose bucket is nearest to shape (first of equals), or None."""
    best, best_d = None, None
    for e in entries:
        d = distance(e.get("bucket", {}), shape)
        if d is not None and (best_d is None or d < best_d):
            best, best_d = e, d
    return best


def bucket_of(**shape) -> dict:
    """A shape rounded to its bucket: size keys to the nearest power of two (ties up)."""
    out = {}
    for k, v in shape.items():
        if k in WEIGHTS and isinstance(v, int) and v > 0 and k not in ("group", "page_size"):
            out[k] = 1 << int(math.floor(math.log2(v) + 0.5))
        else:
            out[k] = v
    return out


@contextlib.contextmanager
def override(op: str, cfg: dict):
    """Force `cfg` (over the heuristic) for every lookup of `op` inside the block: the tuner and
    the benchmark's heuristic column use it; production code never does."""
    global _generation
    prev = _overrides.get(op)
    _overrides[op] = dict(cfg)
    _generation += 1
    try:
        yield
    finally:
        if prev is None:
            _overrides.pop(op, None)
        else:
            _overrides[op] = prev
        _generation += 1


# ------------------------------------------------------------------------------ heuristics
def hopper(plat: Platform) -> bool:
    """NVIDIA sm_90 or newer (warpgroup MMA, 227 KB shared memory); sm_80 / sm_86 / sm_89 are not."""
    if plat.vendor != "nvidia" or not plat.arch.startswith("sm_"):
        return False
    digits = "".join(c for c in plat.arch[3:] if c.isdigit())
    return bool(digits) and int(digits) >= 90


def heuristic(op: str, plat: Platform, head_dim: int = 128, **shape) -> dict:
    """Untuned defaults, sane on both vendors (measured on neither device in particular)."""
    amd = plat.vendor == "amd"
    if op in ("prefill", "extend"):
        # Chosen so that no variant spills (ci/compile_matrix.py; docs/compile_matrix.md has the
        # registers). Hopper (sm_90: wgmma, accumulators spread over a warpgroup) keeps the tile
        # measured on the H100 for head_dim 128, and takes it for 64 too (4 warps spilled 24-32
        # bytes there); Ampere / Ada (mma.sync: each warp holds its
        # rows' Q, S and O) spilled 40-96 bytes at 128x64 / 8 warps / 3 stages and 16-24 at
        # 128x32 / 2 stages; 128x16 / 2 stages leaves room for every feature branch.
        # Head dims 192 / 256 spilled on both at 64x32 / 4 warps: 8 warps halve each thread's
        # accumulator.
        if head_dim <= 128:
            if hopper(plat):
                cfg = dict(BLOCK_M=128, BLOCK_N=64, num_warps=8, num_stages=3)
            else:
                cfg = dict(BLOCK_M=128, BLOCK_N=16, num_warps=8, num_stages=2)
        else:
            cfg = dict(BLOCK_M=64, BLOCK_N=32, num_warps=8, num_stages=2)
    elif op == "decode":
        # Memory-bound. The M tile holds one kv head's GQA group (at least the MMA's 16 rows), so
        # K/V are read once per kv head. NVIDIA streams K/V with .cg (cached in L2 only: each element
        # is read once). Split-KV (triton_kernels/decode.py: choose_splits) aims at programs_per_sm
        # programs a multiprocessor, chunks of at least min_chunk_blocks blocks.
        group = int(shape.get("group") or 1)
        cfg = dict(BLOCK_M=min(max(16, 1 << (group - 1).bit_length()), 64), BLOCK_N=64 if head_dim <= 128 else 32,
                   num_warps=4, num_stages=3, cache_modifier="" if amd else ".cg",
                   programs_per_sm=4, min_chunk_blocks=4)
        if plat.vendor == "nvidia" and not hopper(plat) and shape.get("page_size") == 1:
            # A page number per key: 3 stages spilled 8-16 bytes on sm_80 (head_dim 128); 2 none
            # over a token pool, but 8 over a ragged cache (no page map: ptxas held it to 128
            # registers); 32-key blocks take 72-96, no spill, for both.
            cfg["num_stages"] = 2
            cfg["BLOCK_N"] = min(cfg["BLOCK_N"], 32)
        if plat.vendor == "nvidia" and not hopper(plat):
            # One page number a run of keys (attention.py: PAGE_RUNS) spilled 8-16 bytes on sm_80
            # at head_dim 128 (ptxas held it to 96 registers; compile matrix, Triton 3.9). Not
            # measured on an sm_80 device: the load a key it had keeps it clean.
            cfg["page_runs"] = False
        if plat.vendor == "nvidia" and not hopper(plat) and head_dim > 128:
            # ptxas held head dims 192 / 256 to 168 registers (three blocks an SM) and spilled 8-16
            # bytes on sm_80 (compile matrix, Triton 3.9; which group and feature set spilled moved
            # with every tile tried). With the ceiling at 255 it takes the 177-206 they need and
            # spills nothing, at two blocks an SM: a decode block streams K/V through 3 stages.
            cfg["maxnreg"] = 255
        if shape.get("layout") == "vllm":
            # vLLM's cache: a page's K and V of one head are each one contiguous run; full blocks
            # read them as flat rows (triton_kernels/attention.py: K_BY_GROUP 2). H200: 1.25x at
            # 64 x 4096 and 1.29x at 8 x 32768 over the dim-group tile (mode 1), a quarter of its L2
            # requests; registers within 4 of the row tile on sm_80 / sm_90 / gfx942 at GQA 1-8 and
            # head_dim 64-256 (Triton 3.9), no spill.
            cfg["k_by_group"] = 2
    else:
        cfg = {}
    if op in ("prefill", "extend", "decode"):
        cfg.setdefault("cache_modifier", "")
    if amd and op in ("prefill", "extend", "decode"):
        # AMD: the stream pipeliner wants 2 stages; waves_per_eu trades registers for occupancy
        # and the 16x16 MFMA suits these tile sizes (64-wide wavefronts: fewer warps).
        cfg.update(num_stages=min(cfg.get("num_stages", 2), 2), waves_per_eu=2, matrix_instr_nonkdim=16)
        if cfg.get("num_warps", 4) > 4:
            cfg["num_warps"] = 4
        if op in ("prefill", "extend"):
            # 256 VGPRs a lane at waves_per_eu=2: a 128x64 tile spilled on gfx942 (compile matrix);
            # 64x32 fits head_dim <= 128; 192 / 256 spilled 4-34 VGPRs at 64x32 on gfx90a-gfx950
            # and none at 64x16. (Feature branches: triton_kernels/prefill.py config_for.)
            cfg.update(BLOCK_M=64, BLOCK_N=32 if head_dim <= 128 else 16)
    if plat.vendor == "cpu" and op in ("prefill", "extend", "decode"):
        # The interpreter: small tiles exercise several blocks on the tests' short sequences.
        cfg.update(BLOCK_M=16, BLOCK_N=16, num_warps=1, num_stages=1)
    return cfg


def decode_shape(q, kv) -> dict:
    """The lookup shape of a decode call, without a host sync: the mean length comes from the
    number of pages the batch's page map holds (rows, for ragged caches)."""
    b = q.shape[0]
    n = kv.page_indices.shape[0] if kv.page_indices is not None else kv.num_pages
    if kv.max_pages_hint is not None:             # a padded page table: its width
        n = kv.max_pages_hint * b
    return dict(head_dim=kv.head_dim, group=q.shape[1] // kv.num_kv_heads, page_size=kv.page_size,
                dtype=dtype_name(q.dtype), layout=kv.layout.family, batch=b,
                kv_len=max(1, n * kv.page_size // max(b, 1)))
