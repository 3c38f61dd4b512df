"""Build a paged KV cache in two layouts, run prefill and decode, convert layouts, check each step
against the float32 reference, and print a short report.

On a GPU the Triton kernels run compiled; without one they run on CPU tensors through the Triton
interpreter (small shapes, well under a minute). Exits non-zero if any check fails.
"""
from __future__ import annotations

import os
import sys
import time

_REEXEC_FLAG = "ATTN_DEMO_REEXEC"


def add_arguments(parser):
    parser.add_argument("--dtype", choices=("fp16", "bf16", "fp32"), default=None,
                        help="cache and query dtype (default: fp16 on a GPU, fp32 on the CPU)")
    parser.add_argument("--layouts", default="NHD,vllm", help="the two (or more) layouts, comma-separated")
    parser.add_argument("--page-size", type=int, default=16)
    parser.add_argument("--seed", type=int, default=0)


def _ensure_interpreter_on_cpu(argv_tail: list[str]) -> None:
    """Without a GPU, Triton kernels need TRITON_INTERPRET=1 set before any kernel module is
    imported (Triton picks interpreted or compiled functions when it decorates them): re-run this
    command in a fresh process with it set."""
    import torch
    if torch.cuda.is_available() or os.environ.get("TRITON_INTERPRET", "0") not in ("", "0"):
        return
    if os.environ.get(_REEXEC_FLAG):            # already re-run once: do not loop
        return
    env = dict(os.environ, TRITON_INTERPRET="1", **{_REEXEC_FLAG: "1"})
    sys.stdout.flush()
    os.execve(sys.executable, [sys.executable, "-m", "attn", "demo", *argv_tail], env)


def _argv_tail(args) -> list[str]:
    tail = ["--layouts", args.layouts, "--page-size", str(args.page_size), "--seed", str(args.seed)]
    if args.dtype:
        tail += ["--dtype", args.dtype]
    return tail


class Report:
    def __init__(self):
        self.rows = []

    def add(self, step, layout, backend, err, tol, seconds, note=""):
        ok = err <= tol
        self.rows.append((step, layout, backend, err, tol, seconds, ok, note))
        return ok

    def print(self):
        print(f"{'step':<14}{'layout':<8}{'backend':<9}{'rel_err':>10}{'tol':>8}{'ms':>10}  result")
        for step, layout, backend, err, tol, sec, ok, note in self.rows:
            print(f"{step:<14}{layout:<8}{backend:<9}{err:>10.2e}{tol:>8.0e}{sec * 1e3:>10.1f}  "
                  f"{'PASS' if ok else 'FAIL'}{'  ' + note if note else ''}")

    @property
    def ok(self):
        return all(r[6] for r in self.rows)


def _rel_err(a, b) -> float:
    import torch
    a, b = a.double(), b.double()
    if torch.isnan(a).any() or torch.isnan(b).any():
        return float("inf")
    fin = torch.isfinite(b)
    if not torch.equal(fin, torch.isfinite(a)):
        return float("inf")
    return float((a[fin] - b[fin]).norm() / b[fin].norm().clamp(min=1e-30))


def _timed(fn, device):
    import torch
    if device == "cuda":
        fn()                                     # compile / warm up
        torch.cuda.synchronize()
    t0 = time.perf_counter()
    out = fn()
    if device == "cuda":
        torch.cuda.synchronize()
    return out, time.perf_counter() - t0


def _backend_for(op: str, example) -> tuple[str, str]:
    from attn import dispatch
    impls = dispatch.implementations(op)
    if "triton" not in impls:
        return "torch", f"no triton {op} yet: ran the torch reference"
    ok, why = impls["triton"].available(example)
    if not ok:
        return "torch", f"triton {op} cannot run here ({why}): ran the torch reference"
    return "triton", ""


