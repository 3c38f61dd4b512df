"""attn.configs: nearest-bucket lookup, heuristic fallback, cached loading, overrides, and the
measured backend choice of backend="auto"."""
import json
from pathlib import Path

import pytest

from attn import configs
from attn.platform import Platform

H100 = Platform("nvidia", "sm_90", 32, 132, "NVIDIA H100 80GB HBM3")
MI300 = Platform("amd", "gfx942", 64, 304, "AMD Instinct MI300X")


def entry(bucket, **cfg):
    backend = cfg.pop("backend", None)
    e = dict(bucket=bucket, config=cfg, time_us=1.0, heuristic_time_us=2.0)
    if backend:
        e["backend"] = backend
    return e


BASE = dict(dtype="bfloat16", head_dim=128, group=4, page_size=16)


@pytest.fixture
def tuned_dir(tmp_path):
    data = {"meta": {"device": H100.device_name}, "ops": {"decode": [
        entry({**BASE, "batch": 64, "kv_len": 4096}, BLOCK_N=32, num_warps=2, backend="triton"),
        entry({**BASE, "batch": 1, "kv_len": 131072}, BLOCK_N=128, num_warps=8, backend="hip"),
        entry({**BASE, "page_size": 1, "batch": 64, "kv_len": 4096}, BLOCK_N=16),
        entry({**BASE, "head_dim": 64, "batch": 64, "kv_len": 4096}, BLOCK_N=256),
    ]}}
    path = configs.file_for(H100, tmp_path)
    path.parent.mkdir(parents=True)
    path.write_text(json.dumps(data))
    configs.use_dir(tmp_path)
    yield tmp_path
    configs.use_dir(None)


def test_config_key_normalizes_device_name():
    assert H100.config_key == "NVIDIA_H100_80GB_HBM3"
    assert MI300.config_key == "AMD_Instinct_MI300X"
    assert configs.file_for(MI300, "/x") == Path("/x/amd/AMD_Instinct_MI300X.json")


def test_exact_and_nearest_bucket(tuned_dir):
    at = lambda **s: configs.lookup("decode", H100, **{**BASE, **s})  # noqa: E731
    assert at(batch=64, kv_len=4096)["BLOCK_N"] == 32
    assert at(batch=1, kv_len=131072)["BLOCK_N"] == 128
    # Nearest in log2: batch 2 x 100k is near (1, 131072); batch 48 x 3000 near (64, 4096).
    assert at(batch=2, kv_len=100000)["BLOCK_N"] == 128
    assert at(batch=48, kv_len=3000)["num_warps"] == 2
    # page_size weighs more than batch: page 1 picks the page-1 entry even at another batch.
    assert at(page_size=1, batch=1, kv_len=131072)["BLOCK_N"] == 16
    # head_dim and dtype must match exactly: another head_dim's entry is never used for 128.
    assert at(head_dim=64, batch=1, kv_len=131072)["BLOCK_N"] == 256
    # Keys the tuned entry has but the caller does not give are not compared.
    cfg = configs.lookup("decode", H100, **BASE)
    assert cfg["BLOCK_N"] in (32, 128, 16)
    # The tuned values sit over the heuristic: keys the entry lacks keep the heuristic's.
    assert at(batch=64, kv_len=4096)["BLOCK_M"] == configs.heuristic("decode", H100)["BLOCK_M"]


def test_layout_family_picks_its_own_entries(tuned_dir):
    """Entries tuned on a rows layout (NHD / HND / ragged; buckets written before the layout key
    mean that too) are never used for vLLM's split layout, whose tiles load differently: on the
    H200 the HND-tuned decode config ran vLLM's 8 x 32768 at 0.79x of the heuristic."""
    from attn.layouts.descriptors import get_layout
    assert [get_layout(n).family for n in ("NHD", "HND", "ragged", "vllm")] == ["rows", "rows", "rows", "vllm"]
    assert configs.lookup("decode", H100, **BASE, layout="rows", batch=64, kv_len=4096)["BLOCK_N"] == 32
    vllm = dict(BASE, layout="vllm", batch=64, kv_len=4096)
    assert configs.lookup("decode", H100, **vllm) == configs.heuristic("decode", H100, **vllm)
    path = configs.file_for(H100, tuned_dir)
    data = json.loads(path.read_text())
    data["ops"]["decode"].append(entry({**BASE, "layout": "vllm", "batch": 8, "kv_len": 32768}, BLOCK_N=16))
    path.write_text(json.dumps(data))
    configs.clear_cache()
    # Nearest among the family's own entries, however far; the rows entries keep answering rows.
    assert configs.lookup("decode", H100, **BASE, layout="vllm", batch=64, kv_len=4096)["BLOCK_N"] == 16
    assert configs.lookup("decode", H100, **BASE, layout="rows", batch=8, kv_len=32768)["BLOCK_N"] in (32, 128)


