#!/usr/bin/env python
"""Compile every attn kernel variant ahead of time for every target, on a machine without a GPU.

    python ci/compile_matrix.py                      # everything: Triton specs + HIP instances
    python ci/compile_matrix.py --targets gfx90a,sm_90 --kernels kv_write -j 2
    python ci/compile_matrix.py --json report.json --markdown docs/compile_matrix.md

Triton kernels: every KernelSpec from attn.triton_kernels.specs (each kernel module's
compile_specs()) through `triton.compile(ASTSource(...), target=GPUTarget(...))` for sm_80, sm_90
(PTX -> cubin with the ptxas Triton ships), gfx90a, gfx942, gfx950 (LLVM AMDGPU -> hsaco, linked in
process by Triton's bundled lld: no ROCm needed). HIP kernel: every instance of
attn.hip.compile.instances() through compile_instance() (hiprtc for gfx90a, NVRTC for sm_80/sm_90).

Per compile it reports registers (NVIDIA: regs/thread from the cubin; AMD: VGPRs/SGPRs(/AGPRs) from
the kernel descriptor), shared memory / LDS bytes, spills (NVIDIA: spill-store bytes, or for Triton
kernels the cubin's stack + local bytes per thread, which for them means spills; AMD: VGPR + SGPR
spill counts), scratch (stack / private memory per thread: spills or local arrays) and
occupancy (NVIDIA: resident warps / 64 per SM from registers and shared memory; AMD: waves per
SIMD, as the compiler states it). Exit status is 1 on any compile failure, any spill or scratch use,
shared memory / LDS over the target's per-block limit (specs.LIMITS), or a kernel module that
failed to give its specs; 0 otherwise.
"""
from __future__ import annotations

import argparse
import fnmatch
import json
import os
import re
import subprocess
import sys
import tempfile
import time
import traceback
import warnings
from concurrent.futures import ProcessPoolExecutor, as_completed
from multiprocessing import get_context

HIP_TARGETS = ("gfx90a", "sm_80", "sm_90")
warnings.filterwarnings("ignore", message=".*TRITON_DEFAULT_FP_FUSION.*")


# ------------------------------------------------------------------------------------------
# Spec loading (in the main process and in each worker)

_SPECS = None
_HIP = None


def _load_extra(path):
    """A Python file defining compile_specs() (tests use this to add a deliberately broken spec)."""
    import importlib.util
    name = "_extra_specs_" + re.sub(r"\W", "_", os.path.abspath(path))
    spec = importlib.util.spec_from_file_location(name, path)
    mod = importlib.util.module_from_spec(spec)
    sys.modules[name] = mod
    spec.loader.exec_module(mod)
    return mod.compile_specs


def load_specs(extra_files=()):
    global _SPECS
    if _SPECS is None:
        from attn.triton_kernels import specs
        c = specs.collect([_load_extra(p) for p in extra_files])
        _SPECS = ({s.id: s for s in c.specs}, c.errors)
    return _SPECS


def load_hip():
    """(attn.hip.compile, [Instance]) or (None, reason) when the HIP sources are not there."""
    global _HIP
    if _HIP is None:
        try:
            from attn.hip import compile as hc          # editable installs: attn/__init__.py maps hip/
        except ModuleNotFoundError as e:
            _HIP = (None, f"attn.hip.compile not importable ({e})")
            return _HIP
        _HIP = (hc, list(hc.instances()))
    return _HIP


# ------------------------------------------------------------------------------------------
# Metrics


def _nvidia_tool(name, arch):
    import triton
    from triton.backends.nvidia import compiler as nvc
    if name == "ptxas":
        return nvc.get_ptxas(arch).path
    return os.path.join(os.path.dirname(triton.__file__), "backends", "nvidia", "bin", name)


