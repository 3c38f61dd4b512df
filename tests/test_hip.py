"""The HIP paged-decode backend (attn.hip).

CPU tier: the one source compiles for gfx90a through hip-python's hiprtc (Debian's ROCm 5.2 runtime)
and for sm_80 / sm_90 through NVRTC, for a representative subset of instances per run (every head
dim, GQA tile, kind and dtype, page sizes rotated; ATTN_HIP_COMPILE_ALL=1 compiles every instance;
ci/compile_matrix.py covers all of them). A missing compiler fails under CI=true and skips otherwise.
The CPU tier also asserts no spills and no scratch for those instances.
GPU tier (@pytest.mark.gpu): every layout x page size x head dim x GQA x dtype against the reference
(so every instance), NaN in unowned slots, poisoned outputs, lengths 0/1/odd (up to ~700: modest,
so the tier runs in about two minutes with `pytest -n 14`), one 128k sequence, options, CUDA-graph
replay.
"""
from __future__ import annotations

import os
import subprocess
import sys

import pytest
import torch

import attn
import kvgen

try:
    import attn.hip.compile  # noqa: F401
except ModuleNotFoundError:
    # Editable installs (setuptools' finder) do not resolve the attn.hip namespace folder, which has
    # no __init__.py on purpose; the repository root as a search location of attn finds it.
    attn.__path__.append(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
from attn.hip import backend as hb  # noqa: E402
from attn.hip import compile as hc  # noqa: E402
from attn.hip import runtime  # noqa: E402

BACKEND = "hip"          # the backend the GPU tier report counts these tests under

IN_CI = os.environ.get("CI", "").lower() in ("1", "true", "yes")


def _need(toolchain: str):
    """A compiler missing here: fail in CI (which installs them), skip on a developer machine."""
    try:
        runtime.hiprtc_version() if toolchain == "hiprtc" else runtime.nvrtc_version()
    except runtime.ToolchainMissing as e:
        msg = f"{toolchain} missing: {e} (bash ci/install_system_deps.sh; pip install -e '.[hip,cuda]')"
        if IN_CI:
            pytest.fail(msg)
        pytest.skip(msg)


def _subset(warp: int) -> list[hc.Instance]:
    """Every head dim x GQA tile x kind x dtype, with the page size rotated over the valid ones."""
    if os.environ.get("ATTN_HIP_COMPILE_ALL"):
        return hc.instances(warp)
    out, i = [], 0
    for kind in hc.KINDS:
        sizes = [p for p in hc.PAGE_SIZES if kind == "strided" or p % 8 == 0]
        for d in hc.HEAD_DIMS:
            for g in hc.gqa_tiles(kind):
                out.append(hc.Instance(d, sizes[i % len(sizes)], g, hc.DTYPES[i % 2], warp, kind))
                i += 1
    return out


@pytest.fixture
def fresh_cache(tmp_path, monkeypatch):
    monkeypatch.setenv("ATTN_CACHE_DIR", str(tmp_path))
    return tmp_path


# ------------------------------------------------------------------------------ CPU tier
@pytest.mark.parametrize("target", ["gfx90a", "sm_80", "sm_90"])
def test_compiles(target, fresh_cache):
    _need("nvrtc" if target.startswith("sm_") else "hiprtc")
    insts = _subset(hc.warp_of(target))
    if target == "sm_80" and not os.environ.get("ATTN_HIP_COMPILE_ALL"):
        insts = insts[::3]                       # sm_80 shares sm_90's front end: a third suffices
    for inst in insts:
        c = hc.compile(inst, target)
        magic = c.binary[:4]
        assert magic == b"\x7fELF", f"{inst.key} for {target}: not an ELF binary ({magic!r})"
        res = c.resources.get("attn_paged_decode")
        assert res, f"{inst.key} for {target}: no resource report (log: {c.log[:300]})"
        # No spills and no scratch: register arrays are indexed by compile-time constants only.
        for name, r in c.resources.items():
            spill = (r.get("spill_store_bytes", 0) + r.get("stack_bytes", 0) if target.startswith("sm_")
                     else r.get("vgpr_spills", 0) + r.get("sgpr_spills", 0) + r.get("scratch_bytes", 0))
            assert spill == 0, f"{inst.key} {name} for {target}: spills / scratch {r}"


@pytest.mark.parametrize("head_dim,page_size,kind", [(128, 16, "HND"), (128, 1, "HND"), (64, 16, "vllm"),
                                                    (128, 16, "vllm")])
def test_nvidia_instances_keep_three_work_groups_an_sm(head_dim, page_size, kind, fresh_cache):
    """ptxas is asked for MIN_BLOCKS work-groups an SM: without it head_dim 128 took 175 registers
    (2 an SM; 161 had fitted 3) and the H200's HIP decode read ~15% slower. Registers within the
    budget and no spills."""
    _need("nvrtc")
    inst = hc.instance_for(head_dim, page_size, 4, "bf16", kind, 32)
    r = hc.compile(inst, "sm_90").resources["attn_paged_decode"]
    assert r["registers"] <= 65536 // (hc.MIN_BLOCKS * hc.THREADS), (inst.key, r)
    assert r.get("spill_store_bytes", 0) == 0 and r.get("stack_bytes", 0) == 0, (inst.key, r)


def test_disk_cache(fresh_cache):
    _need("nvrtc")
    inst = hc.instance_for(64, 16, 1, "fp16", "HND", 32)
    a = hc.compile(inst, "sm_90")
    files = list((fresh_cache / "hip").glob("*.cubin"))
    assert len(files) == 1 and inst.key in files[0].name, files
    b = hc.compile(inst, "sm_90")
    assert a.binary == b.binary and b.resources == a.resources


def _decode_kernel_shuffle_masks(inst: hc.Instance) -> list[str]:
    """The member-mask operand of every shfl.sync in attn_paged_decode's PTX, a register resolved
    to its constant when a mov sets it to one."""
    import re
    src, pre = hc.source()
    opts = [o.replace("--gpu-architecture=sm_90", "--gpu-architecture=compute_90")
            for o in hc.options(inst, "sm_90") if not o.startswith("--ptxas")]
    ptx, _ = runtime.nvrtc_compile(src, "paged_decode.hip", {"prelude.h": pre}, opts, output="ptx")
    ptx = ptx.rstrip(b"\0").decode()
    body = ptx[ptx.index(".entry attn_paged_decode("):]
    body = body[:body.index("\n}\n")]
    consts = dict(re.findall(r"mov\.[bu]32\s+(%r\d+),\s*(-?\w+);", body))
    masks = [m.group(1) for m in re.finditer(r"shfl\.sync\.\w+\.b32\s+[^;]*,\s*(%?\w+);", body)]
    return [consts.get(m, m) for m in masks]


@pytest.mark.parametrize("head_dim", [64, 128, 256])
def test_nvidia_shuffles_name_only_their_thread_group(head_dim):
    """Thread groups narrower than a warp leave the token loop at different trip counts; a
    shuffle whose member mask names the whole warp then waits on lanes that never arrive (it hung
    on the H200 for head_dim 64 and 128). Only a one-group-per-warp instance may use -1."""
    _need("nvrtc")
    inst = hc.instance_for(head_dim, 16, 4, "bf16", "HND", 32)
    masks = _decode_kernel_shuffle_masks(inst)
    assert masks, "no shfl.sync in attn_paged_decode"
    full = [m for m in masks if m in ("-1", "0xffffffff", "0xFFFFFFFF", "4294967295")]
    if inst.group_lanes * inst.head_split < 32:
        assert not full, f"{inst.key}: {len(full)} of {len(masks)} shuffles name the whole warp"


def test_compile_error_carries_log():
    _need("nvrtc")
    with pytest.raises(hc.CompileError) as e:
        runtime.nvrtc_compile("extern \"C\" __global__ void k() { undeclared_thing(); }", "bad.cu", {},
                              ["--gpu-architecture=sm_90"])
    assert "undeclared_thing" in str(e.value) and "undeclared_thing" in e.value.log


def test_hiprtc_compile_error_carries_log():
    _need("hiprtc")
    with pytest.raises(hc.CompileError) as e:
        runtime.hiprtc_compile("extern \"C\" __global__ void k() { undeclared_thing(); }", "bad.hip", {},
                               ["--offload-arch=gfx90a"])
    assert "undeclared_thing" in e.value.log


def test_version_error_codes_are_raised(monkeypatch):
    """A toolchain whose version call returns an error code is reported as unusable (callers treat
    ToolchainMissing as "this compiler is not here"), naming the call and the code."""
    import enum
    import types

    hip_res = enum.IntEnum("hiprtcResult", {"HIPRTC_SUCCESS": 0, "HIPRTC_ERROR_INTERNAL_ERROR": 11})
    nv_res = enum.IntEnum("nvrtcResult", {"NVRTC_SUCCESS": 0, "NVRTC_ERROR_INTERNAL_ERROR": 11})
    hiprtc = types.SimpleNamespace(hiprtcResult=hip_res,
                                   hiprtcVersion=lambda: (hip_res.HIPRTC_ERROR_INTERNAL_ERROR, 0, 0))
    nvrtc = types.SimpleNamespace(nvrtcResult=nv_res, nvrtcVersion=lambda: (nv_res.NVRTC_ERROR_INTERNAL_ERROR, 0, 0))
    monkeypatch.setattr(runtime, "_hip_python", lambda: (None, hiprtc))
    monkeypatch.setattr(runtime, "_cuda_python", lambda: (None, nvrtc))
    for fn, call in ((runtime.hiprtc_version, "hiprtcVersion"), (runtime.nvrtc_version, "nvrtcVersion")):
        with pytest.raises(runtime.ToolchainMissing) as e:
            fn()
        assert call in str(e.value) and "ERROR_INTERNAL_ERROR: 11" in str(e.value), str(e.value)
    hiprtc.hiprtcVersion = lambda: (hip_res.HIPRTC_SUCCESS, 6, 2)
    assert runtime.hiprtc_version().startswith("hiprtc-6.2:")


def test_dispatch_picks_listed_instances():
    listed = set(hc.instances())
    for warp in (32, 64):
        for layout in ("NHD", "HND", "vllm", "ragged"):
            for ps in hc.PAGE_SIZES:
                if layout == "vllm" and ps % 8:
                    with pytest.raises(ValueError, match="page_size"):
                        hc.instance_for(128, ps, 1, "fp16", layout, warp)
                    continue
                for d in hc.HEAD_DIMS:
                    for gqa in (1, 2, 3, 4, 5, 7, 8, 12, 16, 32):
                        for dt in hc.DTYPES:
                            inst = hc.instance_for(d, ps, gqa, dt, layout, warp)
                            assert inst in listed, inst
    with pytest.raises(ValueError, match="head_dim"):
        hc.instance_for(192, 16, 1, "fp16", "HND", 32)
    with pytest.raises(ValueError, match="page_size"):
        hc.instance_for(128, 3, 1, "fp16", "HND", 32)


def test_instance_shapes():
    for inst in hc.instances():
        hs, tu = inst.head_split, inst.tokens_per_lane
        assert inst.gqa % hs == 0 and inst.group_lanes * hs <= inst.warp, inst
        assert inst.heads_per_lane <= 4 or inst.group_lanes * 2 > inst.warp, inst
        assert (hc.THREADS // (inst.group_lanes * hs)) >= 1 and inst.chunk_tokens % tu == 0, inst
        if inst.kind == "vllm":
            assert tu == 8, inst


def test_choose_splits():
    # 132 SMs x 3 resident work-groups, 32-token chunks (d128, GQA tile 4, 128 threads)
    slots, chunk = 396, 32
    for groups, length in ((512, 4096), (64, 32768), (8, 131072), (1024, 1024), (3, 100), (1, 1), (5000, 70000)):
        s = hb.choose_splits(groups, length, slots, chunk)
        assert 1 <= s <= 256, (groups, length, s)
        assert s == 1 or -(-length // s) >= 128, (groups, length, s)     # >= 128 tokens a partition
    assert hb.choose_splits(8, 131072, slots, chunk) > 16                # fill the device
    assert hb.choose_splits(64, 32768, slots, chunk) > 1
    assert hb.choose_splits(4096, 512, slots, chunk) == 1                # enough work-groups already
    assert hb.choose_splits(1, 0, slots, chunk) == 1


def test_import_attn_loads_no_toolchain():
    # torch itself imports cuda.bindings when it is installed: count only what attn adds.
    code = ("import sys, torch; before = set(sys.modules); import attn; attn.decode; "
            "new = [m for m in set(sys.modules) - before if m.split('.')[0] in ('hip', 'cuda')]; "
            "assert not new, new")
    subprocess.run([sys.executable, "-c", code], check=True, cwd="/")


def test_status_and_available_without_gpu():
    if torch.cuda.is_available():
        pytest.skip("has a GPU")
    ok, why = hb.status()
    assert not ok and "no GPU" in why, why
    ok, why = hb.available(torch.zeros(1))
    assert not ok and "GPU" in why


def test_unsupported_arguments_are_named():
    case = kvgen.make_kv([3], layout="HND", page_size=16, kv_heads=1, head_dim=64, dtype=torch.float16)
    q = torch.zeros(1, 1, 64, dtype=torch.float16)
    with pytest.raises(ValueError, match="logits_transform"):
        hb.decode(q, case.kv, logits_transform=lambda s, *a: s)
    with pytest.raises(ValueError, match="rotary"):
        hb.decode(q, case.kv, rotary=object())


def test_amd_resource_report_parses():
    _need("hiprtc")
    c = hc.compile_instance("gfx90a", head_dim=64, page_size=16, gqa=1, dtype="bf16", layout="NHD")
    r = c.resources["attn_paged_decode"]
    assert r["vgprs"] > 0 and r["lds_bytes"] > 0, r
    assert "attn_paged_decode_reduce" in c.resources


# ------------------------------------------------------------------------------ GPU tier
FORMS = ("NHD", "HND", "vllm", "ragged", "token_pool")


def _cases():
    """Every layout x page size x head dim x GQA ratio x dtype: every instance the dispatcher can pick
    (GQA 1, 2, 4, 8: each GQA tile; vllm runs 8 as two tiles of 4) under every layout that uses it."""
    for form in FORMS:
        sizes = (1,) if form in ("ragged", "token_pool") else ((8, 16, 32) if form == "vllm" else (1, 8, 16, 32))
        for ps in sizes:
            for d in hc.HEAD_DIMS:
                for gqa in (1, 2, 4, 8):
                    for dt in (torch.float16, torch.bfloat16):
                        yield form, ps, d, gqa, dt


def _reference(q, kv, **kw):
    return attn.reference.decode(q, kv, return_lse=True, **kw)


def _check(case, q, out, lse, what, **kw):
    want, want_lse = _reference(q, case.kv, **kw)
    kvgen.assert_close(out, want, q.dtype, what)
    got_lse = lse.float()
    kvgen.assert_close(got_lse, want_lse.float(), torch.float32, what + " lse", factor=100)


@pytest.mark.gpu
@pytest.mark.parametrize("form,ps,d,gqa,dtype", list(_cases()))
def test_matrix(form, ps, d, gqa, dtype, gen):
    kv_heads = 2
    lens = [0, 1, 7, 129] + kvgen.random_lens(gen, 3, 700, with_edges=False)
    case = kvgen.make_kv(lens, layout=form, page_size=ps, kv_heads=kv_heads, head_dim=d, dtype=dtype,
                         device="cuda", gen=gen)
    q = kvgen.randn((len(lens), kv_heads * gqa, d), dtype, "cuda", gen)
    for splits in (1, 3):
        p = hb.plan(case.kv, q.shape[1], return_lse=True, num_splits=splits)
        out = kvgen.empty_poisoned(q.shape, dtype, "cuda")
        lse = kvgen.empty_poisoned((len(lens), q.shape[1]), torch.float32, "cuda")
        hb.run(p, q, case.kv, out=out, lse=lse)
        _check(case, q, out, lse, f"{case.describe()} gqa={gqa} splits={splits}")


@pytest.mark.gpu
@pytest.mark.parametrize("form", ["HND", "vllm", "NHD"])
@pytest.mark.parametrize("opts", [dict(softcap=30.0), dict(window_left=100), dict(window_left=0),
                                  dict(sm_scale=0.3, softcap=5.0, window_left=37)])
def test_options(form, opts, gen):
    dtype = torch.bfloat16
    lens = [0, 1, 5, 99, 100, 101, 1000, 2049]
    case = kvgen.make_kv(lens, layout=form, page_size=16, kv_heads=2, head_dim=128, dtype=dtype,
                         device="cuda", gen=gen, page_table=form == "NHD")
    q = kvgen.randn((len(lens), 8, 128), dtype, "cuda", gen)
    for splits in (None, 1, 5):
        out, lse = attn.decode(q, case.kv, return_lse=True, num_splits=splits, backend="hip", **opts)
        _check(case, q, out, lse, f"{case.describe()} {opts} splits={splits}", **opts)


@pytest.mark.gpu
@pytest.mark.parametrize("gqa", [3, 7, 16])
def test_odd_gqa_ratios(gqa, gen):
    case = kvgen.make_kv([0, 1, 333], layout="HND", page_size=16, kv_heads=2, head_dim=128,
                         dtype=torch.float16, device="cuda", gen=gen, index_dtype=torch.int64)
    q = kvgen.randn((3, 2 * gqa, 128), torch.float16, "cuda", gen)
    out, lse = attn.decode(q, case.kv, return_lse=True, backend="hip")
    _check(case, q, out, lse, f"{case.describe()} gqa={gqa}")


@pytest.mark.gpu
@pytest.mark.parametrize("form,lens", [("HND", [131072, 3, 65537]), ("vllm", [40000, 3, 17])])
def test_long_sequence(form, lens, gen):
    case = kvgen.make_kv(lens, layout=form, page_size=16, kv_heads=1, head_dim=128, dtype=torch.bfloat16,
                         device="cuda", gen=gen)
    q = kvgen.randn((3, 8, 128), torch.bfloat16, "cuda", gen)
    out, lse = attn.decode(q, case.kv, return_lse=True, backend="hip")
    _check(case, q, out, lse, case.describe())


@pytest.mark.gpu
def test_cuda_graph_replay(gen):
    dtype = torch.float16
    lens = [50, 1, 300, 0]
    case = kvgen.make_kv(lens, layout="HND", page_size=16, kv_heads=2, head_dim=128, dtype=dtype,
                         device="cuda", gen=gen, extra_pages=40)
    q = kvgen.randn((4, 8, 128), dtype, "cuda", gen)
    p = hb.plan(case.kv, 8, return_lse=True, num_splits=4)
    out = kvgen.empty_poisoned(q.shape, dtype, "cuda")
    lse = kvgen.empty_poisoned((4, 8), torch.float32, "cuda")
    hb.run(p, q, case.kv, out=out, lse=lse)                 # warm-up: compile and load outside capture
    torch.cuda.synchronize()
    g = torch.cuda.CUDAGraph()
    with torch.cuda.graph(g):
        hb.run(p, q, case.kv, out=out, lse=lse)
    for step in range(3):
        q.copy_(kvgen.randn(q.shape, dtype, "cuda", gen))
        # Shrink the sequences in place: the graph reads seq_lens on the device.
        new = torch.tensor([max(n - 7 * step, 0) for n in lens], dtype=case.kv.seq_lens.dtype)
        case.kv.seq_lens.copy_(new)
        out.fill_(float("nan"))
        g.replay()
        torch.cuda.synchronize()
        _check(case, q, out, lse, f"graph replay {step} lens={new.tolist()}")