def test_vllm_decode_reads_whole_page_heads_on_every_platform():
    """vLLM's decode takes the whole-page-head tile (k_by_group 2) on every vendor, GQA group and
    head dim (its registers stay within a few of the row tile's), and only vLLM's layout does."""
    A100 = Platform("nvidia", "sm_80", 32, 108, "NVIDIA A100-SXM4-80GB")
    mode = lambda plat, **s: configs.heuristic("decode", plat, **{"head_dim": 128, "group": 4, "page_size": 16,  # noqa: E731
                                                                  "layout": "vllm", **s}).get("k_by_group", 0)
    for plat in (H100, A100, MI300):
        for group, hd in ((1, 64), (4, 128), (8, 256)):
            assert mode(plat, group=group, head_dim=hd) == 2, (plat, group, hd)
        assert mode(plat, layout="rows") == 0


def test_wide_head_decode_lifts_the_register_ceiling_on_ampere_only():
    """Pre-Hopper NVIDIA decode at head dims 192 / 256 compiles with maxnreg 255 (ptxas otherwise
    capped it at 168 registers and spilled); the option reaches NVIDIA compiles and never AMD's."""
    from attn.triton_kernels.decode import compile_specs
    A100 = Platform("nvidia", "sm_80", 32, 108, "NVIDIA A100-SXM4-80GB")
    nreg = lambda plat, hd: configs.heuristic("decode", plat, head_dim=hd, group=4, page_size=16).get("maxnreg")  # noqa: E731
    assert nreg(A100, 256) == 255 and nreg(A100, 192) == 255
    assert nreg(A100, 128) is None and nreg(H100, 256) is None and nreg(MI300, 256) is None
    wide = [s for s in compile_specs() if "d256/g4/p16/plain" in s.config]
    by_target = {t: s.options_for(t) for s in wide for t in s.targets}
    assert by_target["sm_80"]["maxnreg"] == 255
    assert all("maxnreg" not in by_target[t] for t in ("sm_90", "gfx90a", "gfx942", "gfx950"))
    sm80 = next(s for s in wide if "sm_80" in s.targets)
    assert sm80.options["maxnreg"] == 255 and "maxnreg" not in sm80.options_for("gfx942")   # the AMD filter


def test_fallback_to_heuristic(tuned_dir):
    # A dtype with no entry, an op with no entries, a device with no file.
    h = configs.heuristic("decode", H100, head_dim=128)
    assert configs.lookup("decode", H100, **{**BASE, "dtype": "float16"}) == h
    assert configs.lookup("prefill", H100, **BASE) == configs.heuristic("prefill", H100, head_dim=128)
    assert configs.lookup("decode", MI300, **BASE) == configs.heuristic("decode", MI300, head_dim=128)
    assert configs.auto_backend("decode", MI300, **BASE, batch=64, kv_len=4096) is None


def test_heuristics_sane_on_both_vendors():
    for op in ("prefill", "decode"):
        for hd in (64, 128, 256):
            nv, amd = configs.heuristic(op, H100, head_dim=hd), configs.heuristic(op, MI300, head_dim=hd)
            for cfg in (nv, amd):
                assert cfg["BLOCK_M"] >= 16 and cfg["BLOCK_N"] >= 16 and cfg["num_warps"] in (1, 2, 4, 8)
            assert "waves_per_eu" in amd and "waves_per_eu" not in nv
            assert amd["num_stages"] <= 2 and amd["num_warps"] <= 4


