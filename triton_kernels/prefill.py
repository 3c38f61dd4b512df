"""Backend "triton" of attn.prefill: plan the batch's query tiles, launch attention.py's kernel.

The functional form plans on every call (one host sync for the lengths); attn.BatchPrefill
(attn/plan_prefill.py) plans once into preallocated buffers and only launches per run.
"""
from __future__ import annotations

import contextlib
import math
import os

import numpy as np
import torch

from attn import configs, platform
from attn.layouts import validation as V
from attn.rotary import check_rotary
from attn.scheduling import WorkList, prefill_items
from .attention import launch, tile_shape
from .mask_summary import mask_inputs


# ------------------------------------------------------------------------------ planning
#: Feature branches that take registers beyond the plain causal tile (config_for's `features`).
FEATURES = frozenset({"mask", "window", "softcap", "transform", "lse", "rotary", "rotate_k", "persistent"})


def features_of(*, custom_mask=None, window_left=-1, softcap=0.0, logits_transform=None, return_lse=False,
                rotary=None, persistent=False) -> frozenset:
    """The config_for features of a call's options."""
    return frozenset(name for name, on in (
        ("mask", custom_mask is not None), ("window", window_left is not None and window_left >= 0),
        ("softcap", bool(softcap)), ("transform", logits_transform is not None), ("lse", bool(return_lse)),
        ("rotary", rotary is not None), ("rotate_k", bool(getattr(rotary, "rotate_k", False))),
        ("persistent", bool(persistent))) if on)


def config_for(plat, head_dim: int, group: int, page_size: int, dtype: torch.dtype, masked: bool = False,
               features=frozenset(), **shape) -> dict:
    """The launch config (attn/configs): shared by the launcher, BatchPrefill, BatchAttention and
    compile_specs(), so what the compile matrix checks is what runs. `features` (a subset of
    FEATURES; masked=True adds "mask") narrow the KV block where a branch's registers made the
    tile spill (numbers from ci/compile_matrix.py, Triton 3.9). shape (batch, q_len, kv_len; see
    batch_shape) picks among a device's tuned buckets."""
    features = frozenset(features) | ({"mask"} if masked else frozenset())
    unknown = features - FEATURES
    if unknown:
        raise ValueError(f"unknown prefill features {sorted(unknown)}; known: {sorted(FEATURES)}")
    cfg = configs.lookup("prefill", plat, head_dim=head_dim, group=group, page_size=page_size,
                         dtype=platform.dtype_name(dtype), **shape)
    block_n = cfg["BLOCK_N"]
    if plat.vendor == "amd" and features & {"window", "softcap", "transform", "lse", "persistent"}:
        # 64x32 spilled 2-18 VGPRs with window + softcap + lse, or the persistent loop (two tiles in
        # one kernel) on gfx90a-gfx950; 64x16 none. (The custom mask did too until it was packed.)
        block_n = min(block_n, 16)
        if "persistent" in features and head_dim > 128 and shape.get("layout") == "vllm":
            # ... and over vLLM's split K at d192 / d256 spilled 1-37 registers at 4 warps (SGPRs
            # on gfx90a); 8 warps unpipelined none.
            cfg.update(num_warps=8, num_stages=1)
    if plat.vendor == "nvidia" and head_dim > 128:
        if "persistent" in features:
            # The persistent loop spilled 8-72 bytes at 64x32 and 8-168 at 64x16 (sm_80, sm_90);
            # a 32-row tile none. One program an SM is the design, but ptxas then held the 32-row
            # tile to 128 registers (two programs an SM) and spilled 32-40 bytes over a token pool
            # on sm_90; 255 lets it take 180.
            cfg["BLOCK_M"] = min(cfg["BLOCK_M"], 32)
            cfg["maxnreg"] = 255
    if "rotate_k" in features and plat.vendor == "nvidia":
        # K rotated on load reads each key's partner half too, a third pipelined K/V-sized load:
        # at 128x64 / 3 stages sm_90 needed 289 KB of shared memory (d80-d128), and sm_80's 64x32 /
        # 2 stages (d192 / d256) spilled 3 KB. 32-key blocks fit sm_90 (164 KB, 237 registers);
        # sm_80 compiles clean only unpipelined (255 registers, 53 KB).
        if configs.hopper(plat) and head_dim > 64:
            block_n = min(block_n, 32)
        elif not configs.hopper(plat) and head_dim > 128:
            cfg["num_stages"] = 1
    if ("persistent" in features and features & {"window", "softcap", "lse", "transform"}
            and configs.hopper(plat) and 64 < head_dim <= 128):
        # BatchAttention with window + softcap + lse spilled 16 bytes at 128x64 on sm_90 (d80-d128;
        # the persistent loop holds both tiles at 255 registers); 128x32: 226-248, none.
        block_n = min(block_n, 32)
    cfg["BLOCK_N"] = block_n
    if "persistent" in features:
        # The persistent loop holds both tiles at ~255 registers: one page number a run of keys
        # (attention.py: PAGE_RUNS) spilled 16-32 bytes there on sm_90 (d128) and 1-3 registers
        # on gfx90a / gfx950 (d80-d192); a load a key, none.
        cfg["page_runs"] = False
    if "persistent" in features and plat.vendor == "nvidia" and plat.arch == "sm_90" and head_dim == 128:
        # BatchAttention runs one 8-warp program an SM (the large tile holds the registers), so its
        # decode items have a quarter of BatchDecode's programs in flight. Their KV loop with
        # 128-key blocks and 5 stages made a decode-only batch 1.81x faster on the H200 (573 -> 317
        # us; 3 or 4 stages gained nothing, 7 no more than 5; 2026-12-03, benchmarks/results/
        # h200-2026-12-03/): 255 registers, no spill. Head dim 128 only: 5 stages spilled 8 bytes
        # at d80/d96, 128-key blocks needed 276 KB of shared memory at d192/d256 (Triton 3.9).
        # vLLM's layout: 64-key blocks (128 spilled 24 bytes; the split K's address math).
        cfg.setdefault("block_n_decode", 64 if shape.get("layout") == "vllm" else 128)
        cfg.setdefault("stages_decode", 5)
    return cfg