def nvidia_metrics(kernel, target_arch: int) -> dict:
    """Registers, static shared memory, local/stack bytes from the cubin (cuobjdump -res-usage);
    ptxas -v on the PTX when cuobjdump cannot read it."""
    md = kernel.metadata
    out = {"smem": int(getattr(md, "shared", 0) or 0)}
    with tempfile.TemporaryDirectory() as d:
        cubin = os.path.join(d, "k.cubin")
        with open(cubin, "wb") as f:
            f.write(kernel.asm["cubin"])
        r = subprocess.run([_nvidia_tool("cuobjdump", target_arch), "-res-usage", cubin],
                           capture_output=True, text=True)
        m = re.search(r"REG:(\d+)\s+STACK:(\d+)\s+SHARED:(\d+)\s+LOCAL:(\d+)", r.stdout)
        if m:
            reg, stack, shared, local = map(int, m.groups())
            # a Triton kernel has no local arrays: its stack / local memory is spills
            out.update(regs=reg, spill=stack + local, scratch=stack + local, smem=out["smem"] + shared)
            return out
        ptx = os.path.join(d, "k.ptx")
        with open(ptx, "w") as f:
            f.write(kernel.asm["ptx"])
        arch = re.search(r"^\s*\.target\s+(\w+)", kernel.asm["ptx"], re.M).group(1)
        r = subprocess.run([_nvidia_tool("ptxas", target_arch), "-v", f"--gpu-name={arch}", ptx,
                            "-o", os.path.join(d, "x.cubin")], capture_output=True, text=True)
        log = r.stdout + r.stderr
        regs = re.search(r"Used (\d+) registers", log)
        stack = re.search(r"(\d+) bytes stack frame", log)
        spill = re.findall(r"(\d+) bytes spill (?:stores|loads)", log)
        smem = re.search(r"(\d+) bytes smem", log)
        if not regs:
            raise RuntimeError(f"could not read register use: cuobjdump said {r.stdout!r}; "
                               f"ptxas -v said {log[-500:]!r}")
        out.update(regs=int(regs.group(1)), spill=sum(map(int, spill)),
                   scratch=int(stack.group(1)) if stack else 0,
                   smem=out["smem"] + (int(smem.group(1)) if smem else 0))
        return out


def _field(text, key, default=0):
    m = re.search(rf"^\s*{re.escape(key)}\s*:?\s+(\d+)", text, re.M)
    return int(m.group(1)) if m else default


def amd_metrics(kernel) -> dict:
    """VGPRs, SGPRs, AGPRs, spills, LDS and occupancy from the AMDGPU assembly's kernel
    descriptor and the compiler's resource comments."""
    asm = kernel.asm["amdgcn"]
    lds = max(int(getattr(kernel.metadata, "shared", 0) or 0), _field(asm, ".group_segment_fixed_size"))
    occ = re.search(r";\s*Occupancy:\s*(\d+)", asm)
    return {
        "vgprs": _field(asm, ".vgpr_count"),
        "sgprs": _field(asm, ".sgpr_count"),
        "agprs": _field(asm, ".agpr_count"),
        "regs": _field(asm, ".vgpr_count"),
        "spill": _field(asm, ".vgpr_spill_count") + _field(asm, ".sgpr_spill_count"),
        "scratch": _field(asm, ".private_segment_fixed_size"),
        "smem": lds,
        "occupancy": f"{occ.group(1)}w" if occ else None,
    }


