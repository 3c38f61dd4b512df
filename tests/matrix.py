"""The test matrix's vocabulary, tiers and per-backend expectations, stated once.

Kernel tests draw their cases from here instead of spelling out their own lists:

    import matrix
    from matrix import Case

    @pytest.mark.parametrize("case", matrix.params("decode"))
    def test_decode(case, gen):
        kv = kvgen.make_kv(lens, layout=case.layout, page_size=case.page_size,
                           kv_heads=2, head_dim=case.head_dim, dtype=case.torch_dtype,
                           device=matrix.device(), gen=gen)
        q = ...  [b, 2 * case.gqa, case.head_dim]
        out = attn.decode(q, kv, backend=case.backend, **case.options())
        ...assert ..., f"{case}"          # the id names layout, page size, head dim, GQA, feature

Tiers:
- CPU tier (no GPU; Triton interpreter): `params()` yields a small, deterministic sample of the
  full product (`CPU_SAMPLE` cases per operation, the same on every run and machine, chosen so that
  every value of every axis appears at least once), plus the corner cases in `ALWAYS`.
- GPU tier (a GPU is present, or ATTN_TEST_TIER=gpu): the full product, every case marked
  `gpu` so `pytest -m gpu` (ci/gpu_tier.py) selects it.
ATTN_TEST_TIER=cpu forces the sample on a GPU machine (fast local runs).

Backend support is the table SUPPORT below: one row per (backend, op), filled by the kernel
authors. A case outside a backend's support is not generated for it, and `unsupported()` names the
axis, so a test of the error path can ask for exactly those.

ci/gpu_tier.py reads `Case` fields (backend, op, layout, dtype, feature, ...) from a test's
parameters to count pass/fail per backend and feature: a test that takes a `case` parameter is
counted per backend and feature automatically.
"""
from __future__ import annotations

import itertools
import os
import random
import zlib
from dataclasses import dataclass, fields, replace

# ------------------------------------------------------------------------------------------
# Vocabulary: every value each axis takes somewhere in the matrix (DESIGN.md, Correctness)

BACKENDS = ("triton", "hip", "torch")
OPS = ("prefill", "extend", "decode", "merge", "rotary", "kv_write")
LAYOUTS = ("NHD", "HND", "vllm", "ragged", "token_pool")
DTYPES = ("fp16", "bf16", "fp32")
HEAD_DIMS = (64, 80, 96, 128, 192, 256)
PAGE_SIZES = (1, 3, 16)                 # 1: token granularity; 3: odd, not a power of two; 16: common
GQA = (1, 4, 8)                         # q_heads / kv_heads
FEATURES = ("plain", "causal", "window", "softcap", "custom_mask", "logits_transform", "rotary",
            "lse", "splits")
LENGTHS = ("mixed", "empty", "one", "long")   # mixed: random lengths incl. odd; empty: a 0-length
                                              # sequence in the batch; one: length 1; long: > 64K

_LAYOUT_PAGED = {"NHD": True, "HND": True, "vllm": True, "ragged": False, "token_pool": True}


@dataclass(frozen=True)
class Case:
    op: str
    backend: str
    layout: str
    dtype: str
    head_dim: int
    page_size: int
    gqa: int
    feature: str = "plain"
    lengths: str = "mixed"

    @property
    def id(self) -> str:
        return (f"{self.backend}-{self.op}-{self.layout}-{self.dtype}-d{self.head_dim}-ps{self.page_size}"
                f"-g{self.gqa}-{self.feature}-{self.lengths}")

    def __str__(self) -> str:
        return self.id

    @property
    def torch_dtype(self):
        import torch
        return {"fp16": torch.float16, "bf16": torch.bfloat16, "fp32": torch.float32}[self.dtype]

    def options(self) -> dict:
        """Keyword arguments of attn.prefill / attn.decode that switch this case's feature on."""
        return dict(FEATURE_OPTIONS.get(self.feature, {}))