def ordered_items(q_lens: np.ndarray, kv_lens: np.ndarray, tq: int, causal: bool, window_left: int) -> np.ndarray:
    """prefill_items, longest first: under a causal mask the last query tiles of a long sequence
    see the most keys; launching them first keeps them off the tail of the grid (LPT order)."""
    items = prefill_items(q_lens, tq)
    if items.shape[0] == 0:
        return items
    req, q_start = items[:, 0], items[:, 1]
    ql, kl = q_lens[req].astype(np.int64), kv_lens[req].astype(np.int64)
    hi = kl
    if causal:
        hi = np.minimum(kl, kl - ql + np.minimum(q_start + tq, ql))
    lo = np.zeros_like(hi)
    if window_left >= 0:
        lo = np.maximum(0, kl - ql + q_start - window_left)
    work = np.maximum(hi - lo, 0)
    return items[np.argsort(-work, kind="stable")]


def check_mask(custom_mask, q_lens, kv_lens):
    want = int((q_lens.astype(np.int64) * kv_lens.astype(np.int64)).sum())
    if custom_mask.dim() != 1 or custom_mask.dtype != torch.bool:
        V.fail(f"custom_mask must be a 1-D bool tensor (FlashInfer's flattened form); got {custom_mask.dtype} "
               f"shape {list(custom_mask.shape)}", TypeError)
    if custom_mask.shape[0] != want:
        V.fail(f"custom_mask must have sum(q_len * kv_len) = {want} entries; got {custom_mask.shape[0]}")
    if len(kv_lens) and int(kv_lens.max()) >= 2 ** 27:
        # The kernel addresses a tile's packed rows with 32-bit offsets: 128 rows x kv_len / 8 bytes.
        V.fail(f"custom_mask supports kv_len < 2**27; got kv_len {int(kv_lens.max())}")


def host_lengths(q_indptr, kv) -> tuple[np.ndarray, np.ndarray]:
    """(q_lens, kv_lens) on the host in one device-to-host copy."""
    b = kv.batch_size
    both = torch.cat([q_indptr.reshape(-1).to(torch.int64), kv.seq_lens.to(torch.int64)]).cpu().numpy()
    ip = both[: b + 1]
    if ip[0] != 0 or (np.diff(ip) < 0).any():
        V.check_indptr_values("q_indptr", q_indptr)
    return np.diff(ip), both[b + 1:]


