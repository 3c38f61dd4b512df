"""Tune kernel configs on this GPU into attn/configs/<vendor>/<device>.json (offline; production
code only looks them up).

For each shape bucket the tuner times the heuristic config and a focused candidate space (block
sizes, num_warps, num_stages, load cache modifier, decode split counts, vLLM's K tile form; AMD:
waves_per_eu, matrix_instr_nonkdim, kpack) in two stages (tiles, then modifiers on the best tile), checks the
fastest candidate against the float32 reference (the next one if it fails), and for decode also
times the HIP backend, recording which path wins. A partial file (<out>.partial.json) is written
after every measurement: an interrupted run resumes where it stopped. --budget-s bounds the run;
buckets left over keep the heuristic.

    python -m attn tune --op decode --budget-s 120
    python -m attn tune --op prefill --shapes 8x2048,16x512
    python -m attn tune --op decode --shapes 64x4096:vllm,8x32768:vllm
"""
from __future__ import annotations

import json
import math
import os
import sys
import time
from pathlib import Path

import numpy as np
import torch

from attn import benchutil as bu, configs, platform

OPS = ("decode", "prefill", "extend", "rotary")
CONFIG_OP = {"decode": "decode", "prefill": "prefill", "extend": "prefill", "rotary": "rotary"}


# ------------------------------------------------------------------------------ shapes
def mixed_lengths(b: int = 32, lo: int = 16, hi: int = 16384, seed: int = 0) -> list[int]:
    """Log-uniform lengths in [lo, hi], the same on every run (the benchmark's mixed batch)."""
    rng = np.random.default_rng(seed)
    return [int(x) for x in np.exp(rng.uniform(math.log(lo), math.log(hi), b)).astype(np.int64)]


def default_shapes(op: str) -> list[dict]:
    """The issue shapes (bf16, 32 q heads / 8 kv heads, head_dim 128)."""
    if op == "prefill":
        return [dict(batch=8, kv_len=2048), dict(batch=1, kv_len=16384), dict(batch=16, kv_len=512)]
    if op == "extend":
        return [dict(batch=16, kv_len=2560, q_len=512, layout="NHD", page_size=16),
                dict(batch=16, kv_len=2560, q_len=512, layout="pool", page_size=1)]
    if op == "decode":
        return [dict(batch=64, kv_len=4096), dict(batch=8, kv_len=32768), dict(batch=256, kv_len=1024),
                dict(batch=1, kv_len=131072), dict(lengths=mixed_lengths()),
                dict(batch=64, kv_len=4096, layout="pool", page_size=1),
                dict(batch=64, kv_len=4096, layout="vllm"), dict(batch=8, kv_len=32768, layout="vllm"),
                dict(batch=1, kv_len=131072, layout="vllm"), dict(lengths=mixed_lengths(), layout="vllm")]
    if op == "rotary":
        return [dict(tokens=8192), dict(tokens=256)]
    raise ValueError(f"op must be one of {OPS}; got {op!r}")


DECODE_LAYOUTS = ("HND", "NHD", "vllm", "pool")


def parse_shapes(op: str, text: str | None) -> list[dict]:
    """"BxN[,BxN...]" (decode: batch x kv_len; prefill: batch x len; extend: batch x prefix+new;
    rotary: tokens), or None for the defaults. Decode takes a layout after a colon: 64x4096:vllm,
    64x4096:pool (page size 1); HND otherwise."""
    if not text:
        return default_shapes(op)
    out = []
    for part in text.split(","):
        part = part.strip()
        try:
            if op == "rotary":
                out.append(dict(tokens=int(part)))
                continue
            if op == "decode" and (":" in part or part == "mixed"):
                part, layout = part.split(":") if ":" in part else (part, "HND")
                if layout not in DECODE_LAYOUTS:
                    raise SystemExit(f"--shapes: layout {layout!r} in {part}:{layout} must be one of {DECODE_LAYOUTS}")
                geo = dict(layout=layout, page_size=1 if layout == "pool" else 16)
                if part == "mixed":
                    out.append(dict(lengths=mixed_lengths(), **geo))
                    continue
                b, n = part.lower().split("x")
                out.append(dict(batch=int(b), kv_len=int(n), **geo))
                continue
            b, n = part.lower().split("x")
            if op == "extend":
                pre, new = n.split("+")
                out.append(dict(batch=int(b), kv_len=int(pre) + int(new), q_len=int(new), layout="NHD",
                                page_size=16))
            else:
                out.append(dict(batch=int(b), kv_len=int(n)))
        except ValueError:
            raise SystemExit(f"--shapes: cannot read {part!r} for --op {op}; expected "
                             + ("TOKENS" if op == "rotary" else "BxPREFIX+NEW" if op == "extend" else "BxLEN"))
    return out


