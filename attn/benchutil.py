"""What the benchmark suite and the tuner share: timing, device ceilings, benchmark cases (inputs
in any layout, several copies so the L2 does not serve them), and runners that plan once and
time only the launches.

    case = prefill_case([2048] * 8, layout="ragged", device="cuda")
    run = attn_runner(case)                    # plans once (configs.lookup, or a forced cfg)
    ms, mode = gpu_time([run(i) for i in range(case.n_sets)])
"""
from __future__ import annotations

import math
import statistics
from dataclasses import dataclass, field

import numpy as np
import torch

from attn import platform
from attn.layouts import KVCache
from attn.layouts.descriptors import get_layout

DTYPES = {"bfloat16": torch.bfloat16, "float16": torch.float16, "float32": torch.float32}


# ------------------------------------------------------------------------------ timing
def gpu_time(calls, *, reps: int = 15, min_graph_ms: float = 2.0, graph: bool = True) -> tuple[float, str]:
    """Median milliseconds per call of `calls` (a list of zero-argument callables, one per input
    set, run round-robin so consecutive calls read different memory).

    The calls are captured in one CUDA graph repeated until it runs >= min_graph_ms, and the graph
    is replayed `reps` times between CUDA events: host launch overhead stays out of the number.
    When capture fails (a peer that syncs), the calls are timed eagerly ("eager" in the result).
    """
    for c in calls:                                   # warm-up: compiles, autotuners, allocators
        c()
    torch.cuda.synchronize()
    s, e = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
    s.record()
    for c in calls:
        c()
    e.record()
    torch.cuda.synchronize()
    round_ms = max(s.elapsed_time(e), 1e-3)
    if graph:
        try:
            return _graph_time(calls, reps, max(1, math.ceil(min_graph_ms / round_ms))), "graph"
        except Exception:                              # noqa: BLE001 (not capturable: time eagerly)
            torch.cuda.synchronize()
    inner = max(1, math.ceil(min_graph_ms / round_ms))
    times = []
    for _ in range(reps):
        s.record()
        for _ in range(inner):
            for c in calls:
                c()
        e.record()
        torch.cuda.synchronize()
        times.append(s.elapsed_time(e) / (inner * len(calls)))
    return statistics.median(times), "eager"


def _graph_time(calls, reps, inner):
    side = torch.cuda.Stream()
    side.wait_stream(torch.cuda.current_stream())
    with torch.cuda.stream(side):                     # warm-up on the capture stream (cuBLAS, cuDNN handles)
        for c in calls:
            c()
    torch.cuda.current_stream().wait_stream(side)
    torch.cuda.synchronize()
    g = torch.cuda.CUDAGraph()
    with torch.cuda.graph(g):
        for _ in range(inner):
            for c in calls:
                c()
    g.replay()
    torch.cuda.synchronize()
    evs = [(torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)) for _ in range(reps)]
    for a, b in evs:
        a.record()
        g.replay()
        b.record()
    torch.cuda.synchronize()
    return statistics.median(a.elapsed_time(b) for a, b in evs) / (inner * len(calls))


