"""Benchmark every operation on this GPU beside its peers; write results/<device>.md and plots.

Times are CUDA-event medians of CUDA-graph replays (host launch overhead out), the inputs rotated
over several copies so the L2 does not serve them; attn is timed through its plan/run path, the
plan made once outside timing. Each row prints time, TFLOP/s (causal FLOPs for causal) or GB/s
(K+V bytes read), the fraction of the device's ceilings measured in the same run (copy bandwidth
read+write, bf16 matmul rate), the heuristic config's time where the tuned one differs, and the
peers (SDPA flash/cuDNN/efficient, FlexAttention, the HIP decode, FlashInfer / flash-attn when
importable) with attn's speed ratio to each.

    python -m attn bench --op all --peers --out-dir benchmarks/results
    python -m attn bench --op decode --shapes 64x4096,8x32768
"""
from __future__ import annotations

import datetime
import math
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import torch

from attn import benchutil as bu, configs, peers as P, platform

OPS = ("prefill", "extend", "decode", "rotary", "merge", "mixed")


# ------------------------------------------------------------------------------ suites
class Ctx:
    def __init__(self, args, ceil, plat):
        self.args, self.ceil, self.plat = args, ceil, plat
        self.l2 = bu.l2_bytes()
        self.flex_left = 0 if getattr(args, "no_flex", False) else getattr(args, "flex_max", 5)
        self.gen = torch.Generator(device="cuda")
        self.gen.manual_seed(0)

    def sets(self, case_bytes):
        return bu.sets_for(int(case_bytes), self.l2)


def _time(calls, **kw):
    return bu.gpu_time(calls, **kw)


def measure(case, ctx, *, peers=(), metric="tflops", heuristic=True, label=None) -> dict:
    """One row: attn (tuned config for this shape), the heuristic, and peers."""
    op = "extend" if case.op == "prefill" and case.q_lens[0] != case.kv_lens[0] else case.op
    cop = "decode" if case.op == "decode" else "prefill"
    shape = case.shape()
    tuned = configs.lookup(cop, ctx.plat, **shape)
    heur = configs.heuristic(cop, ctx.plat, **shape)
    row = dict(shape=label or case.label, op=op, peers={}, notes=[])
    run = bu.attn_runner(case, tuned)
    n = case.n_sets
    graph = run.path == "plan/run"          # the functional path syncs on the host: not capturable
    row["attn_ms"], mode = _time([run(i) for i in range(n)], graph=graph)
    row["path"] = f"{run.path}, {mode}"
    entry = configs.entry_for(cop, ctx.plat, **shape)
    row["tuned"] = entry is not None
    differs = entry is not None and (any(tuned.get(k) != v for k, v in heur.items()) or bool(set(tuned) - set(heur)))
    if heuristic and differs:
        hrun = bu.attn_runner(case, heur)
        row["heur_ms"], _ = _time([hrun(i) for i in range(n)], graph=graph)
    if run.cfg.get("hopper"):
        # The Hopper kernel ran: time the portable one (the tuned tile) beside it.
        from attn.triton_kernels.prefill import portable_only
        with portable_only():
            prun = bu.attn_runner(case, tuned)
        row["peers"]["attn portable"], _ = _time([prun(i) for i in range(n)], graph=graph)
        row["path"] += ", Hopper kernel"
    for maker in peers:
        for name, r in maker(case).items():
            if isinstance(r, str):
                row["notes"].append(f"{name}: {r}")
                continue
            try:
                row["peers"][name], pmode = _time([r(i) for i in range(n)], graph=name not in EAGER_PEERS)
                if pmode != "graph":
                    row["notes"].append(f"{name}: eager timing")
            except Exception as e:            # noqa: BLE001
                row["notes"].append(f"{name}: {type(e).__name__}")
    work = case.flops if metric == "tflops" else case.bytes
    row["metric"] = metric
    row["work"] = work
    return row


EAGER_PEERS = ("attn-hip",)      # launched through its own driver bindings: timed without graphs


def _peers(ctx, decode=False, flex=True):
    if not ctx.args.peers:
        return [P.hip_peer] if decode else []
    out = [P.sdpa_peers, P.flash_attn_peer, P.flashinfer_peer]
    if flex and ctx.flex_left > 0:
        ctx.flex_left -= 1
        out.append(P.flex_peer)
    if decode:
        out.append(P.hip_peer)
    return out


def _shapes(ctx, default):
    text = ctx.args.shapes
    if not text:
        return default
    out = []
    for part in text.split(","):
        b, n = part.lower().split("x")
        out.append((int(b), int(n)))
    return out