def build_case(op: str, spec: dict, *, dtype=torch.bfloat16, device="cuda", q_heads=32, kv_heads=8, head_dim=128,
               n_sets=1, gen=None):
    lens = spec.get("lengths") or [spec["kv_len"]] * spec["batch"]
    if op == "decode":
        return bu.decode_case(lens, layout=spec.get("layout", "HND"), page_size=spec.get("page_size", 16),
                              q_heads=q_heads, kv_heads=kv_heads, head_dim=head_dim, dtype=dtype, device=device,
                              n_sets=n_sets, gen=gen)
    q_lens = [spec["q_len"]] * len(lens) if "q_len" in spec else None
    return bu.prefill_case(lens, q_lens, layout=spec.get("layout", "ragged"), page_size=spec.get("page_size", 1),
                           q_heads=q_heads, kv_heads=kv_heads, head_dim=head_dim, dtype=dtype, device=device,
                           n_sets=n_sets, gen=gen)


# ------------------------------------------------------------------------------ candidates
def candidate_space(op: str, plat) -> tuple[list[dict], list[dict]]:
    """(stage 1: tiles, stage 2: modifiers tried on the best tile). Focused: the H100 run of every
    op must stay within a few minutes, each tile costing one compile per kernel variant."""
    amd = plat.vendor == "amd"
    if op in ("prefill", "extend"):
        # (128, 64, 8, 5): over a page map the page-number load takes pipeline stages, so K and V
        # get 2 buffers at 3-4 stages (3 for a ragged cache at 3) and 3 at 5 (sm_90 TTGIR).
        tiles = [(128, 64, 8, 3), (128, 64, 4, 3), (128, 128, 8, 3), (128, 32, 4, 3), (64, 64, 4, 3),
                 (64, 64, 4, 4), (128, 64, 8, 2), (64, 128, 4, 3), (128, 64, 8, 4), (128, 64, 8, 5)]
        if plat.vendor == "nvidia" and configs.hopper(plat):
            # These spill on sm_90 under Triton 3.9 (the compile matrix: 80-432 bytes), two of them
            # not under the H200's 3.6, where the tuner's own spill check let them win: it only
            # sees the Triton it runs on.
            tiles = [t for t in tiles if t not in ((128, 128, 8, 3), (128, 32, 4, 3), (128, 64, 4, 3), (64, 128, 4, 3))]
        if amd:
            tiles = [(m, n, min(w, 4), min(s, 2)) for m, n, w, s in tiles]
        stage1 = _uniq(dict(BLOCK_M=m, BLOCK_N=n, num_warps=w, num_stages=s) for m, n, w, s in tiles)
        stage2 = [dict(cache_modifier=".cg")] if op == "extend" else []
    elif op == "decode":
        # No 2-warp tiles and no 128-key blocks at 4 warps: both spill on sm_90 (compile matrix).
        # The page-number load takes pipeline stages of its own: at 2-4 stages the pipeliner gives
        # K and V one shared-memory buffer each (one block in flight), at 5-6 two, at 8 three
        # (sm_90 TTGIR, Triton 3.9); 5 and 6 are the cheapest two-buffer tiles.
        tiles = [(16, 64, 4, 3), (16, 32, 4, 3), (16, 64, 8, 3),
                 (16, 64, 4, 2), (16, 64, 4, 4), (16, 128, 8, 3), (16, 64, 4, 5), (16, 32, 4, 6)]
        if amd:
            tiles = [(m, n, min(w, 4), min(s, 2)) for m, n, w, s in tiles]
        stage1 = _uniq(dict(BLOCK_M=m, BLOCK_N=n, num_warps=w, num_stages=s) for m, n, w, s in tiles)
        # Split-KV: programs wanted per SM (the split count follows from the batch), shortest chunk,
        # chunks fitted to one wave (fit_wave: 0.90-0.96x on the H200's page-1 and 8 x 32768 rows,
        # 1.22x on the mixed batch's row tile: it depends on the lengths, so the tuner decides).
        # Guided chunks (decreasing length) and one program an SM more than the registers allow
        # (occupancy: a register ceiling) won 2% on the H200's mixed batch in the layouts where
        # the equal chunks did not (h200-2026-12-04c/).
        stage2 = [dict(cache_modifier=".cg"), dict(programs_per_sm=1), dict(programs_per_sm=2),
                  dict(programs_per_sm=8), dict(min_chunk_blocks=8), dict(fit_wave=True),
                  dict(programs_per_sm=4, fit_wave=True), dict(longest_first=True),
                  dict(guided=0.5, programs_per_sm=4), dict(guided=0.25, programs_per_sm=5)]
        if plat.vendor == "nvidia":
            stage2 += [dict(occupancy=6, programs_per_sm=5)]
    elif op == "rotary":
        # launch_config's own knobs (triton_kernels/rotary.py TUNABLE), so that an entry holds for
        # any token count near its bucket: elements a program rotates, warps, heads a program.
        stage1 = [dict(tile=t, num_warps=w) for t in (4096, 8192, 16384) for w in (2, 4, 8)]
        stage2 = [dict(max_heads=8), dict(max_heads=32)]
    else:
        raise ValueError(op)
    if amd and op != "rotary":
        stage2 += [dict(waves_per_eu=w) for w in (1, 4)] + [dict(matrix_instr_nonkdim=32), dict(kpack=2)]
    return stage1, stage2