def copy_gbs(device="cuda", nbytes: int = 2 ** 30) -> float:
    """The device's copy bandwidth: GB/s of an nbytes device-to-device copy, read + write counted."""
    x = torch.randn(nbytes // 2, dtype=torch.bfloat16, device=device)
    y = torch.empty_like(x)
    # Timed eagerly: captured in a CUDA graph the copy becomes a memcpy node (served, we believe,
    # by the copy engines), which measured 2441 GB/s on the H100 against 3019 GB/s for the eager
    # copy in the same run; kernels are bounded by the latter.
    ms, _ = gpu_time([lambda: y.copy_(x)], reps=10, graph=False)
    return 2 * x.numel() * x.element_size() / ms / 1e6


def ceilings(device="cuda") -> dict:
    """The device's measured ceilings: copy bandwidth (GB/s, read + write counted) over 1 GiB
    (copy_gbs), and the bf16 matmul rate (TFLOP/s) on random 8192^3 operands."""
    copy = copy_gbs(device)                           # its 2 GiB are freed before the matmul
    n = 8192
    a = torch.randn(n, n, dtype=torch.bfloat16, device=device)
    b = torch.randn(n, n, dtype=torch.bfloat16, device=device)
    c = torch.empty(n, n, dtype=torch.bfloat16, device=device)
    ms, _ = gpu_time([lambda: torch.matmul(a, b, out=c)], reps=10)
    mm = 2 * n ** 3 / ms / 1e9
    return {"copy_gbs": copy, "matmul_tflops": mm}


def l2_bytes(device="cuda") -> int:
    props = torch.cuda.get_device_properties(torch.device(device))
    return int(getattr(props, "L2_cache_size", 50 * 2 ** 20) or 50 * 2 ** 20)


def sets_for(bytes_per_set: int, l2: int, max_sets: int = 6) -> int:
    """Input copies so a round-robin over them moves >= 3x the L2 between reuses."""
    return int(min(max_sets, max(1, math.ceil(3 * l2 / max(bytes_per_set, 1)))))


# ------------------------------------------------------------------------------ cases
@dataclass
class Case:
    """One benchmark or tuning shape with n_sets copies of its inputs (same page map)."""
    op: str                       # "prefill" (also extend) or "decode"
    label: str
    qs: list                      # n_sets query tensors
    kvs: list                     # n_sets KVCache over distinct storage, same page map
    q_indptr: torch.Tensor | None
    q_lens: np.ndarray
    kv_lens: np.ndarray
    causal: bool = True
    custom_mask: torch.Tensor | None = None
    flops: float = 0.0            # useful (masked-out blocks excluded) FLOPs of one call
    bytes: float = 0.0            # K + V bytes one call must read
    meta: dict = field(default_factory=dict)

    @property
    def n_sets(self) -> int:
        return len(self.qs)

    @property
    def q(self):
        return self.qs[0]

    @property
    def kv(self) -> KVCache:
        return self.kvs[0]

    def shape(self) -> dict:
        """The config lookup's shape keys for this case (see attn.configs)."""
        q, kv = self.q, self.kv
        b = len(self.kv_lens)
        return dict(head_dim=kv.head_dim, group=q.shape[1] // kv.num_kv_heads, page_size=kv.page_size,
                    dtype=platform.dtype_name(q.dtype), layout=kv.layout.family, batch=b,
                    q_len=int(round(float(np.mean(self.q_lens)))) if b else 0,
                    kv_len=int(round(float(np.mean(self.kv_lens)))) if b else 0)


def _indptr(lens, device):
    ip = np.concatenate([[0], np.cumsum(lens)]).astype(np.int32)
    return torch.from_numpy(ip).to(device)


def make_kv(kv_lens, *, layout="HND", page_size=16, kv_heads=8, head_dim=128, dtype=torch.bfloat16,
            device="cuda", gen=None, shuffle=True) -> KVCache:
    """A random cache holding sequences of kv_lens tokens. layout "ragged" is [tokens, heads, d]
    with an indptr; "pool" a token pool (page size 1, shuffled rows); NHD/HND/vllm are paged with
    shuffled pages. Storage is random everywhere, unowned slots included."""
    lens = np.asarray(kv_lens, dtype=np.int64)
    total = int(lens.sum())
    rnd = lambda shape: torch.randn(shape, dtype=torch.float32, device=device, generator=gen).to(dtype)  # noqa: E731
    perm = (lambda n: torch.randperm(n, device=device, generator=gen)) if shuffle else \
        (lambda n: torch.arange(n, device=device))
    if layout == "ragged":
        return KVCache.ragged(rnd((total, kv_heads, head_dim)), rnd((total, kv_heads, head_dim)),
                              _indptr(lens, device))
    if layout == "pool":
        return KVCache.token_pool(rnd((total, kv_heads, head_dim)), rnd((total, kv_heads, head_dim)),
                                  _indptr(lens, device), perm(total).to(torch.int32))
    lay = get_layout(layout)
    pages = (lens + page_size - 1) // page_size
    n_pages = max(int(pages.sum()), 1)
    k = rnd(lay.shape("k", n_pages, page_size, kv_heads, head_dim, dtype))
    v = rnd(lay.shape("v", n_pages, page_size, kv_heads, head_dim, dtype))
    seq_lens = torch.from_numpy(lens.astype(np.int32)).to(device)
    return KVCache.paged(k, v, _indptr(pages, device), perm(n_pages)[: int(pages.sum())].to(torch.int32),
                         seq_lens, layout=layout)


def causal_flops(q_lens, kv_lens, q_heads, head_dim, causal=True) -> float:
    """2 matmuls x 2 FLOPs per (query, visible key, dim, head); causal counts only visible keys
    (query i of a sequence sees kv_len - q_len + i + 1 keys)."""
    total = 0.0
    for lq, lk in zip(q_lens, kv_lens):
        lq, lk = float(lq), float(lk)
        total += lq * (lk - lq) + lq * (lq + 1) / 2 if causal else lq * lk
    return 4.0 * head_dim * q_heads * total


def prefill_case(kv_lens, q_lens=None, *, layout="ragged", page_size=1, q_heads=32, kv_heads=8, head_dim=128,
                 dtype=torch.bfloat16, device="cuda", causal=True, mask_density=None, n_sets=1, gen=None,
                 label="") -> Case:
    """Prefill (q_lens None: q_len = kv_len) or extend (q_len < kv_len) case. mask_density: a
    custom mask keeping that fraction of 128x128 blocks (random), non-causal."""
    kv_lens = np.asarray(kv_lens, dtype=np.int64)
    q_lens = kv_lens.copy() if q_lens is None else np.asarray(q_lens, dtype=np.int64)
    total_q = int(q_lens.sum())
    qs, kvs = [], []
    for _ in range(n_sets):
        qs.append(torch.randn(total_q, q_heads, head_dim, dtype=torch.float32, device=device,
                              generator=gen).to(dtype))
        kvs.append(make_kv(kv_lens, layout=layout, page_size=page_size, kv_heads=kv_heads, head_dim=head_dim,
                           dtype=dtype, device=device, gen=gen))
    if layout not in ("ragged",):     # same page map for every set: run() reuses the plan
        kvs = [kvs[0]] + [KVCache.from_parts(k.k, k.v, k.layout, kvs[0].page_indptr, kvs[0].page_indices,
                                             kvs[0].seq_lens) for k in kvs[1:]]
    mask = None
    flops = causal_flops(q_lens, kv_lens, q_heads, head_dim, causal and mask_density is None)
    if mask_density is not None:
        causal = False
        parts, kept = [], 0.0
        for lq, lk in zip(q_lens, kv_lens):
            bq, bk = -(-int(lq) // 128), -(-int(lk) // 128)
            blocks = torch.rand(bq, bk, device=device, generator=gen) < mask_density
            m = blocks.repeat_interleave(128, 0)[:lq].repeat_interleave(128, 1)[:, :lk]
            kept += float(m.sum())
            parts.append(m.reshape(-1))
        mask = torch.cat(parts)
        flops = 4.0 * head_dim * q_heads * kept
    elt = torch.empty(0, dtype=dtype).element_size()
    return Case("prefill", label, qs, kvs, _indptr(q_lens, device), q_lens, kv_lens, causal=causal,
                custom_mask=mask, flops=flops, bytes=2.0 * kv_lens.sum() * kv_heads * head_dim * elt,
                meta=dict(layout=layout, page_size=page_size))


def decode_case(kv_lens, *, layout="HND", page_size=16, q_heads=32, kv_heads=8, head_dim=128,
                dtype=torch.bfloat16, device="cuda", n_sets=1, gen=None, label="") -> Case:
    kv_lens = np.asarray(kv_lens, dtype=np.int64)
    b = len(kv_lens)
    qs, kvs = [], []
    for _ in range(n_sets):
        qs.append(torch.randn(b, q_heads, head_dim, dtype=torch.float32, device=device, generator=gen).to(dtype))
        kvs.append(make_kv(kv_lens, layout=layout, page_size=page_size, kv_heads=kv_heads, head_dim=head_dim,
                           dtype=dtype, device=device, gen=gen))
    if layout != "ragged":
        kvs = [kvs[0]] + [KVCache.from_parts(k.k, k.v, k.layout, kvs[0].page_indptr, kvs[0].page_indices,
                                             kvs[0].seq_lens) for k in kvs[1:]]
    elt = torch.empty(0, dtype=dtype).element_size()
    return Case("decode", label, qs, kvs, None, np.ones(b, np.int64), kv_lens, causal=False,
                flops=4.0 * head_dim * q_heads * float(kv_lens.sum()),
                bytes=2.0 * kv_lens.sum() * kv_heads * head_dim * elt, meta=dict(layout=layout, page_size=page_size))


# ------------------------------------------------------------------------------ runners
def attn_runner(case: Case, cfg: dict | None = None):
    """attn's plan/run path for the case: plan once here (with `cfg` forced over the heuristic
    when given, else the config attn.configs looks up), and return run(i) -> a callable running
    plan.run on input set i (launches only: no host work, graph-capturable).

    run.path says what was timed: "plan/run" (attn.BatchDecode / attn.BatchPrefill), or
    "functional" (attn.prefill's triton backend, which plans on every call: host work included)
    while BatchPrefill is not there."""
    import attn
    op = case.op
    ctx = configs_override(op, cfg)
    q, kv = case.q, case.kv
    b = len(case.kv_lens)
    outs = [torch.empty_like(x) for x in case.qs]
    with ctx:
        if op == "decode":
            plan = attn.BatchDecode(max_batch=b, kernel_config=dict(cfg or {})).plan(kv, q_heads=q.shape[1])
        else:
            plan = _prefill_plan(case, cfg)
    if plan is not None:
        def run(i):
            return lambda: plan.run(case.qs[i], case.kvs[i], out=outs[i])
        run.path, run.plan = "plan/run", plan
        run.cfg = dict(getattr(plan, "cfg", None) or {})
        return run
    from attn.triton_kernels import prefill as tpre

    def run(i):
        def call():
            with configs_override(op, cfg):
                return tpre.prefill(case.qs[i], case.kvs[i], case.q_indptr, causal=case.causal,
                                    custom_mask=case.custom_mask)
        return call
    run.path, run.plan, run.cfg = "functional", None, dict(cfg or {})
    return run


def _prefill_plan(case: Case, cfg):
    import attn
    try:
        cls = attn.BatchPrefill
    except (AttributeError, ImportError):
        return None
    kw = dict(causal=case.causal)
    if case.custom_mask is not None:
        kw["custom_mask"] = case.custom_mask
    kv = case.kv
    ctor = dict(max_tokens=case.q.shape[0], max_batch=len(case.kv_lens), num_q_heads=case.q.shape[1],
                max_kv_pages=max(int(kv.page_indices.shape[0]) if kv.page_indices is not None else 1, 1),
                max_mask_bits=max(int(case.custom_mask.numel()) if case.custom_mask is not None else 1, 1))
    try:
        try:
            obj = cls(**ctor, device=case.q.device)
        except TypeError:
            obj = cls(max_tokens=ctor["max_tokens"], max_batch=ctor["max_batch"])
        return obj.plan(case.q_indptr, kv, **kw)
    except (TypeError, NotImplementedError):
        return None


def configs_override(op: str, cfg: dict | None):
    import contextlib
    from attn import configs
    return configs.override("prefill" if op == "extend" else op, cfg) if cfg else contextlib.nullcontext()


def reference(case: Case, i: int = 0):
    """attn's float32 reference for input set i (prefill: fits in memory for small cases only)."""
    from attn.reference import decode as rdec, prefill as rpre
    if case.op == "decode":
        return rdec(case.qs[i], case.kvs[i])
    return rpre(case.qs[i], case.kvs[i], case.q_indptr, causal=case.causal, custom_mask=case.custom_mask)


def rel_err(a, b) -> float:
    a, b = a.double(), b.double()
    if torch.isnan(a).any() or torch.isnan(b).any():
        return math.inf
    return float((a - b).norm() / b.norm().clamp_min(1e-30))


TOL = {torch.float32: 1e-4, torch.float16: 5e-3, torch.bfloat16: 2e-2}
