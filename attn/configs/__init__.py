"""Kernel configurations: tuned per device (attn/configs/<vendor>/<device>.json), with heuristics
that are sane on both vendors when a device has no file.

lookup(op, platform, **shape) -> dict of kernel parameters. Vendor differences live here, as
data: a kernel never asks which vendor it runs on.
"""
from __future__ import annotations

import functools
import json
from pathlib import Path

from attn.platform import Platform

_DIR = Path(__file__).parent


@functools.lru_cache(maxsize=None)
def _tuned(vendor: str, key: str) -> dict:
    path = _DIR / vendor / f"{key}.json"
    return json.loads(path.read_text()) if path.exists() else {}


def _bucket_key(shape: dict) -> str:
    return ",".join(f"{k}={shape[k]}" for k in sorted(shape))


def lookup(op: str, plat: Platform, **shape) -> dict:
    """The tuned entry for (op, shape) on this device if there is one, else the heuristic."""
    cfg = heuristic(op, plat, **shape)
    tuned = _tuned(plat.vendor, plat.config_key).get(op, {})
    entry = tuned.get(_bucket_key(shape)) if tuned else None
    if entry is None and tuned:
        entry = _nearest(tuned, shape)
    if entry:
        cfg.update(entry.get("config", entry))
    return cfg


def _nearest(table: dict, shape: dict):
    """The bucket with the same discrete keys (head_dim, dtype, ...) and the closest sizes."""
    best, best_d = None, None
    for key, entry in table.items():
        kv = dict(part.split("=", 1) for part in key.split(","))
        if set(kv) != set(shape):
            continue
        d = 0.0
        ok = True
        for k, v in shape.items():
            if isinstance(v, (int, float)) and not isinstance(v, bool) and k not in ("head_dim", "group", "page_size"):
                import math
                d += abs(math.log2(max(float(kv[k]), 1)) - math.log2(max(float(v), 1)))
            elif str(v) != kv[k]:
                ok = False
        if ok and (best_d is None or d < best_d):
            best, best_d = entry, d
    return best


def heuristic(op: str, plat: Platform, head_dim: int = 128, **shape) -> dict:
    amd = plat.vendor == "amd"
    if op in ("prefill", "extend"):
        if head_dim <= 64:
            cfg = dict(BLOCK_M=128, BLOCK_N=64, num_warps=4, num_stages=3)
        elif head_dim <= 128:
            cfg = dict(BLOCK_M=128, BLOCK_N=64, num_warps=8, num_stages=3)
        else:
            cfg = dict(BLOCK_M=64, BLOCK_N=32, num_warps=4, num_stages=2)
    elif op == "decode":
        cfg = dict(BLOCK_M=16, BLOCK_N=64 if head_dim <= 128 else 32, num_warps=4, num_stages=3)
    else:
        cfg = {}
    cfg.setdefault("cache_modifier", "")
    if amd:
        # AMD: the stream pipeliner wants 2 stages; waves_per_eu trades registers for occupancy
        # and the 16x16 MFMA suits these tile sizes (64-wide wavefronts: fewer warps).
        cfg.update(num_stages=min(cfg.get("num_stages", 2), 2), waves_per_eu=2, matrix_instr_nonkdim=16)
        if cfg.get("num_warps", 4) > 4:
            cfg["num_warps"] = 4
    if plat.vendor == "cpu":
        # The interpreter: small tiles exercise several blocks on the tests' short sequences.
        cfg.update(BLOCK_M=16, BLOCK_N=16, num_warps=1, num_stages=1)
    return cfg