def _uniq(cfgs):
    out, seen = [], set()
    for c in cfgs:
        k = json.dumps(c, sort_keys=True)
        if k not in seen:
            seen.add(k)
            out.append(c)
    return out


def ckey(cfg: dict) -> str:
    return json.dumps(cfg, sort_keys=True)


# ------------------------------------------------------------------------------ measuring
def compiled_kernels() -> dict:
    """Every kernel Triton has compiled so far for attn's kernel modules: {id: CompiledKernel}
    (empty under the interpreter, which compiles nothing)."""
    import importlib
    from triton.runtime.jit import JITFunction
    from attn.triton_kernels.specs import _modules
    out = {}
    for name in _modules():
        mod = importlib.import_module(f"attn.triton_kernels.{name}")
        for fn in vars(mod).values():
            for cache in getattr(fn, "device_caches", {}).values() if isinstance(fn, JITFunction) else ():
                for k in (cache[0] if isinstance(cache, tuple) else cache).values():
                    out[id(k)] = k
    return out


def spills_since(before: dict) -> int:
    """Spilled bytes of the kernels compiled since `before` (compiled_kernels()), the most of any:
    the compile matrix fails such a config, so the tuner must not pick it."""
    return max((int(getattr(k, "n_spills", 0) or 0) for i, k in compiled_kernels().items() if i not in before),
               default=0)


def default_timer(calls, cfg) -> float:
    return bu.gpu_time(calls, reps=10, min_graph_ms=1.0)[0]


def make_runner(op: str, case, cfg: dict):
    """A runner for `case` with `cfg` forced over the heuristic."""
    if op == "rotary":
        return rotary_runner(case, cfg)
    if op in ("prefill", "extend"):
        # The tiles tuned are the portable kernel's: plan it even where the Hopper kernel
        # (triton_kernels/prefill_hopper.py, which takes no tile config) would run the batch.
        from attn.triton_kernels.prefill import portable_only
        with portable_only():
            return bu.attn_runner(case, cfg)
    return bu.attn_runner(case, cfg)