def suite_prefill(ctx):
    rows = []
    for b, n in _shapes(ctx, [(8, 2048), (1, 16384), (16, 512)]):
        per = b * n * (32 + 16) * 128 * 2
        case = bu.prefill_case([n] * b, n_sets=ctx.sets(per), gen=ctx.gen, label=f"b={b} x {n} causal")
        rows.append(measure(case, ctx, peers=_peers(ctx)))
        yield rows[-1]
    # custom mask, 50% of 128x128 blocks live, vs the same shape unmasked (non-causal)
    b, n = 8, 2048
    plain = bu.prefill_case([n] * b, causal=False, gen=ctx.gen, label=f"b={b} x {n} no mask")
    masked = bu.prefill_case([n] * b, causal=False, mask_density=0.5, gen=ctx.gen, label=f"b={b} x {n} 50% mask")
    r0 = measure(plain, ctx, heuristic=False)
    r1 = measure(masked, ctx, heuristic=False)
    r1["notes"].append(f"time ratio masked/unmasked = {r1['attn_ms'] / r0['attn_ms']:.2f} (ideal 0.50)")
    yield r0
    yield r1


def suite_extend(ctx):
    b, pre, new = 16, 2048, 512
    # The ragged row is issue 3's yardstick for the paged ones (a paged prefix within 10% of it);
    # the peers see the same dense inputs whatever attn's layout, so they run once.
    for layout, ps in (("NHD", 16), ("pool", 1), ("ragged", 1)):
        case = bu.prefill_case([pre + new] * b, [new] * b, layout=layout, page_size=ps, gen=ctx.gen,
                               label=f"b={b} {pre}+{new} {layout} ps={ps}")
        yield measure(case, ctx, peers=_peers(ctx, flex=True) if layout == "NHD" else [])


def suite_decode(ctx):
    from attn.tune import mixed_lengths
    shapes = _shapes(ctx, [(64, 4096), (8, 32768), (256, 1024), (1, 131072)])
    specs = [(f"b={b} x {n}", [n] * b) for b, n in shapes]
    if not ctx.args.shapes:
        specs.append(("b=32 mixed 16..16384", mixed_lengths()))
    # Every layout on every shape (issue 4's targets hold for each); peers once a shape, on the
    # HND row: they read the same dense tensors whatever attn's layout.
    for label, lens in specs:
        per = sum(lens) * 8 * 128 * 2 * 2
        for layout, ps in (("HND", 16), ("NHD", 16), ("vllm", 16), ("pool", 1)):
            case = bu.decode_case(lens, layout=layout, page_size=ps, n_sets=ctx.sets(per), gen=ctx.gen,
                                  label=f"{label} {layout} ps={ps}")
            peers = ([P.hip_peer] + ([P.flashinfer_peer, P.flash_attn_peer] if ctx.args.peers else []))
            if layout == "HND":
                peers = _peers(ctx, decode=True, flex=label.startswith("b=64"))
            yield measure(case, ctx, peers=peers, metric="gbs")
            del case


def suite_rotary(ctx):
    """attn.rotary.apply (triton) vs the torch reference: q and k read and written (GB/s)."""
    from attn import rotary
    from attn.tune import RotaryCase
    for tokens in (8192, 64):
        rc = RotaryCase(tokens, n_sets=ctx.sets(2 * tokens * 40 * 128 * 2), gen=ctx.gen)
        row = dict(shape=f"{tokens} tokens 32q/8kv d=128 neox", op="rotary", peers={}, notes=[], metric="gbs",
                   work=rc.bytes, tuned=False)
        from attn.tune import rotary_runner
        from attn.triton_kernels.rotary import tuned_overrides
        # The launch alone, outputs preallocated, with what the launcher would take from a tuned file.
        entry = dict(tuned_overrides(rc.q.device, tokens, 128, rc.q.dtype))
        row["tuned"] = bool(entry)        # the cache-write rows below take no entry
        rr = rotary_runner(rc, entry)
        row["attn_ms"], mode = _time([rr(i) for i in range(rc.n_sets)])
        row["path"] = f"launch, {mode}"
        if entry:                         # the heuristic column, as measure() gives the other ops
            hr = rotary_runner(rc, {})
            row["heur_ms"], _ = _time([hr(i) for i in range(rc.n_sets)])
        ref = [(lambda i=i: rotary.apply(rc.qs[i], rc.ks[i], rc.pos, rc.cache, backend="torch"))
               for i in range(rc.n_sets)]
        row["peers"]["torch-ref"], _ = _time(ref, graph=False)
        yield row
        yield from _rotary_write_rows(ctx, rc)