def test_loading_is_cached_no_io_on_hot_path(tuned_dir, monkeypatch):
    shape = {**BASE, "batch": 64, "kv_len": 4096}
    first = configs.lookup("decode", H100, **shape)
    calls = []
    monkeypatch.setattr(configs, "load_file", lambda p: calls.append(p) or {})
    monkeypatch.setattr(configs, "nearest", lambda *a: calls.append(a))
    for _ in range(3):
        assert configs.lookup("decode", H100, **shape) == first
    # Another shape searches the cached table (no file read).
    configs.lookup("decode", H100, **{**shape, "batch": 8})
    assert not any(isinstance(c, (str, Path)) for c in calls)
    # Returned dicts are copies: a caller's edit does not leak into the next lookup.
    got = configs.lookup("decode", H100, **shape)
    got["BLOCK_N"] = 999
    assert configs.lookup("decode", H100, **shape)["BLOCK_N"] == first["BLOCK_N"]


def test_override(tuned_dir):
    shape = {**BASE, "batch": 64, "kv_len": 4096}
    with configs.override("decode", {"BLOCK_N": 64, "num_warps": 4}):
        cfg = configs.lookup("decode", H100, **shape)
        assert cfg["BLOCK_N"] == 64 and cfg["num_warps"] == 4
        assert configs.lookup("prefill", H100, **BASE) == configs.heuristic("prefill", H100, head_dim=128)
    assert configs.lookup("decode", H100, **shape)["BLOCK_N"] == 32


def test_auto_backend_and_bucket_rounding(tuned_dir):
    assert configs.auto_backend("decode", H100, **BASE, batch=1, kv_len=131072) == "hip"
    assert configs.auto_backend("decode", H100, **BASE, batch=64, kv_len=4096) == "triton"
    # log2-nearest power of two: 3000 -> 4096 (log2 11.55), 2500 -> 2048 (11.29); discrete keys kept
    assert configs.bucket_of(batch=48, kv_len=3000, head_dim=128, group=4, dtype="bfloat16") == \
        dict(batch=64, kv_len=4096, head_dim=128, group=4, dtype="bfloat16")
    assert configs.bucket_of(batch=40, kv_len=2500)["kv_len"] == 2048


def test_dispatch_auto_prefers_the_measured_backend(monkeypatch):
    import torch
    from attn import dispatch
    ex = torch.empty(1)
    impls = {"triton": dispatch.Impl(lambda: "t", lambda t: (True, "")),
             "hip": dispatch.Impl(lambda: "h", lambda t: (True, "")),
             "torch": dispatch.Impl(lambda: "r", lambda t: (True, ""))}
    monkeypatch.setattr(dispatch, "implementations", lambda op: impls)
    # On the CPU "auto" is the reference whatever the config says; on a GPU the measured choice.
    assert dispatch.resolve("decode", "auto", ex, auto_choice="hip")[0] == "torch"
    monkeypatch.setattr(ex.__class__, "device", property(lambda self: torch.device("cuda", 0)))
    assert dispatch.resolve("decode", "auto", ex, auto_choice="hip")[0] == "hip"
    assert dispatch.resolve("decode", "auto", ex, auto_choice=None)[0] == "triton"
    impls["hip"] = dispatch.Impl(lambda: "h", lambda t: (False, "no toolchain"))
    assert dispatch.resolve("decode", "auto", ex, auto_choice="hip")[0] == "triton"


def test_decode_shape_needs_no_sync():
    import torch
    from attn.layouts import KVCache
    k = torch.randn(10, 2, 4, 16)           # HND: [pages, kv_heads, page_size, d]
    kv = KVCache.paged(k, k.clone(), torch.tensor([0, 3, 6]), torch.arange(6), torch.tensor([12, 9]), layout="HND")
    q = torch.randn(2, 8, 16)
    # a tensor whose values cannot be read stands in for a device sync: decode_shape must not read them
    s = configs.decode_shape(q, kv.with_seq_lens(torch.empty(2, dtype=torch.int32, device="meta")))
    assert s == dict(head_dim=16, group=4, page_size=4, dtype="float32", layout="rows", batch=2, kv_len=12)