def default_check(op: str, case, cfg: dict, probe=None) -> float:
    """Relative error of cfg's output vs the float32 reference: on the case itself for decode and
    rotary, on a small probe case of the same layout (ragged tails, a length-1 sequence) for
    prefill, whose reference at full size would not fit in memory."""
    c = case if op in ("decode", "rotary") or probe is None else probe
    run = make_runner(op, c, cfg)
    out = run(0)()
    if op == "rotary":
        ref = c.reference()
        return max(bu.rel_err(a.float(), b.float()) for a, b in zip(out, ref))
    ref = bu.reference(c)
    return bu.rel_err(out.float(), ref.float())


def probe_case(op: str, spec: dict, dtype, device, gen=None):
    if op == "extend":
        return bu.prefill_case([300, 1, 700], [100, 1, 129], layout=spec.get("layout", "NHD"),
                               page_size=spec.get("page_size", 16), dtype=dtype, device=device, gen=gen)
    if op == "prefill":
        return bu.prefill_case([300, 1, 517], layout=spec.get("layout", "ragged"), page_size=spec.get("page_size", 1),
                               dtype=dtype, device=device, gen=gen)
    return None


# ------------------------------------------------------------------------------ rotary
class RotaryCase:
    """tokens x (32 q heads, 8 kv heads) x 128, neox, positions random: q and k read and written."""
    op = "rotary"

    def __init__(self, tokens, dtype=torch.bfloat16, device="cuda", n_sets=1, gen=None):
        from attn import rotary
        self.cache = rotary.cos_sin_cache(65536, 128, dtype=torch.float32).to(device)
        mk = lambda h: torch.randn(tokens, h, 128, device=device, generator=gen).to(dtype)  # noqa: E731
        self.qs = [mk(32) for _ in range(n_sets)]
        self.ks = [mk(8) for _ in range(n_sets)]
        self.pos = torch.randint(0, 65536, (tokens,), device=device, generator=gen)
        self.tokens = tokens
        self.bytes = 2.0 * tokens * (32 + 8) * 128 * torch.empty(0, dtype=dtype).element_size()
        self.q, self.kv_lens = self.qs[0], np.array([tokens])

    @property
    def n_sets(self):
        return len(self.qs)

    def shape(self):
        return dict(head_dim=128, dtype=platform.dtype_name(self.q.dtype), batch=self.tokens)

    def reference(self, i=0):
        from attn.reference.rotary import apply
        return apply(self.qs[i], self.ks[i], self.cache, "neox", 128, False, positions=self.pos)


def rotary_runner(case: RotaryCase, cfg: dict):
    """apply's launch with cfg: launch_config's tunable knobs (tr.TUNABLE) go in as its overrides,
    any other key (BLOCK_TQ, ...) replaces the resulting launch parameter."""
    from attn.triton_kernels import rotary as tr
    plat = platform.for_tensor(case.q)
    over = tuple(sorted((k, v) for k, v in cfg.items() if k in tr.TUNABLE))
    base = tr.launch_config(case.tokens, 32, 8, 128, plat.vendor, plat.num_sms, overrides=over)
    full = {**base, **{k: v for k, v in cfg.items() if k not in tr.TUNABLE}}
    outs = [(torch.empty_like(q), torch.empty_like(k)) for q, k in zip(case.qs, case.ks)]

    def run(i):
        def call():
            qo, ko = outs[i]
            tr.rotary(case.qs[i], case.ks[i], qo, ko, case.cache, 128, True, positions=case.pos, config=full)
            return qo, ko
        return call
    run.cfg = full
    return run