def nvidia_occupancy(target: str, regs: int, smem: int, num_warps: int) -> str:
    """Resident warps per SM / 64, from registers (allocated per warp in units of 256) and shared
    memory (1 KB reserved per block on sm_80+); a bound, as the CUDA occupancy calculator gives."""
    from attn.triton_kernels.specs import LIMITS
    lim = LIMITS[target]
    per_warp = -(-max(regs, 1) * 32 // 256) * 256
    blocks = min(lim.regs_per_sm // per_warp // num_warps, 32, lim.max_warps_per_sm // num_warps)
    if smem:
        blocks = min(blocks, lim.smem_per_sm // (smem + 1024))
    return f"{100 * blocks * num_warps // lim.max_warps_per_sm}%"


def judge(row: dict) -> dict:
    from attn.triton_kernels.specs import LIMITS
    reasons = []
    if row.get("error"):
        reasons.append("compile error")
    if row.get("spill"):
        reasons.append(f"spill {row['spill']}")
    if row.get("scratch") and row.get("scratch") != row.get("spill"):
        reasons.append(f"scratch {row['scratch']} B")
    lim = LIMITS.get(row["target"])
    if lim and row.get("smem") is not None and row["smem"] > lim.smem_per_block:
        reasons.append(f"smem {row['smem']} > {lim.smem_per_block}")
    row["ok"] = not reasons
    row["reasons"] = reasons
    return row


# ------------------------------------------------------------------------------------------
# One compile (runs in a worker)


def compile_triton(spec_id: str, target: str, extra_files=()) -> dict:
    import triton
    from attn.triton_kernels.specs import TARGETS, gpu_target
    spec = load_specs(extra_files)[0][spec_id]
    row = {"kind": "triton", "kernel": spec.kernel, "config": spec.config, "target": target}
    opts = spec.options_for(target)
    t0 = time.perf_counter()
    try:
        k = triton.compile(spec.source(), target=gpu_target(target), options=opts)
        if TARGETS[target][0] == "cuda":
            row.update(nvidia_metrics(k, TARGETS[target][1]))
            row["occupancy"] = nvidia_occupancy(target, row["regs"], row["smem"], k.metadata.num_warps)
        else:
            row.update(amd_metrics(k))
    except Exception as e:  # noqa: BLE001 - every failure is a row of the table
        row["error"] = f"{type(e).__name__}: {e}"[-4000:]
    row["seconds"] = round(time.perf_counter() - t0, 2)
    return judge(row)


def _amd_occupancy(vgprs: int, agprs: int, lds: int, threads: int, lim) -> str:
    """Waves per SIMD on CDNA: 512 unified VGPRs+AGPRs per lane in granules of 8, and LDS per CU
    shared by work-groups of threads/64 waves over 4 SIMDs (the compiler states it for Triton
    kernels; hiprtc's code object does not, so it is derived here)."""
    by_regs = min(8, 512 // max(8, -(-(vgprs + agprs) // 8) * 8))
    waves = max(1, threads // 64)
    by_lds = (lim.smem_per_sm // lds) * waves // 4 if lds else 8
    return f"{max(0, min(by_regs, by_lds))}w"


def compile_hip(index: int, target: str) -> list:
    """One HIP instance for one target: a row per kernel in its code object (decode, reduce)."""
    from attn.triton_kernels.specs import LIMITS
    hc, instances = load_hip()
    inst = instances[index]
    base = {"kind": "hip", "config": inst.key, "target": target}
    t0 = time.perf_counter()
    try:
        c = hc.compile(inst, target)
        if not c.binary:
            raise RuntimeError("compile returned no binary")
        if not c.resources:
            raise RuntimeError(f"no resource report (compiler log: {c.log[:500]!r})")
    except Exception as e:  # noqa: BLE001
        return [judge(dict(base, kernel="hip:attn_paged_decode", error=f"{type(e).__name__}: {e}"[-4000:],
                           seconds=round(time.perf_counter() - t0, 2)))]
    secs = round(time.perf_counter() - t0, 2)
    threads = {"attn_paged_decode": hc.THREADS, "attn_paged_decode_reduce": hc.REDUCE_THREADS}
    rows = []
    for name, r in sorted(c.resources.items()):
        row = dict(base, kernel=f"hip:{name}", seconds=secs)
        nthreads = threads.get(name, hc.THREADS)
        if target.startswith("sm_"):
            row.update(regs=r.get("registers"), smem=r.get("shared_bytes", 0),
                       spill=r.get("spill_store_bytes", 0), scratch=r.get("stack_bytes", 0))
            if row["regs"] is not None:
                row["occupancy"] = nvidia_occupancy(target, row["regs"], row["smem"], nthreads // 32)
        else:
            row.update(vgprs=r.get("vgprs"), sgprs=r.get("sgprs"), agprs=r.get("agprs", 0),
                       regs=r.get("vgprs"), smem=r.get("lds_bytes", 0),
                       spill=r.get("vgpr_spills", 0) + r.get("sgpr_spills", 0),
                       scratch=r.get("scratch_bytes", 0))
            if row["vgprs"] is not None:
                row["occupancy"] = _amd_occupancy(row["vgprs"], row["agprs"] or 0, row["smem"],
                                                  nthreads, LIMITS[target])
        rows.append(judge(row))
    return rows


def _run(job):
    kind, key, target, extra = job
    try:
        return [compile_triton(key, target, extra)] if kind == "triton" else compile_hip(key, target)
    except Exception:  # noqa: BLE001 - a worker must always answer with rows
        return [judge({"kind": kind, "kernel": str(key), "config": "?", "target": target,
                       "error": traceback.format_exc()[-4000:]})]


# ------------------------------------------------------------------------------------------
# Table


def cell(r: dict) -> str:
    if r.get("error"):
        return "FAIL: compile error"
    if r["target"].startswith("gfx"):
        regs = f"{r.get('vgprs')}v/{r.get('sgprs')}s" + (f"/{r['agprs']}a" if r.get("agprs") else "")
    else:
        regs = f"{r.get('regs')}r"
    s = f"{regs} {(r.get('smem') or 0) / 1024:.0f}K {r.get('occupancy') or '-'}"
    if not r["ok"]:
        s = "FAIL: " + ", ".join(r["reasons"]) + " | " + s
    return s


def table(rows: list, targets: list, markdown: bool = False) -> str:
    by = {}
    for r in rows:
        by.setdefault((r["kernel"], r["config"]), {})[r["target"]] = r
    head = ["kernel", "config"] + targets
    body = [[k, c] + [cell(t[x]) if x in t else "" for x in targets] for (k, c), t in sorted(by.items())]
    if markdown:
        lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
        lines += ["| " + " | ".join(str(x).replace("|", "\\|") for x in row) + " |" for row in body]
        return "\n".join(lines)
    widths = [max(len(str(x)) for x in col) for col in zip(head, *body)]
    fmt = "  ".join(f"{{:<{w}}}" for w in widths)
    return "\n".join([fmt.format(*head), fmt.format(*("-" * w for w in widths))]
                     + [fmt.format(*row) for row in body])


def markdown_doc(rows, targets, summary, a) -> str:
    cmd = "python ci/compile_matrix.py" + (f" --sample {a.sample:g}" if a.sample < 1 else "") + (
        f" --sample-offset {a.sample_offset}" if a.sample < 1 and a.sample_offset else "")
    failed = [r for r in rows if not r["ok"]]
    lines = [
        "# Compile matrix", "",
        "Every Triton kernel variant attn can launch (each kernel module's `compile_specs()`, see "
        "`triton_kernels/specs.py`) and every HIP decode instance, compiled ahead of time on a "
        "machine without a GPU for " + ", ".join(targets) + ". Regenerate with "
        f"`{cmd} --markdown docs/compile_matrix.md`.", "",
        f"This run: {summary['compiles']} compiles, {summary['failed']} failed, "
        f"{summary['wall_seconds']:.0f} s wall on {summary['jobs']} worker(s), "
        f"Triton {summary['triton']}" + (f", a {a.sample:g} sample of the pairs" if a.sample < 1 else "")
        + ".", "", LEGEND + ". A failing cell names why: compile error, spill, scratch (stack / "
        "private memory), or shared memory / LDS over the per-block limit "
        "(sm_80 163 KB, sm_90 227 KB, gfx90a/gfx942 64 KB, gfx950 160 KB).", ""]
    if failed:
        lines += ["## Failures", ""] + [f"- `{r['kernel']}:{r['config']}` on {r['target']}: "
                                        f"{', '.join(r['reasons'])}" for r in failed] + [""]
    lines += ["## Table", "", table(rows, targets, markdown=True), ""]
    return "\n".join(lines)


LEGEND = ("cells: registers (NVIDIA regs/thread r; AMD VGPRs v / SGPRs s / AGPRs a), shared memory / "
          "LDS per block, occupancy (NVIDIA: resident warps of 64 per SM; AMD: waves per SIMD, of 8)")


# ------------------------------------------------------------------------------------------


def sample(jobs: list, fraction: float, offset: int = 0) -> list:
    """About `fraction` of the (variant, target) pairs: a pair is kept when (hash(variant) +
    target's position + offset) % k == 0, k = round(1/fraction). The hash spreads each kernel's
    variants over its targets; successive offsets 0..k-1 together compile every pair exactly once
    (CI passes its commit count as the offset). Deterministic."""
    import zlib
    from attn.triton_kernels.specs import ALL_TARGETS
    k = max(1, round(1 / max(fraction, 1e-6)))
    return [j for j in jobs
            if (zlib.crc32(f"{j[0]}:{j[1]}".encode()) + ALL_TARGETS.index(j[2]) + offset) % k == 0]


def _select(ids, patterns):
    if not patterns:
        return list(ids)
    return [i for i in ids if any(fnmatch.fnmatch(i, p if any(ch in p for ch in "*?[") else f"*{p}*")
                                  for p in patterns)]


def main(argv=None) -> int:
    from attn.triton_kernels.specs import ALL_TARGETS
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--targets", default=",".join(ALL_TARGETS),
                    help=f"comma-separated subset of {','.join(ALL_TARGETS)}")
    ap.add_argument("--kernels", default="",
                    help="comma-separated filters on 'kernel:config' ids (substring or glob); "
                         "'hip' selects the HIP instances")
    ap.add_argument("--json", nargs="?", const="-", metavar="PATH",
                    help="write the rows as JSON to PATH ('-' or no value: stdout, table to stderr)")
    ap.add_argument("--markdown", metavar="PATH", help="also write the table as Markdown to PATH")
    ap.add_argument("-j", "--jobs", type=int, default=os.cpu_count() or 1, help="parallel workers")
    ap.add_argument("--no-hip", action="store_true", help="skip the HIP C++ instances")
    ap.add_argument("--specs-from", action="append", default=[], metavar="FILE",
                    help="also compile the specs of FILE's compile_specs() (repeatable)")
    ap.add_argument("--fresh", action="store_true",
                    help="compile into empty Triton and HIP caches (timings; cache-independent results)")
    ap.add_argument("--list", action="store_true", help="list the selected jobs and exit")
    ap.add_argument("--sample", type=float, default=1.0, metavar="FRACTION",
                    help="compile about FRACTION of the (variant, target) pairs, spread so that every "
                         "variant of a kernel is compiled for some target (CI: 0.25; nightly: 1)")
    ap.add_argument("--sample-offset", type=int, default=0, metavar="N",
                    help="rotate the sample (e.g. by run number) so successive runs cover all pairs")
    a = ap.parse_args(argv)

    targets = [t.strip() for t in a.targets.split(",") if t.strip()]
    bad = [t for t in targets if t not in ALL_TARGETS]
    if bad:
        ap.error(f"--targets: unknown {bad}; known: {list(ALL_TARGETS)}")
    patterns = [p.strip() for p in a.kernels.split(",") if p.strip()]
    extra = [os.path.abspath(p) for p in a.specs_from]
    if a.fresh:
        os.environ["TRITON_CACHE_DIR"] = tempfile.mkdtemp(prefix="attn-compile-matrix-")
        os.environ["ATTN_CACHE_DIR"] = tempfile.mkdtemp(prefix="attn-compile-matrix-hip-")

    specs, errors = load_specs(extra)
    jobs = [("triton", sid, t, tuple(extra)) for sid in _select(specs, patterns) for t in targets
            if t in specs[sid].targets]
    hip_targets = [t for t in targets if t in HIP_TARGETS]
    if not a.no_hip and hip_targets:
        try:
            hc, insts = load_hip()
        except Exception as e:  # noqa: BLE001 - a broken HIP module is a failure, not a skip
            hc, insts = None, None
            errors["hip"] = f"attn.hip.compile: {type(e).__name__}: {e}"
        if hc is None and insts is not None:
            print(f"note: HIP instances skipped: {insts}", file=sys.stderr)
        elif hc is not None:
            hip_targets = [t for t in hip_targets if t in getattr(hc, "TARGETS", HIP_TARGETS)]
            ids = {f"hip:{inst.key}": i for i, inst in enumerate(insts)}
            for hid in _select(ids, patterns):
                for t in hip_targets:
                    if insts[ids[hid]].warp == hc.warp_of(t):
                        jobs.append(("hip", ids[hid], t, ()))
    if a.sample < 1.0:
        jobs = sample(jobs, a.sample, a.sample_offset)
    notes = [f"{m}: {e}" for m, e in errors.items()]
    if a.list:
        for kind, key, t, _ in jobs:
            print(key if kind == "triton" else f"hip:{load_hip()[1][key].key}", t)
        return 0

    t0 = time.perf_counter()
    rows = []
    try:
        from tqdm import tqdm
        bar = tqdm(total=len(jobs), file=sys.stderr, unit="compile", dynamic_ncols=True)
    except ImportError:
        bar = None
    if a.jobs <= 1 or len(jobs) <= 1:
        for j in jobs:
            rows.extend(_run(j))
            bar and bar.update(1)
    else:
        with ProcessPoolExecutor(max_workers=a.jobs, mp_context=get_context("spawn")) as ex:
            for f in as_completed([ex.submit(_run, j) for j in jobs]):
                rows.extend(f.result())
                bar and bar.update(1)
    bar and bar.close()
    wall = time.perf_counter() - t0

    failed = [r for r in rows if not r["ok"]]
    import triton
    summary = {"compiles": len(rows), "failed": len(failed), "wall_seconds": round(wall, 1),
               "compile_seconds": round(sum(r["seconds"] for r in rows), 1), "jobs": a.jobs,
               "triton": triton.__version__, "targets": targets, "spec_errors": errors}
    out = sys.stderr if a.json == "-" else sys.stdout
    print(table(rows, targets), file=out)
    print(LEGEND, file=out)
    for r in failed:
        print(f"\nFAILED {r['kernel']}:{r['config']} on {r['target']}: {', '.join(r['reasons'])}",
              file=out)
        if r.get("error"):
            print("  " + r["error"].strip().replace("\n", "\n  ")[-1500:], file=out)
    for n in notes:
        print(f"\nFAILED to collect specs: {n}", file=out)
    print(f"\n{len(rows)} compiles, {len(failed)} failed, {len(errors)} spec errors; "
          f"{wall:.0f} s wall on {a.jobs} worker(s), triton {triton.__version__}", file=out)
    if a.json:
        payload = json.dumps({"summary": summary, "rows": sorted(
            rows, key=lambda r: (r["kernel"], r["config"], r["target"]))}, indent=1)
        if a.json == "-":
            print(payload)
        else:
            with open(a.json, "w") as f:
                f.write(payload)
    if a.markdown:
        with open(a.markdown, "w") as f:
            f.write(markdown_doc(rows, targets, summary, a))
    return 1 if failed or errors else 0


if __name__ == "__main__":
    sys.exit(main())