def test_dtype_name_is_the_config_key():
    import torch
    from attn.layouts import KVCache
    from attn.platform import dtype_name
    assert [dtype_name(d) for d in (torch.float16, torch.bfloat16, torch.float32)] == ["float16", "bfloat16", "float32"]
    k = torch.randn(4, 1, 2, 16, dtype=torch.bfloat16)
    kv = KVCache.paged(k, k.clone(), torch.tensor([0, 1]), torch.tensor([2]), torch.tensor([2]), layout="HND")
    assert configs.decode_shape(torch.randn(1, 2, 16, dtype=torch.bfloat16), kv)["dtype"] == dtype_name(k.dtype)


def _prefill_file(root, plat):
    data = {"meta": {"device": plat.device_name}, "ops": {"prefill": [
        entry({**BASE, "batch": 8, "kv_len": 2048}, BLOCK_N=32),
        entry({**BASE, "batch": 1, "kv_len": 16384}, BLOCK_N=64, num_warps=8),
        entry({**BASE, "batch": 16, "q_len": 512, "kv_len": 2560}, BLOCK_N=16),
    ]}}
    path = configs.file_for(plat, root)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(data))


def test_prefill_config_follows_the_batch_shape(tmp_path):
    """Prefill buckets are matched on batch and mean lengths (not only on the first entry of a
    head_dim): a long single sequence, a batch of 2k prompts and an extend batch each get theirs."""
    import numpy as np
    import torch
    from attn.triton_kernels import prefill as P
    _prefill_file(tmp_path, H100)
    configs.use_dir(tmp_path)
    try:
        cfg = lambda q, k: P.config_for(H100, 128, 4, 16, torch.bfloat16,  # noqa: E731
                                        **P.batch_shape(np.array(q), np.array(k)))
        assert cfg([2048] * 8, [2048] * 8)["BLOCK_N"] == 32
        assert cfg([16384], [16384])["BLOCK_N"] == 64 and cfg([16384], [16384])["num_warps"] == 8
        assert cfg([512] * 16, [2560] * 16)["BLOCK_N"] == 16
        assert P.batch_shape(np.array([3, 5]), np.array([3, 5])) == dict(batch=2, kv_len=4)
        assert P.batch_shape(np.array([1, 1]), np.array([9, 7])) == dict(batch=2, q_len=1, kv_len=8)
    finally:
        configs.use_dir(None)


def test_batch_prefill_keeps_the_first_plans_bucket(tmp_path):
    """A BatchPrefill's config comes from its first plan's shape and stays (a captured graph holds
    one binary and a work list cut for one tile)."""
    import numpy as np
    import torch
    import attn
    import kvgen
    from attn import platform
    cpu = platform.get_cpu()
    data = {"meta": {"device": "cpu"}, "ops": {"prefill": [
        entry({**BASE, "dtype": "float32", "head_dim": 16, "group": 2, "batch": 1, "kv_len": 16}, BLOCK_N=32),
        entry({**BASE, "dtype": "float32", "head_dim": 16, "group": 2, "batch": 4, "kv_len": 256}, BLOCK_N=64),
    ]}}
    path = configs.file_for(cpu, tmp_path)
    path.parent.mkdir(parents=True)
    path.write_text(json.dumps(data))
    configs.use_dir(tmp_path)
    try:
        gen = kvgen.make_gen("first-plan")
        bp = attn.BatchPrefill(max_batch=4, max_tokens=1024, device="cpu")
        for lens, want in (([16], 32), ([256] * 4, 32)):
            case = kvgen.make_kv(lens, layout="HND", page_size=16, kv_heads=2, head_dim=16, gen=gen)
            qi = torch.tensor(np.cumsum([0] + lens), dtype=torch.int32)
            bp.plan(qi, case.kv, num_q_heads=4)
            assert bp.cfg["BLOCK_N"] == want, (lens, bp.cfg)
        fresh = attn.BatchPrefill(max_batch=4, max_tokens=1024, device="cpu").plan(qi, case.kv, num_q_heads=4)
        assert fresh.cfg["BLOCK_N"] == 64
    finally:
        configs.use_dir(None)