# ------------------------------------------------------------------------------ the loop
class Tuner:
    """Tune `op` over `shapes`. timer(calls, cfg) -> ms and check(op, case, cfg, probe) -> rel_err
    are injectable (the CPU test passes deterministic ones)."""

    def __init__(self, op, shapes, *, out, plat=None, device="cuda", dtype=torch.bfloat16, budget_s=None,
                 timer=None, check=None, space=None, q_heads=32, kv_heads=8, head_dim=128, progress=True,
                 hip=True, log=print):
        self.op, self.shapes, self.out = op, shapes, Path(out)
        self.plat = plat or platform.get()
        self.device, self.dtype = device, dtype
        self.deadline = None if budget_s is None else time.monotonic() + budget_s
        self.timer = timer or default_timer
        self.check = check or default_check
        self.space = space or candidate_space(op, self.plat)
        self.heads = (q_heads, kv_heads, head_dim)
        self.progress, self.hip, self.log = progress, hip, log
        self.partial_path = Path(str(self.out) + ".partial.json")
        self.all_state = json.loads(self.partial_path.read_text()) if self.partial_path.exists() else {}
        self.state = self.all_state.setdefault(op, {})
        self.state.setdefault("times", {})
        self.state.setdefault("done", {})
        self.measured = 0              # timer calls made by this run (resume skips the known ones)

    def out_of_time(self) -> bool:
        return self.deadline is not None and time.monotonic() > self.deadline

    def _save(self):
        self.partial_path.parent.mkdir(parents=True, exist_ok=True)
        tmp = self.partial_path.with_suffix(".tmp")
        tmp.write_text(json.dumps(self.all_state, indent=1))
        os.replace(tmp, self.partial_path)

    def _case(self, spec):
        q_heads, kv_heads, head_dim = self.heads
        if self.op == "rotary":
            return RotaryCase(spec["tokens"], self.dtype, self.device)
        case = build_case(self.op, spec, dtype=self.dtype, device=self.device, q_heads=q_heads, kv_heads=kv_heads,
                          head_dim=head_dim)
        if self.device != "cpu":
            n = bu.sets_for(int(case.bytes + case.q.numel() * case.q.element_size()), bu.l2_bytes(self.device))
            if n > 1:
                case = build_case(self.op, spec, dtype=self.dtype, device=self.device, q_heads=q_heads,
                                  kv_heads=kv_heads, head_dim=head_dim, n_sets=n)
        return case

    def _time(self, bkey, case, cfg, baseline=False) -> float:
        """Median time of cfg in ms (1e30: it failed). A candidate that spills is rejected; the
        baseline (the heuristic) is timed anyway: it is what runs where the file has no entry."""
        k = ckey(cfg)
        times = self.state["times"].setdefault(bkey, {})
        if k in times:
            return times[k]
        try:
            run = make_runner(self.op, case, cfg)
            calls = [run(i) for i in range(case.n_sets)]
            before = compiled_kernels()
            calls[0]()                    # compile (and load) outside the timing, then ask for spills
            spilled = spills_since(before)
            if spilled and not baseline:
                raise RuntimeError(f"spills {spilled} bytes (the compile matrix would reject it)")
            if spilled:
                self.log(f"  heuristic {k} spills {spilled} bytes here: timed anyway, as the baseline")
            ms = float(self.timer(calls, cfg))
        except Exception as e:            # noqa: BLE001 (a config that does not compile, fit or spill-free: skip it)
            self.log(f"  {k}: {type(e).__name__}: {str(e).splitlines()[0][:120] if str(e) else ''}")
            ms = math.inf
        self.measured += 1
        times[k] = ms if math.isfinite(ms) else 1e30
        self._save()
        return times[k]

    def run(self) -> dict:
        """Tune every shape (within the budget); returns {"entries": [...], "skipped": [...]}."""
        from tqdm import tqdm
        s1, s2 = self.space

        def extra_mods(spec, heur) -> list:
            if self.op == "decode" and spec.get("layout") == "vllm":
                # vLLM's other K / V tiles (attention.py: K_BY_GROUP 0 rows, 1 K by dim group, 2
                # whole page-heads) against the heuristic's, measured on this device.
                return [dict(k_by_group=m) for m in (0, 1, 2) if m != int(heur.get("k_by_group", 0))]
            return []

        def per_shape(spec) -> int:
            return len(s1) + len(s2) + 1 + len(extra_mods(spec, dict(k_by_group=2)))
        bar = tqdm(total=sum(per_shape(spec) for spec in self.shapes), desc=f"tune {self.op}", unit="cfg",
                   disable=not self.progress, file=sys.stderr)
        entries, skipped = [], []
        for spec in self.shapes:
            case = self._case(spec)
            shape = case.shape()
            if self.op == "prefill":
                shape.pop("q_len", None)         # q_len == kv_len: one size key
            bucket = configs.bucket_of(**shape)
            bkey = ckey(bucket)
            if bkey in self.state["done"]:
                entries.append(self.state["done"][bkey])
                bar.update(per_shape(spec))
                continue
            if self.out_of_time():
                skipped.append(bucket)
                bar.update(per_shape(spec))
                continue
            heur = configs.heuristic(CONFIG_OP[self.op], self.plat, **shape)
            if self.op == "rotary":
                heur = {}                  # the launcher's defaults: launch_config without overrides
            heur_ms = self._time(bkey, case, heur, baseline=True)
            bar.update(1)
            timed = {ckey(heur): (heur_ms, heur)}

            def sweep(base, mods):
                for mod in mods:
                    if self.out_of_time():
                        break
                    c = {**base, **mod}
                    timed[ckey(c)] = (self._time(bkey, case, c), c)
                    bar.update(1)
            sweep(heur, s1)                                                # tiles over the heuristic
            sweep(min(timed.values(), key=lambda t: t[0])[1], s2 + extra_mods(spec, heur))  # over the best tile
            probe = probe_case(self.op, spec, self.dtype, self.device)
            entry = None
            for ms, cfg in sorted(timed.values(), key=lambda t: t[0]):
                if ms >= 1e30:
                    break
                final = cfg
                err = self.check(self.op, case, final, probe)
                if err <= bu.TOL.get(self.dtype, 2e-2):
                    ok = heur_ms < 1e30              # a heuristic that failed to run has no time
                    entry = dict(bucket=bucket, config=final, time_us=round(ms * 1e3, 3),
                                 heuristic=heur, heuristic_time_us=round(heur_ms * 1e3, 3) if ok else None,
                                 speedup=round(heur_ms / ms, 4) if ok else None, rel_err=float(f"{err:.3g}"),
                                 candidates=len(timed), shape={k: v for k, v in spec.items() if k != "lengths"},
                                 complete=not self.out_of_time())
                    break
                self.log(f"  {ckey(cfg)} fails the reference check (rel err {err:.3g}); trying the next")
            if entry is None:
                skipped.append(bucket)
                continue
            if self.op == "decode" and self.hip:
                entry.update(self._hip_choice(case, entry["time_us"] / 1e3))
            self.state["done"][bkey] = entry
            self._save()
            entries.append(entry)
            bar.set_postfix_str(f"{entry['speedup']:.2f}x vs heuristic")
        bar.close()
        return dict(entries=entries, skipped=skipped)

    def _hip_choice(self, case, triton_ms) -> dict:
        """Decode path choice: time the HIP backend on the same case when it runs here."""
        try:
            from attn.hip import backend as hb
            ok, _ = hb.available(case.q)
            if not ok:
                return dict(backend="triton")
            p = hb.plan(case.kv, q_heads=case.q.shape[1])
            outs = [torch.empty_like(q) for q in case.qs]
            calls = [(lambda i=i: hb.run(p, case.qs[i], case.kvs[i], out=outs[i])) for i in range(case.n_sets)]
            hip_ms = float(self.timer(calls, {"backend": "hip"}))
            err = bu.rel_err(calls[0]().float(), bu.reference(case).float())
            if err > bu.TOL.get(self.dtype, 2e-2):
                return dict(backend="triton", hip_time_us=round(hip_ms * 1e3, 3), hip_rel_err=err)
            return dict(backend="hip" if hip_ms < triton_ms else "triton", hip_time_us=round(hip_ms * 1e3, 3))
        except Exception as e:            # noqa: BLE001 (hip-python / cuda-python missing, unsupported shape)
            self.log(f"  hip backend not timed: {type(e).__name__}: {e}")
            return dict(backend="triton")


