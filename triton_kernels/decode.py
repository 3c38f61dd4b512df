"""Backend "triton" of attn.decode: split-KV over the batch (flash decoding), the GQA heads of a
kv head packed into the M tile, partials combined by the segmented merge (merge.py).

The functional form is attn.BatchDecode planned for one batch and run once (one host sync for
the lengths); servers keep a BatchDecode and re-plan it per step.

Decode reads every K and V element once and does little arithmetic on it: its speed is the
fraction of the device's bandwidth it reaches. Two things decide that: enough programs with
loads in flight on every multiprocessor (split long sequences into chunks), and no long tail
(chunks of equal size, so the last programs finish together). choose_splits() balances a mixed
batch by giving every program about the same number of tokens.
"""
from __future__ import annotations

import numpy as np
import torch

from attn import configs, platform


#: Feature branches that can change the decode config (config_for's `features`).
FEATURES = frozenset({"window", "softcap", "transform", "lse", "rotate_k"})


def features_of(*, window_left=-1, softcap=0.0, logits_transform=None, return_lse=False, rotary=None) -> frozenset:
    """The config features of a decode's options."""
    return frozenset(name for name, on in (
        ("window", window_left is not None and window_left >= 0), ("softcap", bool(softcap)),
        ("transform", logits_transform is not None), ("lse", bool(return_lse)),
        ("rotate_k", bool(getattr(rotary, "rotate_k", False)))) if on)


def choose_config(plat, head_dim: int, group: int, page_size: int, dtype: str, features=frozenset(),
                  **shape) -> dict:
    """attn.configs' "decode" entry for this shape, narrowed for the feature branches that spill
    with it (numbers from ci/compile_matrix.py, Triton 3.9): shared by config_for and
    compile_specs(), so what the compile matrix checks is what runs."""
    features = frozenset(features)
    unknown = features - FEATURES
    if unknown:
        raise ValueError(f"unknown decode features {sorted(unknown)}; known: {sorted(FEATURES)}")
    cfg = configs.lookup("decode", plat, head_dim=head_dim, group=group, page_size=page_size, dtype=dtype, **shape)
    if plat.vendor == "amd" and features & {"window", "softcap", "transform"}:
        # Window + softcap + lse spilled 39-56 VGPRs at BLOCK_N 64 and 2-13 at 32 (gfx90a-gfx950,
        # head_dim 64-256); none at 16.
        cfg["BLOCK_N"] = min(cfg["BLOCK_N"], 16)
    if "rotate_k" in features:
        # K rotated on load (a ragged K given un-rotated) reads each key's partner half too: at 3
        # stages sm_90 needed 245-254 KB of shared memory at d80 / d96 / d256 (2 stages: 139 KB at
        # most), and AMD spilled 28-94 VGPRs at d128 / d256 with 32 keys (none with 16).
        if plat.vendor == "amd":
            cfg["BLOCK_N"] = min(cfg["BLOCK_N"], 16)
        elif configs.hopper(plat) and head_dim > 64:
            cfg["num_stages"] = min(cfg["num_stages"], 2)
    return cfg


def config_for(device, kv, q_heads: int, features=frozenset(), **shape) -> dict:
    """The kernel configuration for a decode over kv (attn.configs' "decode" entry, per features)."""
    dev = torch.device(device)
    plat = platform.get(dev.index) if dev.type == "cuda" else platform.get_cpu()
    return choose_config(plat, kv.head_dim, q_heads // kv.num_kv_heads, kv.page_size, platform.dtype_name(kv.dtype),
                         features, layout=kv.layout.family, **shape)


