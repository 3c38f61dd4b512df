"""The compile matrix (ci/compile_matrix.py) in the CPU tier: a small slice compiles for NVIDIA and
AMD targets without a GPU and reports registers / shared memory; a deliberately broken spec (LDS
over gfx90a's 64 KB, a register spill on sm_80) makes it exit non-zero. The full matrix runs as
its own CI step (.ci/run), not here."""
from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
SCRIPT = os.path.join(REPO, "ci", "compile_matrix.py")
BROKEN = os.path.join(REPO, "tests", "compile_matrix_broken.py")


def run_matrix(*args, timeout=600):
    env = dict(os.environ)
    env.pop("TRITON_INTERPRET", None)        # AOT compiles, not the interpreter
    p = subprocess.run([sys.executable, SCRIPT, "--no-hip", "-j", "1", "--json", "-", *args],
                       capture_output=True, text=True, timeout=timeout, env=env, cwd=REPO)
    try:
        payload = json.loads(p.stdout)
    except json.JSONDecodeError:
        payload = None
    return p, payload


def test_slice_compiles_for_every_target():
    p, out = run_matrix("--kernels", "kv_write:vllm/fp16/slot_i64/h8/d128,kv_write:NHD|HND|ragged/bf16/slot_i64/h4/d128")
    assert p.returncode == 0, f"compile matrix failed on a known-good slice:\n{p.stderr[-3000:]}"
    rows = out["rows"]
    assert {r["target"] for r in rows} == {"sm_80", "sm_90", "gfx90a", "gfx942", "gfx950"}, rows
    assert len(rows) == 10, [(r["config"], r["target"]) for r in rows]
    for r in rows:
        what = f"{r['config']} on {r['target']}"
        assert r["ok"] and not r.get("error"), f"{what}: {r}"
        assert r["regs"] and r["regs"] > 0, f"{what}: no register count: {r}"
        assert r["spill"] == 0 and r["smem"] is not None and r["occupancy"], f"{what}: {r}"
        if r["target"].startswith("gfx"):
            assert r["vgprs"] > 0 and r["sgprs"] > 0, f"{what}: {r}"
    # the vllm variant stages its x-split through shared memory; the table shows it
    assert any(r["smem"] > 0 for r in rows if r["config"].startswith("vllm")), rows
    assert "kv_write" in p.stderr and "sm_90" in p.stderr, "the table goes to stderr with --json -"


@pytest.mark.parametrize("config,target,reason", [
    ("lds_overflow", "gfx90a", "smem 131072 > 65536"),
    ("spill", "sm_80", "spill"),
])
def test_broken_spec_fails_the_matrix(config, target, reason):
    p, out = run_matrix("--specs-from", BROKEN, "--kernels", f"broken:{config}")
    assert p.returncode == 1, f"broken:{config} must fail the matrix; exit {p.returncode}\n{p.stderr[-2000:]}"
    (row,) = out["rows"]
    assert row["target"] == target and not row["ok"], row
    assert any(reason in r for r in row["reasons"]), row["reasons"]
    assert f"FAILED broken:{config} on {target}" in p.stderr


def test_spec_module_that_fails_to_import_fails_the_matrix(tmp_path):
    bad = tmp_path / "bad_specs.py"
    bad.write_text("def compile_specs():\n    raise ValueError('no such config')\n")
    p, out = run_matrix("--specs-from", str(bad), "--kernels", "nothing-matches")
    assert p.returncode == 1, p.stderr[-2000:]
    assert "no such config" in p.stderr


def test_compile_error_is_a_failure(tmp_path):
    bad = tmp_path / "err_specs.py"
    bad.write_text(
        "import triton, triton.language as tl\n"
        "@triton.jit\n"
        "def _k(x, N: tl.constexpr):\n"
        "    tl.store(x + tl.arange(0, N), 1.0)\n"      # N not a power of two: a compile error
        "def compile_specs():\n"
        "    from attn.triton_kernels.specs import KernelSpec, signature\n"
        "    cx = dict(N=24)\n"
        "    return [KernelSpec('err', 'n24', _k, signature(_k, cx, x='*fp32'), cx,"
        " targets=('sm_90',))]\n")
    p, out = run_matrix("--specs-from", str(bad), "--kernels", "err:")
    assert p.returncode == 1, p.stderr[-2000:]
    (row,) = out["rows"]
    assert row["error"] and row["reasons"] == ["compile error"], row


def test_sampling_is_deterministic_and_covers_all_pairs_over_k_offsets():
    sys.path.insert(0, os.path.join(REPO, "ci"))
    try:
        import compile_matrix as cm
    finally:
        sys.path.pop(0)
    from attn.triton_kernels.specs import ALL_TARGETS
    jobs = [("triton", f"k:c{i}", t, ()) for i in range(40) for t in ALL_TARGETS]
    parts = [cm.sample(jobs, 0.25, off) for off in range(4)]
    assert cm.sample(jobs, 0.25, 1) == parts[1]
    union = [j for p in parts for j in p]
    assert sorted(union) == sorted(jobs), "offsets 0..3 must compile every pair exactly once"
    assert all(40 <= len(p) <= 60 for p in parts), [len(p) for p in parts]


def test_every_kernel_module_declares_valid_specs():
    from attn.triton_kernels import specs
    c = specs.collect()
    assert not c.errors, c.errors
    assert {"kv_write"} <= {s.kernel for s in c.specs}
    for s in c.specs:
        assert set(s.signature) == set(s.fn.arg_names), f"{s.id}: signature must name every argument"
        assert set(s.targets) <= set(specs.ALL_TARGETS), f"{s.id}: unknown targets {s.targets}"
        for k in s.constexprs:
            assert s.signature[k] == "constexpr", f"{s.id}: constexpr {k} typed {s.signature[k]}"