def write_results(path, op: str, entries: list, plat) -> dict:
    """Merge entries into the device file at path (entries of other ops and buckets are kept)."""
    path = Path(path)
    data = configs.load_file(path) if path.exists() else {}
    import triton
    data["meta"] = dict(device=plat.device_name, vendor=plat.vendor, arch=plat.arch,
                        torch=torch.__version__, triton=triton.__version__,
                        date=time.strftime("%Y-%m-%d"), generated_by="python -m attn tune")
    ops = data.setdefault("ops", {})
    cop = CONFIG_OP[op]
    # A bucket written before the layout key and the same bucket with the key's default are one.
    same = lambda b: ckey({**configs.BUCKET_DEFAULTS, **b})   # noqa: E731
    new = {same(n["bucket"]) for n in entries}
    keep = [e for e in ops.get(cop, []) if same(e["bucket"]) not in new]
    ops[cop] = keep + entries
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(data, indent=1, sort_keys=False) + "\n")
    configs.clear_cache()
    return data


# ------------------------------------------------------------------------------ CLI
def add_arguments(parser):
    parser.add_argument("--op", required=True, choices=OPS + ("all",), help="operation to tune (all: every one)")
    parser.add_argument("--shapes", default=None,
                        help="comma-separated BxLEN (decode, prefill), BxPREFIX+NEW (extend), TOKENS (rotary); "
                             "decode takes a layout after a colon (64x4096:vllm, :NHD, :pool; HND otherwise) and 'mixed' "
                             "for the mixed-length batch (mixed:vllm); "
                             "default: the kernel issues' shapes")
    parser.add_argument("--out", default=None, help="device file to write (default attn/configs/<vendor>/<device>.json)")
    parser.add_argument("--budget-s", type=float, default=None, help="stop tuning after this many seconds")
    parser.add_argument("--no-hip", action="store_true", help="do not time the HIP decode backend")
    parser.add_argument("--no-progress", action="store_true")