#: What each feature turns on (values chosen so that the feature changes the result).
FEATURE_OPTIONS = {
    "plain": {},
    "causal": {"causal": True},
    "window": {"window_left": 37},
    "softcap": {"softcap": 20.0},
    "lse": {"return_lse": True},
    "splits": {"num_splits": 3},
    # custom_mask, logits_transform and rotary need tensors / functions: the test builds them.
    "custom_mask": {},
    "logits_transform": {},
    "rotary": {},
}

# ------------------------------------------------------------------------------------------
# Support: the one place that says what each backend runs. Kernel authors keep it true; a case
# outside it is an error-path case (the dispatcher must refuse it with a clear message).

_ALL = dict(layouts=LAYOUTS, dtypes=DTYPES, head_dims=HEAD_DIMS, page_sizes=PAGE_SIZES, gqa=GQA,
            features=FEATURES)


@dataclass(frozen=True)
class Support:
    layouts: tuple = LAYOUTS
    dtypes: tuple = DTYPES
    head_dims: tuple = HEAD_DIMS
    page_sizes: tuple = PAGE_SIZES
    gqa: tuple = GQA
    features: tuple = FEATURES
    note: str = ""


_ATTN_FEATURES = ("plain", "causal", "window", "softcap", "custom_mask", "logits_transform", "rotary",
                  "lse")
_DECODE_FEATURES = ("plain", "window", "softcap", "logits_transform", "rotary", "lse", "splits")

SUPPORT: dict[tuple[str, str], Support] = {
    # the float32 reference runs everything, on any device
    **{("torch", op): Support() for op in OPS},
    ("triton", "prefill"): Support(features=_ATTN_FEATURES),
    ("triton", "extend"): Support(features=_ATTN_FEATURES),
    ("triton", "decode"): Support(features=_DECODE_FEATURES),
    ("triton", "merge"): Support(layouts=("NHD",), page_sizes=(1,), features=("plain",),
                                 note="no KV cache: layout/page size do not apply"),
    ("triton", "rotary"): Support(layouts=("NHD",), page_sizes=(1,), features=("plain",),
                                  note="no KV cache unless fused with the write"),
    ("triton", "kv_write"): Support(features=("plain",)),
    # hip/compile.py: HEAD_DIMS (64, 80, 96, 128, 256), PAGE_SIZES (1, 8, 16, 32) with the vllm
    # kind needing page_size % 8 == 0, fp16/bf16; "strided" kind covers NHD/HND/ragged/token pool.
    # Odd page sizes (3) and head dim 192 are outside it. The hip author keeps this row true.
    ("hip", "decode"): Support(layouts=("NHD", "HND", "vllm", "ragged", "token_pool"),
                               dtypes=("fp16", "bf16"), head_dims=(64, 80, 96, 128, 256),
                               page_sizes=(1, 16), gqa=GQA,
                               features=("plain", "window", "softcap", "lse", "splits"),
                               note="vllm layout needs page_size % 8 == 0"),
}


def _hip_extra_ok(c: Case) -> bool:
    return not (c.backend == "hip" and c.layout == "vllm" and c.page_size % 8)


def unsupported(c: Case) -> str | None:
    """None when c's backend runs c; else which axis is outside its support."""
    s = SUPPORT.get((c.backend, c.op))
    if s is None:
        return f"backend {c.backend!r} has no {c.op}"
    for axis, value, allowed in (("layout", c.layout, s.layouts), ("dtype", c.dtype, s.dtypes),
                                 ("head_dim", c.head_dim, s.head_dims),
                                 ("page_size", c.page_size, s.page_sizes), ("gqa", c.gqa, s.gqa),
                                 ("feature", c.feature, s.features)):
        if value not in allowed:
            return f"{axis}={value!r} not in {c.backend} {c.op}'s {allowed}"
    if not _hip_extra_ok(c):
        return "hip vllm layout needs page_size % 8 == 0"
    if not _LAYOUT_PAGED[c.layout] and c.page_size != 1:
        return f"layout {c.layout!r} is not paged: page_size must be 1"
    return None


# ------------------------------------------------------------------------------------------
# Generation and tiers

CPU_SAMPLE = 12          # sampled cases per (op, backend) in the CPU tier