def test_rotating_k_on_load_narrows_the_tile_where_it_overflowed():
    """attn.Rotary(rotate_k=True) reads each key's partner half too: the prefill config takes
    32-key blocks on Hopper (128x64 / 3 stages needed 289 KB of shared memory at d80-d128) and an
    unpipelined loop on Ampere at d192 / d256 (3 KB of spills); q-only rotary keeps the tile."""
    import torch
    import attn
    from attn.triton_kernels import prefill as P
    A100 = Platform("nvidia", "sm_80", 32, 108, "NVIDIA A100-SXM4-80GB")
    cache = attn.rotary.cos_sin_cache(64, 128)
    both = P.features_of(rotary=attn.Rotary(cache, "neox", rotate_k=True))
    q_only = P.features_of(rotary=attn.Rotary(cache, "neox"))
    assert "rotate_k" in both and "rotate_k" not in q_only
    cfg = lambda plat, hd, f: P.config_for(plat, hd, 4, 1, torch.bfloat16, features=f)  # noqa: E731
    assert cfg(H100, 128, both)["BLOCK_N"] == 32 and cfg(H100, 128, q_only)["BLOCK_N"] == 64
    assert cfg(A100, 256, both)["num_stages"] == 1 and cfg(A100, 256, q_only)["num_stages"] == 2
    assert cfg(MI300, 128, both) == cfg(MI300, 128, q_only)


def test_persistent_and_token_pool_configs_where_the_compile_matrix_found_spills():
    """Configs chosen from the compile matrix (Triton 3.9) for binaries it did not hold before:
    BatchAttention over vLLM's layout (64-key decode blocks on sm_90 d128; 8 warps, unpipelined,
    on AMD at d > 128), its wide heads on NVIDIA (maxnreg 255), and pre-Hopper decode over a
    page size of 1 (32-key blocks)."""
    import torch
    from attn.triton_kernels import prefill as P
    A100 = Platform("nvidia", "sm_80", 32, 108, "NVIDIA A100-SXM4-80GB")
    pers = lambda plat, hd, lay: P.config_for(plat, hd, 4, 16, torch.bfloat16, features={"persistent"},  # noqa: E731
                                              layout=lay)
    assert pers(H100, 128, "vllm")["block_n_decode"] == 64 and pers(H100, 128, "rows")["block_n_decode"] == 128
    assert pers(H100, 256, "rows")["maxnreg"] == 255 and "maxnreg" not in pers(H100, 128, "rows")
    assert pers(MI300, 256, "vllm")["num_warps"] == 8 and pers(MI300, 256, "vllm")["num_stages"] == 1
    assert pers(MI300, 256, "rows")["num_warps"] == 4
    feats = P.config_for(H100, 128, 4, 16, torch.bfloat16, features={"persistent", "window", "lse"})
    assert feats["BLOCK_N"] == 32 and pers(H100, 128, "rows")["BLOCK_N"] == 64      # 16 bytes spilled at 64
    dec = lambda plat, ps: configs.heuristic("decode", plat, head_dim=128, group=4, page_size=ps)  # noqa: E731
    assert dec(A100, 1)["BLOCK_N"] == 32 and dec(A100, 16)["BLOCK_N"] == 64 and dec(H100, 1)["BLOCK_N"] == 64


def test_decode_rotating_k_narrows_its_config():
    """Decode with a ragged K rotated on load: 2 stages on Hopper past d64 (3 needed 245-254 KB
    of shared memory), 16-key blocks on AMD (32 spilled 28-94 VGPRs)."""
    import attn
    from attn.triton_kernels import decode as D
    rk = D.features_of(rotary=attn.Rotary(attn.rotary.cos_sin_cache(16, 64), "neox", rotate_k=True))
    assert rk == {"rotate_k"} and D.features_of(rotary=None) == frozenset()
    assert D.choose_config(H100, 96, 4, 1, "bfloat16", rk)["num_stages"] == 2
    assert D.choose_config(H100, 96, 4, 1, "bfloat16")["num_stages"] == 3
    assert D.choose_config(MI300, 128, 4, 1, "bfloat16", rk)["BLOCK_N"] == 16