def choose_splits(kv_lens: np.ndarray, num_kv_heads: int, num_sms: int, cfg: dict,
                  num_splits: int | None = None, max_splits: int | None = None) -> np.ndarray:
    """KV chunks per sequence.

    Programs are (chunk, kv head) pairs. The batch's token-heads are divided into about
    programs_per_sm * num_sms equal chunks (tokens per program the same for every sequence: a
    balanced split for mixed lengths, long sequences get more chunks), never shorter than
    min_chunk_blocks blocks (a chunk's fixed cost: q load, partial write, merge). Sequences are
    split only when the batch alone does not give enough programs. Config fit_wave: the shortest
    chunks whose count stays within the target instead (_fit_wave).

    The number of chunks is at most len(kv_lens) + programs_per_sm * num_sms / num_kv_heads,
    which sizes BatchDecode's work list."""
    b = len(kv_lens)
    if b == 0:
        return np.zeros(0, np.int64)
    if num_splits is not None:
        return np.full(b, num_splits, np.int64)
    block_n = cfg["BLOCK_N"]
    target = max(int(cfg.get("programs_per_sm", 4) * num_sms), 1)
    lens = np.maximum(np.asarray(kv_lens, np.int64), 0)
    min_blocks = int(cfg.get("min_chunk_blocks", 4))
    if cfg.get("fit_wave"):
        splits = _fit_wave(lens, block_n, min_blocks, max(target // num_kv_heads, b))
    else:
        total = max(int(lens.sum()), 1) * num_kv_heads
        per_prog = max(-(-total // target), min_blocks * block_n)
        splits = np.maximum(1, -(-lens // per_prog))
    if max_splits is not None:
        splits = np.minimum(splits, max_splits)
    return splits.astype(np.int64)


def _fit_wave(lens: np.ndarray, block_n: int, min_blocks: int, max_items: int) -> np.ndarray:
    """Splits with the shortest chunk (whole blocks, at least min_blocks) whose chunks number at
    most max_items. Equal chunks of total / target tokens overshoot the target by up to one
    chunk a sequence (each sequence's remainder), which on a mixed batch is a second, ragged
    wave of programs (87 items for a 66-item wave on the benchmark's 32 lengths); fitting the
    wave lengthens every chunk a little and starts them all at once. Which wins depends on the
    lengths and the tile (H200): 0.95-0.96x on 8 x 32768 (72 -> 64 items), 0.93x on the mixed batch
    over the token pool's tile, but 1.22x slower on it over the row tile, whose SMs holding the
    short sequences' chunks then idle at the end: a config the tuner weighs, not the default."""
    blocks = np.maximum(-(-lens // block_n), 1)

    def items(chunk: int) -> int:
        return int((-(-blocks // chunk)).sum())
    lo = max(min_blocks, 1)
    hi = max(int(blocks.max()), lo)
    while lo < hi:                                   # items() falls as the chunk grows
        mid = (lo + hi) // 2
        if items(mid) <= max_items:
            hi = mid
        else:
            lo = mid + 1
    return -(-blocks // lo)


def register_ceiling(programs_per_sm: int, num_warps: int, arch: str) -> int:
    """The most registers a thread may hold for programs_per_sm programs of num_warps warps to be
    resident on one NVIDIA multiprocessor (registers are allocated a warp at a time, 256 at once)."""
    from .specs import LIMITS
    regs = LIMITS[arch].regs_per_sm if arch in LIMITS else 65536
    per_warp = regs // (programs_per_sm * num_warps) // 256 * 256
    return min(per_warp // 32, 255)


def fit_occupancy(cfg: dict, compiled, plat) -> dict:
    """Config "occupancy" (NVIDIA): programs of the decode kernel wanted resident on one SM. Given
    the binary compiled without a ceiling, returns the launch options that reach it: maxnreg at
    the ceiling where its own register count is above it, else none. Not a fixed maxnreg in the
    config, because ptxas allocates differently once given one: the mixed batch's tile takes 76
    registers under Triton 3.9 without a ceiling but 80 and 24 B of spills with maxnreg 80, and 94
    under Triton 3.6 (80 and 2 B with the ceiling, which made the H200's mixed batch 1.6% faster:
    6 programs an SM instead of 5)."""
    want = cfg.get("occupancy")
    if not want or plat.vendor != "nvidia" or compiled is None:
        return {}
    n_regs = getattr(compiled, "n_regs", None)
    if n_regs is None:
        compiled._init_handles()           # Triton loads the module (and counts registers) lazily
        n_regs = compiled.n_regs
    cap = register_ceiling(int(want), cfg["num_warps"], plat.arch)
    return {"maxnreg": cap} if n_regs > cap else {}


def decode(q, kv, *, sm_scale=None, window_left=-1, softcap=0.0, logits_transform=None, rotary=None,
           return_lse=False, num_splits=None):
    from attn.plan_decode import BatchDecode
    b = q.shape[0]
    if b == 0:
        out = torch.empty_like(q)
        lse = torch.empty(0, q.shape[1], dtype=torch.float32, device=q.device)
        return (out, lse) if return_lse else out
    plan = BatchDecode(max_batch=b, device=q.device, copy_page_map=False)
    plan._exact = True
    plan.plan(kv, q.shape[1], sm_scale=sm_scale, window_left=window_left, softcap=softcap,
              logits_transform=logits_transform, rotary=rotary, return_lse=return_lse, num_splits=num_splits)
    return plan.run(q, kv)


# ---------------------------------------------------------------------------------- compile specs
def compile_specs():
    """The decode configurations of attention_kernel and the split-KV merge (specs.py's contract):
    each vendor's decode heuristic for head dims 64..256, fp16/bf16, GQA groups 1/4/8 at page size
    16 (NHD|HND compile to one binary), page size 1 (the token pool; a ragged cache, without a
    page map, is a binary of its own), the vLLM split layout,
    and the option branches a user reaches (lse; window + softcap + lse). BatchDecode always
    launches with partials (HAS_PARTIALS); the functional decode of an unsplit batch without."""
    from .attention import SPEC_FAMILY, SPEC_LAYOUTS, compile_spec
    from .specs import per_target, tuned_entries

    variants = {"plain": {}, "lse": dict(RETURN_LSE=True),
                "window_softcap_lse": dict(WINDOW=True, SOFTCAP=True, RETURN_LSE=True)}
    features = {"plain": frozenset(), "lse": frozenset({"lse"}),
                "window_softcap_lse": frozenset({"window", "softcap", "lse"})}
    rotary = {"rotary": (dict(ROT=1, ROT_DIM=64), frozenset()),
              "rotary_k": (dict(ROT=1, ROT_DIM=64, ROTATE_K=True), frozenset({"rotate_k"}))}
    specs = []
    for dt in ("fp16", "bf16"):
        tdt = "float16" if dt == "fp16" else "bfloat16"
        for hd in (64, 80, 96, 128, 192, 256):
            for group in (1, 4, 8):
                for ps in (16, 1):
                    for lay in SPEC_LAYOUTS:
                        if lay == "ragged" and ps != 1:          # one token a page, no page map
                            continue
                        full = hd == 128 and group == 4
                        # The token pool and vLLM's layout at bf16 d128; ragged caches at every bf16 head dim.
                        if (ps == 1 or lay == "vllm") and not (hd == 128 and dt == "bf16") \
                                and not (lay == "ragged" and dt == "bf16"):
                            continue
                        if lay == "vllm" and ps == 1:
                            continue
                        names = list(variants) if full and ps == 16 and lay == "NHD|HND" else ["plain"]
                        if lay == "ragged" and group == 4:
                            names = names + ["rotary", "rotary_k"]     # q rotated on load; K too
                        for name in names:
                            # One spec per distinct config: configs are chosen per arch and device.
                            extra, feats = rotary[name] if name in rotary else (variants[name], features[name])
                            for prefix, targets, cfg in per_target(
                                    lambda plat: choose_config(plat, hd, group, ps, tdt, feats,
                                                               layout=SPEC_FAMILY[lay])):
                                specs.append(compile_spec("decode", f"{prefix}/{dt}/d{hd}/g{group}/p{ps}/{name}",
                                                          targets, dt, cfg, group=group, head_dim=hd, page_size=ps,
                                                          layout=lay, HAS_PARTIALS=True, **extra))
    for t in tuned_entries("decode"):
        # Decode buckets carry q_len 1, which lookups never pass: batch and kv_len pick the entry.
        cfg = choose_config(t.platform, t.head_dim, t.group, t.page_size, t.torch_dtype, layout=t.family,
                            **{k: v for k, v in t.shape.items() if k != "q_len"})
        for layout in t.layouts:
            specs.append(compile_spec("decode", t.label, (t.platform.arch,), t.dtype, cfg, group=t.group,
                                      head_dim=t.head_dim, page_size=t.page_size, layout=layout, HAS_PARTIALS=True))
    return specs