def run(args) -> int:
    if not torch.cuda.is_available():
        print("attn tune needs a CUDA or ROCm GPU (torch.cuda.is_available() is False)", file=sys.stderr)
        return 2
    plat = platform.get()
    out = Path(args.out) if args.out else configs.file_for(plat, configs._DIR)
    ops = ("decode", "prefill", "extend", "rotary") if args.op == "all" else (args.op,)   # decode first: the path choice
    start = time.monotonic()
    for i, op in enumerate(ops):
        # An even share of what is left: the first op cannot spend the whole budget.
        left = None if args.budget_s is None else max(0.0, args.budget_s - (time.monotonic() - start)) / (len(ops) - i)
        tuner = Tuner(op, parse_shapes(op, args.shapes if args.op != "all" else None), out=out, plat=plat,
                      budget_s=left, progress=not args.no_progress, hip=not args.no_hip)
        res = tuner.run()
        write_results(out, op, res["entries"], plat)
        for e in res["entries"]:
            vs = (f"vs heuristic {e['heuristic_time_us']:.1f} us ({e['speedup']:.2f}x)" if e.get("speedup")
                  else "(the heuristic did not run)")
            print(f"{op:8s} {ckey(e['bucket'])}: {e['time_us']:.1f} us {vs} {ckey(e['config'])}"
                  + (f" backend={e['backend']}" if "backend" in e else ""))
        for b in res["skipped"]:
            print(f"{op:8s} {ckey(b)}: not tuned (budget or no config passed the check): heuristic stays")
        if not res["skipped"] and tuner.partial_path.exists():
            state = json.loads(tuner.partial_path.read_text())
            state.pop(op, None)
            if state:
                tuner.partial_path.write_text(json.dumps(state, indent=1))
            else:
                tuner.partial_path.unlink()
    print(f"wrote {out} in {time.monotonic() - start:.0f} s")
    return 0