#: Corner cases every tier runs (per op and backend, when supported).
ALWAYS = (
    dict(layout="vllm", dtype="fp16", head_dim=128, page_size=16, gqa=4, feature="plain", lengths="empty"),
    dict(layout="HND", dtype="fp16", head_dim=64, page_size=16, gqa=1, feature="plain", lengths="one"),
    dict(layout="NHD", dtype="fp32", head_dim=80, page_size=3, gqa=8, feature="plain", lengths="mixed"),
)


def tier() -> str:
    """'gpu' when a GPU is present (or ATTN_TEST_TIER=gpu), else 'cpu'."""
    forced = os.environ.get("ATTN_TEST_TIER", "").lower()
    if forced in ("cpu", "gpu"):
        return forced
    try:
        import torch
        return "gpu" if torch.cuda.is_available() else "cpu"
    except Exception:  # pragma: no cover
        return "cpu"


def device() -> str:
    return "cuda" if tier() == "gpu" else "cpu"


def full(op: str, backend: str, features=None, lengths=("mixed",), **fixed) -> list[Case]:
    """Every supported case of (op, backend): layouts x dtypes x head dims x page sizes x GQA x
    features x lengths, with `fixed` axes pinned (e.g. dtype="bf16")."""
    s = SUPPORT.get((backend, op))
    if s is None:
        return []
    axes = dict(layout=s.layouts, dtype=s.dtypes, head_dim=s.head_dims, page_size=s.page_sizes,
                gqa=s.gqa, feature=tuple(features or s.features), lengths=tuple(lengths))
    for k, v in fixed.items():
        axes[k] = v if isinstance(v, (tuple, list)) else (v,)
    out = []
    for vals in itertools.product(*axes.values()):
        c = Case(op, backend, **dict(zip(axes, vals)))
        if unsupported(c) is None:
            out.append(c)
    return out


def sample(cases: list[Case], n: int, salt: str = "") -> list[Case]:
    """n cases, deterministic (seeded by the salt and the cases themselves, not the clock), that
    together hit every value of every axis present in `cases` (greedy cover first, then random)."""
    if len(cases) <= n:
        return list(cases)
    rng = random.Random(zlib.crc32((salt + "|" + ",".join(c.id for c in cases[:3])).encode()))
    pool = list(cases)
    rng.shuffle(pool)
    names = [f.name for f in fields(Case)]
    missing = {(a, getattr(c, a)) for c in pool for a in names}
    picked = []
    for c in pool:                          # greedy: take a case if it covers a missing value
        got = {(a, getattr(c, a)) for a in names} & missing
        if got:
            picked.append(c)
            missing -= got
        if not missing:
            break
    rest = [c for c in pool if c not in picked]
    return picked + rest[: max(0, n - len(picked))]


def cases(op: str, backends=("triton",), n: int | None = None, **kw) -> list[Case]:
    """This tier's cases of op: the full product on the GPU tier, a sample on the CPU tier, plus
    ALWAYS. `kw` goes to full() (features=, lengths=, pinned axes)."""
    out = []
    for b in backends:
        every = full(op, b, **kw)
        corners = [c for c in (Case(op, b, **a) for a in ALWAYS)
                   if unsupported(c) is None and all(getattr(c, k) in (v if isinstance(v, (tuple, list)) else (v,))
                                                     for k, v in kw.items() if k in Case.__annotations__)]
        chosen = every if tier() == "gpu" else sample(every, n or CPU_SAMPLE, salt=f"{op}/{b}")
        out += chosen + [c for c in corners if c not in chosen]
    return out


def params(op: str, backends=("triton",), n: int | None = None, **kw) -> list:
    """pytest.param(case, id=case.id) for this tier; GPU-tier cases carry the `gpu` mark."""
    import pytest
    marks = [pytest.mark.gpu] if tier() == "gpu" else []
    return [pytest.param(c, id=c.id, marks=marks) for c in cases(op, backends, n, **kw)]


def with_backend(c: Case, backend: str) -> Case:
    return replace(c, backend=backend)