def _rotary_write_rows(ctx, rc):
    """attn.rotary.apply_and_write_kv (one launch: q rotated, k rotated and v written into a paged
    cache at shuffled slots) against the torch reference; bytes: q read + written, k and v read and
    written, the slot mapping."""
    from attn import rotary
    from attn.triton_kernels.rotary import rotary as launch
    dev = rc.q.device
    for layout in ("NHD", "HND", "vllm"):
        tokens = rc.tokens
        sets = []
        for i in range(rc.n_sets):
            kv = bu.make_kv([tokens], layout=layout, page_size=16, gen=ctx.gen, device=dev, dtype=rc.q.dtype)
            t = torch.arange(tokens, device=dev)
            slots = (kv.page_indices.long()[t // 16] * 16 + t % 16)
            v = torch.randn(rc.ks[i].shape, device=dev, generator=ctx.gen).to(rc.ks[i].dtype)
            sets.append((kv, slots, v, torch.empty_like(rc.qs[i])))
        el = rc.qs[0].element_size()
        work = 2.0 * tokens * (32 + 2 * 8) * 128 * el + 8 * tokens
        row = dict(shape=f"{tokens} tokens, write {layout} ps=16", op="rotary", peers={}, notes=[], metric="gbs",
                   work=work, tuned=False)
        calls = [(lambda i=i, s=s: (launch(rc.qs[i], rc.ks[i], s[3], None, rc.cache, 128, True, positions=rc.pos,
                                           kv=s[0], v=s[2], slot_mapping=s[1]), s[3])[1]) for i, s in enumerate(sets)]
        row["attn_ms"], mode = _time(calls)
        row["path"] = f"apply_and_write_kv launch, {mode}"
        ref = [(lambda i=i, s=s: rotary.apply_and_write_kv(rc.qs[i], rc.ks[i], s[2], rc.pos, rc.cache, s[0], s[1],
                                                           backend="torch")) for i, s in enumerate(sets)]
        row["peers"]["torch-ref"], _ = _time(ref, graph=False)
        yield row


def suite_merge(ctx):
    """attn.merge_states over n partials [n, tokens, heads, d] fp32 + lse: bytes read + written."""
    import attn
    for n, tokens in ((2, 8192), (8, 1024)):
        sets = []
        for _ in range(max(1, ctx.sets(n * tokens * 32 * 128 * 4))):
            o = torch.randn(n, tokens, 32, 128, device="cuda", generator=ctx.gen)
            lse = torch.randn(n, tokens, 32, device="cuda", generator=ctx.gen)
            sets.append((o, lse))
        by = n * tokens * 32 * (128 + 1) * 4 + tokens * 32 * (128 + 1) * 4
        row = dict(shape=f"n={n} x {tokens} tokens x 32 heads x 128 fp32", op="merge", peers={}, notes=[],
                   metric="gbs", work=float(by), tuned=False)
        try:
            row["attn_ms"], mode = _time([(lambda s=s: attn.merge_states(*s, backend="triton")) for s in sets],
                                         graph=False)
            row["path"] = f"functional, {mode}"
        except Exception as e:               # noqa: BLE001 (no triton merge yet)
            row["attn_ms"], row["path"] = math.nan, f"{type(e).__name__}"
        row["peers"]["torch-ref"], _ = _time([(lambda s=s: attn.merge_states(*s, backend="torch")) for s in sets],
                                             graph=False)
        yield row


def _mixed_batch(gen, n_decode, prefill_lens, dec_lo=1024, dec_hi=8192, ps=16, hkv=8, hq=32, d=128):
    """A mixed serving step over one HND cache: n_decode requests (q_len 1, kv dec_lo..dec_hi) and
    fresh prefill chunks, interleaved. Returns the whole batch and its two halves as descriptors
    over the same storage: (kv, q, q_indptr, kv_prefill, q_prefill, q_indptr_prefill, kv_decode, q_decode)."""
    import attn
    dec = torch.randint(dec_lo, dec_hi + 1, (n_decode,), generator=gen, device="cuda").tolist()
    q_lens = [1] * n_decode + list(prefill_lens)
    kv_lens = dec + list(prefill_lens)
    need = [(n + ps - 1) // ps for n in kv_lens]
    pages = sum(need)
    k = torch.randn(pages, hkv, ps, d, dtype=torch.bfloat16, device="cuda", generator=gen)
    v = torch.randn_like(k)
    perm = torch.randperm(pages, device="cuda", generator=gen).to(torch.int32)
    starts = np.concatenate([[0], np.cumsum(need)])

    def sub(idx):
        ip = torch.tensor(np.concatenate([[0], np.cumsum([need[i] for i in idx])]), dtype=torch.int32,
                          device="cuda")
        pages_of = torch.cat([perm[starts[i]:starts[i + 1]] for i in idx]) if idx else perm[:0]
        lens = torch.tensor([kv_lens[i] for i in idx], dtype=torch.int32, device="cuda")
        kv = attn.KVCache.paged(k, v, ip, pages_of, lens, layout="HND")
        qip = torch.tensor(np.concatenate([[0], np.cumsum([q_lens[i] for i in idx])]), dtype=torch.int32,
                           device="cuda")
        q = torch.randn(int(qip[-1]), hq, d, dtype=torch.bfloat16, device="cuda", generator=gen)
        return kv, q, qip

    order = torch.randperm(len(q_lens), generator=gen, device="cuda").tolist()
    full = sub(order)
    pre = sub([i for i in range(len(q_lens)) if i >= n_decode])
    dec_kv, dec_q, _ = sub(list(range(n_decode)))
    return full + pre + (dec_kv, dec_q), q_lens, kv_lens


def suite_mixed(ctx):
    """attn.BatchAttention (one persistent launch) vs attn's separate BatchPrefill + BatchDecode
    launches on the same mixed batch (both graph-captured): the ratio is the persistent speedup."""
    import attn
    specs = [("mixed: 64 decode 1k-8k + 4 prefill 512-2048", 64, [512, 1024, 2048, 768]),
             ("decode-heavy: 128 decode 1k-8k + 1 prefill 512", 128, [512]),
             ("prefill-heavy: 8 decode 1k-8k + 8 prefill 2048", 8, [2048] * 8)]
    for label, n_dec, pre in specs:
        (kv, q, qip, kv_p, q_p, qip_p, kv_d, q_d), q_lens, kv_lens = _mixed_batch(ctx.gen, n_dec, pre)
        ba = attn.BatchAttention(max_tokens=q.shape[0], max_batch=kv.batch_size).plan(qip, kv, q.shape[1])
        bp = attn.BatchPrefill(max_tokens=q_p.shape[0], max_batch=kv_p.batch_size, num_q_heads=q.shape[1])
        bp.plan(qip_p, kv_p)
        bd = attn.BatchDecode(max_batch=kv_d.batch_size).plan(kv_d, q.shape[1])
        out = torch.empty_like(q)
        ref = attn.reference.prefill(q, kv, qip)
        err = bu.rel_err(ba.run(q, kv, out=out), ref)
        flops = bu.causal_flops(q_lens, kv_lens, q.shape[1], q.shape[2])
        row = dict(shape=label, op="mixed", peers={}, notes=[f"rel err {err:.1e}",
                   f"imbalance {ba.schedule.imbalance():.2f}"], metric="tflops", work=flops, tuned=False)
        row["attn_ms"], mode = _time([lambda: ba.run(q, kv, out=out)])
        row["path"] = f"BatchAttention, {mode}"

        def separate():
            bp.run(q_p, kv_p)
            bd.run(q_d, kv_d)
        row["peers"]["attn prefill+decode"], _ = _time([separate])
        if q.is_cuda:
            # The same two launches on two streams (forked and joined inside the graph): what the
            # one persistent launch must beat when the GPU can run the kernels side by side.
            side = torch.cuda.Stream()

            def concurrent():
                main = torch.cuda.current_stream()
                side.wait_stream(main)
                with torch.cuda.stream(side):
                    bd.run(q_d, kv_d)
                bp.run(q_p, kv_p)
                main.wait_stream(side)
            row["peers"]["attn prefill||decode, 2 streams"], _ = _time([concurrent])
        if q.is_cuda:
            # The same batch planned with a cost model fitted to its measured program times.
            # A fresh instance: the timed one was captured, and the new plan may need more rows.
            bc = attn.BatchAttention(max_tokens=q.shape[0], max_batch=kv.batch_size).plan(qip, kv, q.shape[1])
            bc.run(q, kv)
            before = bc.measure(q, kv)
            model = bc.calibrate(q, kv)
            after = bc.measure(q, kv)
            row["notes"].append("fitted us: " + ", ".join(f"{k} {getattr(model, k):.2f}" for k in (
                "decode_block", "decode_item", "prefill_block", "prefill_item")))
            row["notes"].append(f"measured imbalance {before.max() / before.mean():.2f}, calibrated "
                                f"{after.max() / after.mean():.2f}")
            row["notes"].append(f"calibrated rel err {bu.rel_err(bc.run(q, kv, out=out), ref):.1e}")
            row["peers"]["BatchAttention calibrated"], _ = _time([lambda: bc.run(q, kv, out=out)])
        yield row


SUITES = {"prefill": suite_prefill, "extend": suite_extend, "decode": suite_decode, "rotary": suite_rotary,
          "merge": suite_merge, "mixed": suite_mixed}


# ------------------------------------------------------------------------------ report
def rate(row, ms):
    if ms is None or not math.isfinite(ms) or ms <= 0:
        return math.nan
    return row["work"] / ms / (1e9 if row["metric"] == "tflops" else 1e6)


def fmt_row(row, ceil) -> list[str]:
    unit = "TFLOP/s" if row["metric"] == "tflops" else "GB/s"
    top = ceil["matmul_tflops"] if row["metric"] == "tflops" else ceil["copy_gbs"]
    r = rate(row, row["attn_ms"])
    cells = [row["shape"], f"{row['attn_ms'] * 1e3:.1f}", f"{r:.0f} {unit}", f"{r / top:.0%}"]
    if "heur_ms" in row:
        cells.append(f"{row['heur_ms'] * 1e3:.1f} ({row['heur_ms'] / row['attn_ms']:.2f}x)")
    else:
        cells.append("=" if row.get("tuned") else "(no tuned entry)")
    peers = [f"{name} {rate(row, ms):.0f} ({ms / row['attn_ms']:.2f}x)" for name, ms in row["peers"].items()]
    cells.append("; ".join(peers) or "-")
    cells.append("; ".join([row.get("path", "")] + row["notes"]))
    return cells


HEADER = ["shape", "attn us", "attn rate", "of ceiling", "heuristic us (tuned speedup)",
          "peers: rate (peer time / attn time, >1: attn faster)", "notes"]


def source_commit(repo=None) -> str:
    """The commit the measured code is at, "+dirty" when tracked files differ from it (a copied
    working tree, as on a borrowed GPU machine, can carry an older commit's git metadata), or
    "unknown" outside a git checkout."""
    repo = Path(repo) if repo is not None else Path(__file__).resolve().parent

    def git(*args):
        try:
            out = subprocess.run(["git", "-C", str(repo), *args], capture_output=True, text=True, timeout=30)
        except (OSError, subprocess.SubprocessError):
            return ""
        return out.stdout.strip() if out.returncode == 0 else ""

    sha = git("rev-parse", "--short=12", "HEAD")
    if not sha:
        return "unknown"
    return sha + ("+dirty" if git("status", "--porcelain", "--untracked-files=no") else "")


def write_report(path, rows_by_op, ceil, plat, elapsed):
    import triton
    commit = source_commit()
    lines = [f"# attn benchmarks: {plat.device_name}", "",
             f"- date: {datetime.datetime.now().strftime('%Y-%m-%d %H:%M')}, commit {commit}",
             f"- torch {torch.__version__}, triton {triton.__version__}, CUDA {torch.version.cuda}, "
             f"HIP {torch.version.hip}",
             f"- device: {plat.device_name} ({plat.arch}, {plat.num_sms} SMs)",
             f"- measured ceilings: copy {ceil['copy_gbs']:.0f} GB/s (read+write), bf16 matmul "
             f"{ceil['matmul_tflops']:.0f} TFLOP/s",
             f"- tuned config file: {configs.file_for(plat).name} "
             f"({'present' if configs.file_for(plat).exists() else 'absent: heuristics'})",
             f"- optional peers importable: {P.optional_peers()}",
             "- timing: CUDA-event median of CUDA-graph replays, inputs rotated over copies > 3x L2; "
             "attn through plan/run (plan outside timing). Peers on dense padded inputs (SDPA, flex) or "
             "their own paged/ragged forms. Rates: causal FLOPs (visible keys only) / K+V bytes read.",
             f"- suite wall time {elapsed:.0f} s", ""]
    for op, rows in rows_by_op.items():
        if not rows:
            continue
        lines += [f"## {op}", "", "| " + " | ".join(HEADER) + " |", "|" + "---|" * len(HEADER)]
        lines += ["| " + " | ".join(fmt_row(r, ceil)) + " |" for r in rows]
        lines.append("")
    Path(path).parent.mkdir(parents=True, exist_ok=True)
    Path(path).write_text("\n".join(lines) + "\n")


def plot(path, op, rows):
    try:
        import matplotlib
        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        return False
    names = ["attn"] + sorted({n for r in rows for n in r["peers"]})
    if any("heur_ms" in r for r in rows):
        names.insert(1, "attn-heuristic")
    fig, ax = plt.subplots(figsize=(max(6, 1.6 * len(rows)), 4))
    w = 0.8 / len(names)
    for j, name in enumerate(names):
        vals = [rate(r, r["attn_ms"] if name == "attn" else r.get("heur_ms") if name == "attn-heuristic"
                     else r["peers"].get(name)) for r in rows]
        ax.bar(np.arange(len(rows)) + j * w, [0 if math.isnan(v) else v for v in vals], w, label=name)
    ax.set_xticks(np.arange(len(rows)) + 0.4 - w / 2)
    ax.set_xticklabels([r["shape"] for r in rows], rotation=20, ha="right", fontsize=7)
    ax.set_ylabel("TFLOP/s" if rows[0]["metric"] == "tflops" else "GB/s")
    ax.set_title(f"attn {op}")
    ax.legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return True


# ------------------------------------------------------------------------------ CLI
def add_arguments(parser):
    parser.add_argument("--op", default="all", help=f"all, or a comma list of {', '.join(OPS)}")
    parser.add_argument("--peers", action="store_true", help="time SDPA, FlexAttention and installed peer kernels")
    parser.add_argument("--shapes", default=None, help="comma-separated BxLEN (prefill, decode); default: issue shapes")
    parser.add_argument("--out", default=None, help="markdown file (default <out-dir>/<device>.md)")
    parser.add_argument("--out-dir", default="benchmarks/results", help="where the report and plots go")
    parser.add_argument("--no-flex", action="store_true", help="skip FlexAttention (its compiles take a while)")
    parser.add_argument("--flex-max", type=int, default=5, help="shapes FlexAttention is compiled for at most")
    parser.add_argument("--no-plot", action="store_true")
    parser.add_argument("--no-progress", action="store_true")


def run(args) -> int:
    if not torch.cuda.is_available():
        print("attn bench needs a CUDA or ROCm GPU (torch.cuda.is_available() is False)", file=sys.stderr)
        return 2
    from tqdm import tqdm
    start = time.monotonic()
    plat = platform.get()
    ceil = bu.ceilings()
    print(f"{plat.device_name}: copy {ceil['copy_gbs']:.0f} GB/s, bf16 matmul {ceil['matmul_tflops']:.0f} TFLOP/s")
    ctx = Ctx(args, ceil, plat)
    ops = OPS if args.op == "all" else tuple(args.op.split(","))
    unknown = [o for o in ops if o not in SUITES]
    if unknown:
        print(f"--op must be 'all' or a comma list of {', '.join(OPS)}; got {', '.join(unknown)}", file=sys.stderr)
        return 2
    md = Path(args.out) if args.out else Path(args.out_dir) / f"{plat.config_key}.md"
    rows_by_op = {}
    bar = tqdm(desc="bench", unit="row", disable=args.no_progress, file=sys.stderr)
    for op in ops:
        rows_by_op[op] = []
        try:
            for row in SUITES[op](ctx):
                rows_by_op[op].append(row)
                bar.update(1)
                print(f"{op:8s} " + " | ".join(fmt_row(row, ceil)), flush=True)
                # Each row's case is freed here; an engine allocates its cache once, from an empty
                # pool, and so does the next row.
                torch.cuda.empty_cache()
                # After every row: a run stopped at its time limit keeps what it measured.
                write_report(md, rows_by_op, ceil, plat, time.monotonic() - start)
        except Exception as e:               # noqa: BLE001 (one op's failure must not lose the others)
            import traceback
            traceback.print_exc()
            print(f"{op}: suite failed: {type(e).__name__}: {e}", file=sys.stderr)
        torch.cuda.empty_cache()
        write_report(md, rows_by_op, ceil, plat, time.monotonic() - start)
    bar.close()
    print(f"wrote {md}")
    if not args.no_plot:
        for op, rows in rows_by_op.items():
            if rows and plot(md.parent / f"{plat.config_key}_{op}.png", op, rows):
                print(f"wrote {md.parent / f'{plat.config_key}_{op}.png'}")
    print(f"bench took {time.monotonic() - start:.0f} s")
    return 0