def run(args) -> int:
    _ensure_interpreter_on_cpu(_argv_tail(args))
    import torch

    import attn
    from attn import platform
    from attn.layouts import KVCache, convert, gather, write_kv

    gpu = torch.cuda.is_available()
    device = "cuda" if gpu else "cpu"
    dtype = {"fp16": torch.float16, "bf16": torch.bfloat16, "fp32": torch.float32}[args.dtype or
                                                                                   ("fp16" if gpu else "fp32")]
    tol = {torch.float32: 1e-5, torch.float16: 1e-3, torch.bfloat16: 1e-2}[dtype]
    if not gpu and dtype == torch.bfloat16:
        print("note: bf16 tl.dot is wrong in the Triton interpreter; expect triton bf16 failures on the CPU")
    layouts = [s.strip() for s in args.layouts.split(",") if s.strip()]
    ps = args.page_size
    g = torch.Generator().manual_seed(args.seed)
    if gpu:
        lens, hq, hk, d = [1, 130, 517, 2048, 999, 64, 3000, 17], 32, 8, 128
    else:
        lens, hq, hk, d = [1, 13, 33], 4, 2, 32
    plat = platform.get()
    print(f"attn demo on {plat.device_name} ({plat.vendor} {plat.arch}"
          f"{', Triton interpreter' if platform.interpreter_active() and not gpu else ''}): "
          f"{len(lens)} sequences, lengths {lens}, q_heads={hq} kv_heads={hk} head_dim={d} "
          f"{platform.dtype_name(dtype)}, page_size={ps}")

    def randn(*shape):
        return torch.randn(*shape, generator=g).to(device=device, dtype=dtype)

    report = Report()
    b, total = len(lens), sum(lens)
    k_rows, v_rows = randn(total, hk, d), randn(total, hk, d)
    indptr = torch.tensor([0] + lens).cumsum(0)

    # 1. A paged cache as an engine holds it: NaN-filled storage (like torch.empty), shuffled pages,
    #    spare pages no sequence owns; the tokens go in with write_kv (vLLM's reshape_and_cache).
    first = layouts[0]
    lay = attn.layouts.get_layout(first)
    pages_per = [(n + ps - 1) // ps for n in lens]
    num_pages = sum(pages_per) + 4
    perm = torch.randperm(num_pages, generator=g)
    kv_indptr = torch.tensor([0] + pages_per).cumsum(0).to(torch.int32)
    kv_indices = perm[: sum(pages_per)].to(torch.int32)
    k_cache = torch.full(lay.shape("k", num_pages, ps, hk, d, dtype), float("nan"), dtype=dtype, device=device)
    v_cache = torch.full(lay.shape("v", num_pages, ps, hk, d, dtype), float("nan"), dtype=dtype, device=device)
    kv = KVCache.paged(k_cache, v_cache, kv_indptr.to(device), kv_indices.to(device),
                       torch.tensor(lens, dtype=torch.int32, device=device), layout=first)
    seq = torch.repeat_interleave(torch.arange(b), torch.tensor(lens))
    pos = torch.arange(total) - indptr[seq]
    slots = kv_indices[(kv_indptr[seq] + pos // ps).long()].long() * ps + pos % ps
    wk_backend = "triton" if platform.triton_runs_on(k_rows)[0] else "torch"
    _, sec = _timed(lambda: write_kv(kv, k_rows, v_rows, slots.to(device), backend=wk_backend), device)
    k_back, v_back, _ = gather(kv)
    err = max(_rel_err(k_back, k_rows), _rel_err(v_back, v_rows))
    report.add("write_kv", first, wk_backend, err, 0.0, sec)

    # 2. The same contents in the other layouts, on freshly shuffled pages.
    caches = {first: kv}
    for name in layouts[1:]:
        n_need = sum(pages_per)
        kv2, sec = _timed(lambda: convert(kv, layout=name, page_size=ps, num_pages=n_need + 4,
                                            page_order=torch.randperm(n_need + 4, generator=g)), device)
        k2, v2, _ = gather(kv2)
        report.add("convert", name, "torch", max(_rel_err(k2, k_rows), _rel_err(v2, v_rows)), 0.0, sec,
                   f"from {first}")
        caches[name] = kv2

    # 3. Prefill (causal, queries = the whole sequence) and decode (one new query per sequence).
    q = randn(total, hq, d)
    q_indptr = indptr.to(device=device, dtype=torch.int32)
    q_dec = randn(b, hq, d)
    pf_backend, pf_note = _backend_for("prefill", q)
    dc_backend, dc_note = _backend_for("decode", q)
    for name, c in caches.items():
        ref = attn.prefill(q, c, q_indptr, causal=True, backend="torch")
        out, sec = _timed(lambda: attn.prefill(q, c, q_indptr, causal=True, backend=pf_backend), device)
        report.add("prefill", name, pf_backend, _rel_err(out, ref), tol, sec, pf_note)
        ref = attn.decode(q_dec, c, backend="torch")
        out, sec = _timed(lambda: attn.decode(q_dec, c, backend=dc_backend), device)
        report.add("decode", name, dc_backend, _rel_err(out, ref), tol, sec, dc_note)

    print()
    report.print()
    print()
    print("demo: all checks passed" if report.ok else "demo: FAILED (see the rows marked FAIL)")
    return 0 if report.ok else 1