def batch_shape(q_lens: np.ndarray, kv_lens: np.ndarray) -> dict:
    """The size keys a tuned bucket is matched on (attn.configs): batch and mean lengths. A batch
    whose queries are as long as its KV is a prefill (its buckets carry no q_len); else an extend."""
    b = max(len(q_lens), 1)
    q_len, kv_len = max(1, int(q_lens.sum()) // b), max(1, int(kv_lens.sum()) // b)
    return dict(batch=len(q_lens), kv_len=kv_len) if q_len == kv_len else dict(batch=len(q_lens), q_len=q_len,
                                                                              kv_len=kv_len)


# ------------------------------------------------------------------------------ functional
@contextlib.contextmanager
def portable_only():
    """Plans made inside use the portable kernel (attention.py) even where the Hopper one would
    run: the tuner tunes the portable kernel's tiles, the bench times it beside the Hopper one."""
    old = os.environ.get("ATTN_HOPPER_PREFILL")
    os.environ["ATTN_HOPPER_PREFILL"] = "0"
    try:
        yield
    finally:
        if old is None:
            os.environ.pop("ATTN_HOPPER_PREFILL", None)
        else:
            os.environ["ATTN_HOPPER_PREFILL"] = old


def hopper_kernel(kv, q_heads: int, dtype, device, **features):
    """triton_kernels/prefill_hopper (the warp-specialized Hopper kernel) where it runs this batch
    (prefill_hopper.eligible), else None: imported only then (Gluon's Hopper API, Triton >= 3.6)."""
    if torch.device(device).type != "cuda" or torch.version.hip:
        return None
    try:
        from . import prefill_hopper
    except ImportError:
        return None
    return prefill_hopper if prefill_hopper.eligible(kv, q_heads, dtype, device, **features) else None


def prefill(q, kv, q_indptr, *, causal=True, sm_scale=None, window_left=-1, softcap=0.0, logits_transform=None,
            custom_mask=None, rotary=None, return_lse=False):
    total_q, hq, d = q.shape
    q_lens, kv_lens = host_lengths(q_indptr, kv)
    if int(q_lens.sum()) != total_q:
        V.fail(f"q_indptr[-1] must equal q's rows {total_q}; got {int(q_lens.sum())}")
    group = hq // kv.num_kv_heads
    cfg = config_for(platform.for_tensor(q), d, group, kv.page_size, q.dtype,
                     features=features_of(custom_mask=custom_mask, window_left=window_left, softcap=softcap,
                                          logits_transform=logits_transform, return_lse=return_lse, rotary=rotary),
                     layout=kv.layout.family, **batch_shape(q_lens, kv_lens))
    hopper = hopper_kernel(kv, hq, q.dtype, q.device, custom_mask=custom_mask, window_left=window_left,
                           softcap=softcap, logits_transform=logits_transform, rotary=rotary)
    if hopper is not None and hopper.q_fits(q):
        if custom_mask is not None:
            check_mask(custom_mask, q_lens, kv_lens)
        return hopper.prefill(q, kv, q_indptr, causal=causal, sm_scale=sm_scale, return_lse=return_lse,
                              custom_mask=custom_mask, lens=(q_lens, kv_lens))
    _, tq, _ = tile_shape(group, cfg["BLOCK_M"])
    items = ordered_items(q_lens, kv_lens, tq, causal, window_left)
    work = WorkList.build(items, q.device)
    packed = mask_indptr = blocks = None
    if custom_mask is not None:
        check_mask(custom_mask, q_lens, kv_lens)
        packed, mask_indptr, *blocks = mask_inputs(custom_mask, items, q_lens, kv_lens, tq, cfg["BLOCK_N"], causal,
                                                   window_left)
    if rotary is not None:
        check_rotary(rotary, d, q.device, kv_lens)
    out = torch.empty_like(q)
    lse = torch.empty(total_q, hq, dtype=torch.float32, device=q.device) if return_lse else None
    if total_q:
        launch(q, kv, q_indptr, work, out, lse, cfg, causal=causal,
               sm_scale=1.0 / math.sqrt(d) if sm_scale is None else sm_scale, window_left=window_left,
               softcap=softcap, transform=logits_transform, custom_mask=packed, mask_indptr=mask_indptr,
               mask_blocks=blocks, rotary=rotary, return_lse=return_lse)
    return (out, lse) if return_lse else out


# ------------------------------------------------------------------------------ compile matrix
def compile_specs():
    """The prefill configurations of attention_kernel (triton_kernels/specs.py's contract): for
    each vendor's heuristic config, head dims 64..256, fp16/bf16, the GQA tile shapes of groups 1,
    4, 8, and the feature branches a user reaches (causal; window + softcap + lse; custom mask;
    rotary, with K too over a ragged cache; the vllm split layout; ragged caches)."""
    from .attention import SPEC_FAMILY, compile_spec
    from .specs import per_target, tuned_entries

    variants = {
        "causal": dict(CAUSAL=True),
        "window_softcap_lse": dict(CAUSAL=True, WINDOW=True, SOFTCAP=True, RETURN_LSE=True),
        "mask": dict(CAUSAL=False, HAS_MASK=True),
        "rotary": dict(CAUSAL=True, ROT=1, ROT_DIM=64),
        # A ragged K given un-rotated, rotated on load too (attn.Rotary(rotate_k=True)).
        "rotary_k": dict(CAUSAL=True, ROT=1, ROT_DIM=64, ROTATE_K=True),
        # attn.BatchAttention: the persistent loop with both tiles (the decode tile: 16 rows).
        "persistent": dict(CAUSAL=True, HAS_PARTIALS=True, PERSISTENT=True, BLOCK_M_DECODE=16, GH_DECODE=4,
                           TQ_DECODE=4),
        "persistent_window_softcap_lse": dict(CAUSAL=True, HAS_PARTIALS=True, PERSISTENT=True, BLOCK_M_DECODE=16,
                                              GH_DECODE=4, TQ_DECODE=4, WINDOW=True, SOFTCAP=True, RETURN_LSE=True),
    }
    # Each variant's features, as the launcher derives them from the call's options.
    features = {"causal": frozenset(), "window_softcap_lse": frozenset({"window", "softcap", "lse"}),
                "mask": frozenset({"mask"}), "rotary": frozenset({"rotary"}),
                "rotary_k": frozenset({"rotary", "rotate_k"}),
                "persistent": frozenset({"persistent"}),
                "persistent_window_softcap_lse": frozenset({"persistent", "window", "softcap", "lse"})}
    specs = []
    for dt in ("fp16", "bf16"):
        tdt = getattr(torch, {"fp16": "float16", "bf16": "bfloat16"}[dt])
        for hd in (64, 80, 96, 128, 192, 256):
            for group in (1, 4, 8):
                names = list(variants) if (group == 4 and dt == "bf16") else ["causal"]
                for name in names:
                    # (layout, page size) pairs: BatchAttention runs token pools and ragged caches
                    # through the page-map binary at page size 1.
                    pairs = {"causal": [("NHD|HND", 16), ("ragged", 1), ("vllm", 16)] if group == 4
                             else [("NHD|HND", 16)],
                             "rotary_k": [("ragged", 1)],
                             "persistent": [("NHD|HND", 16), ("NHD|HND", 1), ("vllm", 16)]}.get(name, [("NHD|HND", 16)])
                    for layout, ps in pairs:
                        # One spec per distinct config: the launcher picks per arch (sm_80 != sm_90).
                        for prefix, targets, cfg in per_target(
                                lambda plat: config_for(plat, hd, group, ps, tdt, features=features[name],
                                                        layout=SPEC_FAMILY[layout])):
                            if name == "persistent_window_softcap_lse" and targets[0].startswith("gfx"):
                                # Open: 8-23 SGPRs spilled (to VGPR lanes, no scratch) on gfx90a-gfx950
                                # at every tile and warp count tried (benchmarks/NOTES.md).
                                continue
                            page = "/p1" if ps == 1 and layout != "ragged" else ""
                            specs.append(compile_spec("prefill", f"{prefix}/{dt}/d{hd}/g{group}/{name}{page}", targets,
                                                      dt, cfg, group=group, head_dim=hd, page_size=ps, layout=layout,
                                                      **variants[name]))
    for t in tuned_entries("prefill"):
        cfg = config_for(t.platform, t.head_dim, t.group, t.page_size, getattr(torch, t.torch_dtype),
                         layout=t.family, **t.shape)
        for layout in t.layouts:
            specs.append(compile_spec("prefill", t.label, (t.platform.arch,), t.dtype, cfg, group=t.group,
                                      head_dim=t.head_dim, page_size=t.page_size, layout=layout, CAUSAL=True))
    return specs
