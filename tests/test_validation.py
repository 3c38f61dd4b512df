"""Every error path of issue 2: the error names the argument, and says what was expected and what came."""
import contextlib

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

import attn
from attn import dispatch
from attn.layouts import KVCache, write_kv
from kvgen import make_kv, randn, ragged_q


@contextlib.contextmanager
def raises(exc, *fragments):
    """pytest.raises that also checks that each fragment (argument name, expected, received) is in
    the message."""
    with pytest.raises(exc) as info:
        yield info
    msg = str(info.value)
    for f in fragments:
        assert f in msg, f"{f!r} not in error message: {msg}"


@pytest.fixture
def case(gen):
    return make_kv([3, 0, 20], "HND", 16, kv_heads=2, head_dim=64, gen=gen)


def _paged_parts(case):
    kv = case.kv
    return kv.k, kv.v, case.page_indptr, case.page_indices, kv.seq_lens


# ----------------------------------------------------------------------------- KVCache construction

def test_unknown_layout(case):
    k, v, ip, idx, sl = _paged_parts(case)
    with raises(ValueError, "layout", "'XYZ'", "NHD"):
        KVCache.paged(k, v, ip, idx, sl, layout="XYZ")
    with raises(ValueError, "layout", "ragged"):
        KVCache.paged(k, v, ip, idx, sl, layout="ragged")
    with raises(ValueError, "layout", "'HDN'"):
        attn.layouts.convert(case.kv, layout="HDN")


def test_storage_shape(case):
    k, v, ip, idx, sl = _paged_parts(case)
    with raises(ValueError, "k_cache", "4 dims", "HND", str(tuple(k[0].shape))):
        KVCache.paged(k[0], v, ip, idx, sl, layout="HND")
    with raises(ValueError, "v_cache", "kv_heads=2", "got 1"):
        KVCache.paged(k, v[:, :1], ip, idx, sl, layout="HND")
    with raises(ValueError, "v_cache", "head_dim=64", "got 32"):
        KVCache.paged(k, v[..., :32], ip, idx, sl, layout="HND")
    with raises(ValueError, "k_cache", "5 dims", "vllm"):
        KVCache.paged(k, v, ip, idx, sl, layout="vllm")


def test_vllm_x(gen):
    case = make_kv([4], "vllm", 4, head_dim=32, dtype=torch.float16, gen=gen)
    kv = case.kv
    k_bad = kv.k.reshape(kv.k.shape[0], kv.k.shape[1], kv.k.shape[2] * 2, kv.k.shape[3], 4)
    with raises(ValueError, "k_cache", "x", "8", "got 4"):
        KVCache.paged(k_bad, kv.v, case.page_indptr, case.page_indices, kv.seq_lens, layout="vllm")


def test_page_size_mismatch(case):
    k, v, ip, idx, sl = _paged_parts(case)
    with raises(ValueError, "page_size=8", "16"):
        KVCache.paged(k, v, ip, idx, sl, layout="HND", page_size=8)
    with raises(ValueError, "page_size=4", "16"):
        KVCache.from_page_table(k, v, torch.zeros(3, 2, dtype=torch.int32), sl, layout="HND", page_size=4)


def test_storage_dtype_and_device(case):
    k, v, ip, idx, sl = _paged_parts(case)
    with raises(TypeError, "k_cache", "dtype", "torch.int32"):
        KVCache.paged(k.to(torch.int32), v, ip, idx, sl, layout="HND")
    with raises(TypeError, "v_cache", "torch.float32", "torch.float16"):
        KVCache.paged(k, v.half(), ip, idx, sl, layout="HND")
    with raises(ValueError, "v_cache", "device", "meta"):
        KVCache.paged(k, v.to("meta"), ip, idx, sl, layout="HND")
    with raises(ValueError, "kv_indptr", "device cpu", "meta"):
        KVCache.paged(k, v, ip.to("meta"), idx, sl, layout="HND")
    with raises(TypeError, "k_cache", "torch.Tensor", "list"):
        KVCache.paged([1], v, ip, idx, sl, layout="HND")


def test_index_dtype_and_shape(case):
    k, v, ip, idx, sl = _paged_parts(case)
    with raises(TypeError, "kv_indptr", "torch.int32 or torch.int64", "torch.float32"):
        KVCache.paged(k, v, ip.float(), idx, sl, layout="HND")
    with raises(TypeError, "kv_indices", "torch.int32", "torch.int16"):
        KVCache.paged(k, v, ip, idx.to(torch.int16), sl, layout="HND")
    with raises(ValueError, "kv_indices", "1 dims", "(1,"):
        KVCache.paged(k, v, ip, idx[None], sl, layout="HND")
    with raises(ValueError, "seq_lens", "3 entries", "got 2"):
        KVCache.paged(k, v, ip, idx, sl[:2], layout="HND")
    with raises(ValueError, "seq_lens", "kv_last_page_len", "both"):
        KVCache.paged(k, v, ip, idx, sl, kv_last_page_len=sl, layout="HND")
    with raises(ValueError, "seq_lens", "kv_last_page_len", "neither"):
        KVCache.paged(k, v, ip, idx, layout="HND")


def test_non_monotone_indptr(case):
    k, v, ip, idx, sl = _paged_parts(case)
    bad = torch.tensor([0, 2, 1, 3], dtype=torch.int32)
    with raises(ValueError, "kv_indptr must be non-decreasing", "kv_indptr[2]=1 < kv_indptr[1]=2"):
        KVCache.paged(k, v, bad, idx, torch.tensor([3, 0, 16], dtype=torch.int32), layout="HND")
    with raises(ValueError, "kv_indptr[0]", "must be 0", "got 1"):
        KVCache.paged(k, v, ip + 1, idx, sl, layout="HND")
    with raises(ValueError, "kv_indptr[-1]", "len(kv_indices)"):
        KVCache.paged(k, v, torch.tensor([0, 1, 1, 9], dtype=torch.int32), idx, sl, layout="HND")
    rows = torch.randn(5, 2, 64)
    with raises(ValueError, "kv_indptr must be non-decreasing", "kv_indptr[2]=1"):
        KVCache.ragged(rows, rows, torch.tensor([0, 3, 1, 5], dtype=torch.int32))
    with raises(ValueError, "kv_indptr[-1]", "<= 5", "got 6"):
        KVCache.ragged(rows, rows, torch.tensor([0, 3, 6], dtype=torch.int32))
    with raises(ValueError, "kv_indptr must be non-decreasing"):
        KVCache.token_pool(rows, rows, torch.tensor([0, 2, 1], dtype=torch.int32), torch.tensor([0, 1]))


def test_page_index_out_of_range(case):
    k, v, ip, idx, sl = _paged_parts(case)
    n = case.num_pages
    bad = idx.clone()
    bad[1] = n
    with raises(ValueError, "kv_indices", f"[0, {n})", f"kv_indices[1]={n}"):
        KVCache.paged(k, v, ip, bad, sl, layout="HND")
    bad[1] = -3
    with raises(ValueError, "kv_indices", "kv_indices[1]=-3"):
        KVCache.paged(k, v, ip, bad, sl, layout="HND")
    # Pages past what the lengths need are never read: not checked.
    extra = torch.cat([idx, torch.tensor([10 ** 6], dtype=idx.dtype)])
    ip2 = ip.clone()
    ip2[-1] += 1
    KVCache.paged(k, v, ip2, extra, sl, layout="HND")
    # Sequence too long for its pages.
    with raises(ValueError, "seq_lens[2]=33", "needs 3 pages", "kv_indptr"):
        KVCache.paged(k, v, ip, idx, torch.tensor([3, 0, 33], dtype=torch.int32), layout="HND")
    pool = torch.randn(6, 2, 64)
    with raises(ValueError, "kv_indices", "[0, 6)", "=6"):
        KVCache.token_pool(pool, pool, torch.tensor([0, 2], dtype=torch.int32), torch.tensor([0, 6]))


def test_page_table_errors(gen):
    case = make_kv([3, 0, 20], "NHD", 16, head_dim=64, gen=gen, page_table=True)
    kv, table = case.kv, case.page_table
    bad = table.clone()
    bad[2, 1] = case.num_pages
    with raises(ValueError, "page_table", f"page_table[2, 1]={case.num_pages}"):
        KVCache.from_page_table(kv.k, kv.v, bad, kv.seq_lens, layout="NHD")
    with raises(ValueError, "seq_lens", f"[0, {table.shape[1] * 16 + 1})"):
        KVCache.from_page_table(kv.k, kv.v, table, torch.tensor([3, 0, 999], dtype=torch.int32), layout="NHD")
    with raises(ValueError, "page_table", "unit stride"):
        KVCache.from_page_table(kv.k, kv.v, table.t().contiguous().t(), kv.seq_lens, layout="NHD")
    with raises(ValueError, "page_table", "2 dims"):
        KVCache.from_page_table(kv.k, kv.v, table[0], kv.seq_lens, layout="NHD")


_CORRUPTIONS = [("csr", w) for w in ("none", "indptr", "index", "seq_len<0", "seq_len>pages", "seq_len>=2**31")] + [
    ("table", w) for w in ("none", "entry", "seq_len<0", "seq_len>table", "seq_len>=2**31")]


@pytest.mark.parametrize("form,what", _CORRUPTIONS)
@settings(max_examples=30, deadline=None)
@given(lens=st.lists(st.integers(0, 40), min_size=1, max_size=6), page_size=st.integers(1, 9), data=st.data())
def test_page_map_flags_agree_with_host_checks(form, what, lens, page_size, data):
    """check_page_map fetches one flag per check from the device (one host transfer) and re-reads
    the map on the host only when one is set: the flags must be set exactly when the host checks
    raise, on valid page maps and on maps with one entry corrupted (a live or dead page index)."""
    b, ps, draw = len(lens), page_size, data.draw
    need = [-(-n // ps) for n in lens]
    num_pages = sum(need) + 3
    k = torch.zeros(num_pages, ps, 1, 16)
    seq_lens = torch.tensor(lens, dtype=torch.int64)
    row = draw(st.integers(0, b - 1))
    bad = draw(st.sampled_from([-1, -(2 ** 31), num_pages, num_pages + 7, 2 ** 31 - 1]))
    big = {"seq_len<0": -draw(st.integers(1, 2 ** 40)), "seq_len>=2**31": 2 ** 31 + draw(st.integers(0, 2 ** 40))}
    attn.set_validation("off")
    if form == "csr":
        owned = [n + draw(st.integers(0, 2)) for n in need]           # dead pages past what a length needs
        indptr = torch.tensor([0] + owned, dtype=torch.int64).cumsum(0)
        n_idx = sum(owned) + draw(st.integers(0, 2))                  # and entries past indptr[-1]
        indices = torch.tensor(draw(st.lists(st.integers(0, num_pages - 1), min_size=n_idx, max_size=n_idx)),
                               dtype=torch.int64)
        if what == "indptr":
            indptr[draw(st.integers(0, b))] += draw(st.sampled_from([-2, -1, 1, 3]))
        elif what == "index" and n_idx:
            indices[draw(st.integers(0, n_idx - 1))] = bad
        elif what == "seq_len>pages":
            seq_lens[row] = owned[row] * ps + draw(st.integers(0, ps))
        elif what in big:
            seq_lens[row] = big[what]
        ctor = lambda: KVCache.paged(k, k, indptr.to(torch.int32), indices.to(torch.int32), seq_lens,  # noqa: E731
                                     layout="NHD")
        names, table = ("kv_indptr", "kv_indices"), None
    else:
        max_pages = max(need) + draw(st.integers(0, 2))
        wide = torch.randint(-5, num_pages + 5, (b, max_pages + draw(st.integers(0, 2))))  # padding: anything
        table = wide[:, :max_pages]
        table.copy_(torch.randint(0, num_pages, table.shape))
        if what == "entry" and max_pages:
            table[row, draw(st.integers(0, max_pages - 1))] = bad
        elif what == "seq_len>table":
            seq_lens[row] = max_pages * ps + draw(st.integers(0, ps + 1))
        elif what in big:
            seq_lens[row] = big[what]
        ctor = lambda: KVCache.from_page_table(k, k, table, seq_lens, layout="NHD")  # noqa: E731
        names = ("page_table", "page_table")
    kv = ctor()
    flags = kv._page_map_flags(table)
    assert flags.device == kv.device and flags.dtype == torch.bool
    try:
        kv._explain_page_map(*names, table)
        raised = None
    except ValueError as e:
        raised = str(e)
    assert bool(flags.any()) == (raised is not None), (
        f"{form} corrupted at {what}: flags {flags.tolist()}, host checks: {raised or 'pass'}; {kv}, seq_lens "
        f"{seq_lens.tolist()}, indptr {kv.page_indptr.tolist()}, indices {kv.page_indices.tolist()}")
    attn.set_validation("cheap")
    if raised is None:
        ctor()
    else:
        with raises(ValueError, raised):
            ctor()


# ----------------------------------------------------------------------------- per-call checks

def test_q_errors(case, gen):
    kv = case.kv
    q, qi = ragged_q([3, 0, 20], 4, 64, gen=gen)
    with raises(ValueError, "q", "3 dims", "(23, 256)"):
        attn.prefill(q.reshape(23, 256), kv, qi, backend="torch")
    with raises(TypeError, "q", "dtype torch.float32", "torch.float16"):
        attn.prefill(q.half(), kv, qi, backend="torch")
    with raises(ValueError, "q", "device cpu", "meta"):
        attn.prefill(q.to("meta"), kv, qi, backend="torch")
    with raises(ValueError, "q", "unit stride", "head_dim"):
        attn.prefill(torch.randn(64, 23, 4).permute(1, 2, 0), kv, qi, backend="torch")
    with raises(ValueError, "head_dim", "64", "got 32"):
        attn.prefill(q[..., :32], kv, qi, backend="torch")
    with raises(ValueError, "q heads", "multiple of kv heads", "q_heads=3", "kv_heads=2"):
        attn.prefill(q[:, :3], kv, qi, backend="torch")
    with raises(TypeError, "kv", "KVCache", "tuple"):
        attn.prefill(q, (kv.k, kv.v), qi, backend="torch")
    with raises(ValueError, "q_indptr", "4 entries", "got 3"):
        attn.prefill(q, kv, qi[:3], backend="torch")
    with raises(TypeError, "q_indptr", "torch.float32"):
        attn.prefill(q, kv, qi.float(), backend="torch")
    with raises(ValueError, "q", "3 rows", "got 2"):
        attn.decode(q[:2], kv, backend="torch")


def test_run_out_and_lse_errors(case, gen):
    """run()'s out and lse: shape, dtype, device, strides."""
    kv = case.kv
    q, qi = ragged_q([3, 0, 20], 4, 64, gen=gen)
    bp = attn.BatchPrefill(max_tokens=32, max_batch=4, num_q_heads=4, device="cpu").plan(qi, kv, return_lse=True)
    with raises(TypeError, "out", "dtype torch.float32", "torch.float16"):
        bp.run(q, kv, out=torch.empty_like(q).half())
    with raises(ValueError, "out", "[*, 4, 64]", "[23, 4, 32]"):
        bp.run(q, kv, out=torch.empty(23, 4, 32))
    with raises(ValueError, "out", ">= 23", "[22, 4, 64]"):
        bp.run(q, kv, out=torch.empty(22, 4, 64))
    with raises(ValueError, "out", "unit stride", "head_dim"):
        bp.run(q, kv, out=torch.empty(64, 23, 4).permute(1, 2, 0))
    with raises(ValueError, "out", "device cpu", "meta"):
        bp.run(q, kv, out=torch.empty_like(q, device="meta"))
    with raises(TypeError, "lse", "float32", "torch.float16"):
        bp.run(q, kv, lse=torch.empty(23, 4, dtype=torch.float16))
    with raises(ValueError, "lse", "[*, 4]", "[23, 2]"):
        bp.run(q, kv, lse=torch.empty(23, 2))
    with raises(ValueError, "lse", ">= 23", "[22, 4]"):
        bp.run(q, kv, lse=torch.empty(22, 4))
    with raises(ValueError, "lse", "contiguous", "(1, 23)"):
        bp.run(q, kv, lse=torch.empty(4, 23).t())


def test_unsupported_head_dim(gen):
    case = make_kv([2, 5], "NHD", 4, kv_heads=1, head_dim=12, gen=gen)
    q = randn((2, 1, 12), gen=gen)
    with raises(ValueError, "head_dim", "multiple of 8", "got 12"):
        attn.decode(q, case.kv, backend="torch")
    case = make_kv([2, 5], "NHD", 4, kv_heads=1, head_dim=264, gen=gen)
    with raises(ValueError, "head_dim", "[16, 256]", "got 264"):
        attn.decode(randn((2, 1, 264), gen=gen), case.kv, backend="torch")


def test_options(case, gen):
    kv = case.kv
    q = randn((3, 4, 64), gen=gen)
    with raises(ValueError, "sm_scale", "-1.0"):
        attn.decode(q, kv, sm_scale=-1.0, backend="torch")
    with raises(ValueError, "window_left", "-2"):
        attn.decode(q, kv, window_left=-2, backend="torch")
    with raises(ValueError, "softcap", "nan"):
        attn.decode(q, kv, softcap=float("nan"), backend="torch")
    with raises(ValueError, "num_splits", "0"):
        attn.decode(q, kv, num_splits=0, backend="torch")
    with raises(ValueError, "backend", "'cuda'"):
        attn.decode(q, kv, backend="cuda")
    with raises(TypeError, "logits_transform", "int"):
        attn.decode(q, kv, logits_transform=3, backend="torch")
    with raises(TypeError, "custom_mask", "torch.bool"):
        attn.prefill(randn((23, 4, 64), gen=gen), kv, torch.tensor([0, 3, 3, 23]),
                     custom_mask=torch.ones(3 * 3 + 400), backend="torch")


def test_unavailable_backend(case, gen, monkeypatch):
    q = randn((3, 4, 64), gen=gen)
    impls = dispatch.implementations("decode")
    if "hip" not in impls or not impls["hip"].available(q)[0]:
        with raises(RuntimeError, "backend 'hip'", "decode"):
            attn.decode(q, case.kv, backend="hip")
    monkeypatch.setenv("TRITON_INTERPRET", "0")
    ok, why = attn.platform.triton_runs_on(q)
    assert not ok and "GPU" in why and "TRITON_INTERPRET=1" in why
    if "triton" in dispatch.implementations("decode"):
        with raises(RuntimeError, "backend 'triton'", "TRITON_INTERPRET"):
            attn.decode(q, case.kv, backend="triton")


def test_merge_errors(gen):
    o = randn((3, 4, 32), gen=gen)
    lse = randn((3, 4), gen=gen)
    with raises(ValueError, "out_b", "[3, 4, 32]", "[3, 4, 16]"):
        attn.merge_state(o, lse, o[..., :16], lse, backend="torch")
    with raises(TypeError, "lse_a", "torch.float32", "torch.float16"):
        attn.merge_state(o, lse.half(), o, lse, backend="torch")
    with raises(ValueError, "lse_b", "[3, 4]", "[3, 5]"):
        attn.merge_state(o, lse, o, torch.zeros(3, 5), backend="torch")
    with raises(ValueError, "outs", "3 dims"):
        attn.merge_states(o[0], lse[0], backend="torch")
    with raises(ValueError, "lses", "[2, 3, 4]"):
        attn.merge_states(torch.stack([o, o]), lse, backend="torch")


def test_write_kv_errors(case, gen):
    kv = case.kv
    k_new = torch.randn(4, 2, 64, generator=gen)
    slots = torch.tensor([0, 1, 2, 3])
    with raises(ValueError, "k_new", "[*, 2, 64]", "[4, 3, 64]"):
        write_kv(kv, torch.randn(4, 3, 64), k_new, slots)
    with raises(ValueError, "v_new", "[4, 2, 64]", "[5, 2, 64]"):
        write_kv(kv, k_new, torch.randn(5, 2, 64), slots)
    with raises(ValueError, "slot_mapping", "4 entries", "got 3"):
        write_kv(kv, k_new, k_new, slots[:3])
    with raises(ValueError, "k_new", "unit stride"):
        write_kv(kv, torch.randn(64, 4, 2).permute(1, 2, 0), k_new, slots)
    with raises(ValueError, "backend", "'cuda'"):
        write_kv(kv, k_new, k_new, slots, backend="cuda")


# ----------------------------------------------------------------------------- validation levels

def test_set_validation_levels(case, gen):
    assert attn.get_validation() == "cheap"
    with raises(ValueError, "validation level", "'paranoid'"):
        attn.set_validation("paranoid")
    kv = case.kv
    # q_len > kv_len, q_indptr non-monotone, and q_indptr[-1] wrong: value checks, "full" only.
    q, _ = ragged_q([3, 0, 20], 4, 64, gen=gen)
    long_q = torch.tensor([0, 4, 4, 23], dtype=torch.int32)
    attn.prefill(q[:23], kv, torch.tensor([0, 3, 3, 23], dtype=torch.int32), backend="torch")
    attn.set_validation("full")
    with raises(ValueError, "sequence 0", "q_len=4", "kv_len=3"):
        attn.prefill(q, kv, long_q, backend="torch")
    with raises(ValueError, "q_indptr must be non-decreasing", "q_indptr[2]=2"):
        attn.prefill(q, kv, torch.tensor([0, 3, 2, 23], dtype=torch.int32), backend="torch")
    with raises(ValueError, "q_indptr[-1]", "23", "got 22"):
        attn.prefill(q, kv, torch.tensor([0, 2, 2, 22], dtype=torch.int32), backend="torch")
    with raises(ValueError, "custom_mask", "sum(q_len * kv_len) = 409", "got 5"):
        attn.prefill(q, kv, torch.tensor([0, 3, 3, 23], dtype=torch.int32), custom_mask=torch.ones(5, dtype=torch.bool),
                     backend="torch")
    k_new = torch.randn(2, 2, 64, generator=gen)
    pool = case.num_pages * 16
    with raises(ValueError, "slot_mapping", f"[0, {pool})", f"slot_mapping[1]={pool}"):
        write_kv(kv, k_new, k_new, torch.tensor([0, pool]), backend="torch")
    # "cheap": the page map is still checked at construction, per-call values are not.
    attn.set_validation("cheap")
    with raises(ValueError, "kv_indices"):
        bad = case.page_indices.clone()
        bad[0] = 10 ** 6
        KVCache.paged(kv.k, kv.v, case.page_indptr, bad, kv.seq_lens, layout="HND")
    # "off": nothing is checked, not even shapes; the caller vouches.
    attn.set_validation("off")
    bad = case.page_indices.clone()
    bad[0] = 10 ** 6
    kv_bad = KVCache.paged(kv.k, kv.v, case.page_indptr, bad, kv.seq_lens, layout="HND")
    assert kv_bad.page_indices[0] == 10 ** 6
    out = attn.decode(randn((3, 4, 64), gen=gen), kv, sm_scale=0.1, window_left=-1, backend="torch")
    assert out.shape == (3, 4, 64)
    with pytest.raises(Exception) as info:          # no attn check: whatever torch says
        attn.decode(randn((3, 3, 64), gen=gen), kv, backend="torch")
    assert "multiple of kv heads" not in str(info.value)


# ------------------------------------------------------------- found by the eighth session's audit

def _strided(t):
    """t's values as a stride-2 view of a larger tensor whose gaps hold garbage."""
    big = torch.full((2 * t.shape[0],), 7777, dtype=t.dtype, device=t.device)
    big[::2] = t
    return big[::2]


def test_strided_index_tensors_are_refused(case, gen):
    """Kernels read index tensors with unit stride: a strided view would be read as its storage
    (out-of-bounds pages, wrong lengths)."""
    k, v, ip, idx, sl = _paged_parts(case)
    with raises(ValueError, "kv_indices", "contiguous", "stride 2"):
        KVCache.paged(k, v, ip, _strided(idx), sl, layout="HND")
    with raises(ValueError, "seq_lens", "contiguous"):
        KVCache.paged(k, v, ip, idx, _strided(sl), layout="HND")
    rows = randn((3, 2, 64), torch.float32, "cpu", gen)
    with raises(ValueError, "slot_mapping", "contiguous"):
        write_kv(case.kv, rows, rows, _strided(torch.tensor([0, 1, 2])))
    cache = attn.rotary.cos_sin_cache(16, 64)
    with raises(ValueError, "positions", "contiguous"):
        attn.rotary.apply(rows, rows, _strided(torch.tensor([0, 1, 2])), cache)


def test_run_refuses_a_cache_smaller_than_planned(gen):
    """run() after plan(): the plan's items and page map index the planned cache; a cache with
    fewer sequences or pages would be read out of bounds."""
    kv = make_kv([5, 40], "NHD", 4, kv_heads=2, head_dim=64, gen=gen).kv
    small = make_kv([1, 1], "NHD", 4, kv_heads=2, head_dim=64, gen=gen, extra_pages=0).kv
    fewer = make_kv([5], "NHD", 4, kv_heads=2, head_dim=64, gen=gen, extra_pages=20).kv
    q = randn((2, 4, 64), torch.float32, "cpu", gen)
    dec = attn.BatchDecode(max_batch=4, device="cpu").plan(kv, 4)
    with raises(ValueError, "kv must hold the planned 2 sequences", f"{kv.num_pages} pages", "2 pages"):
        dec.run(q, small)
    with raises(ValueError, "planned 2 sequences", "got 1 sequences"):
        dec.run(q[:1], fewer)
    q_p, qi = ragged_q([3, 2], 4, 64, gen=gen)
    pre = attn.BatchPrefill(max_tokens=16, max_batch=4, device="cpu", num_q_heads=4).plan(qi, kv)
    with raises(ValueError, "kv must hold the planned"):
        pre.run(q_p, small)
    with raises(ValueError, "q and kv must be on the planned device cpu", "meta"):
        dec.run(q.to("meta"), kv)
    with raises(ValueError, "lse was given", "return_lse=False"):
        dec.run(q, kv, lse=torch.empty(2, 4))


def test_vllm_k_strides_must_allow_16_byte_groups(gen):
    """vLLM's K is read an x-group (16 bytes) at a time: x adjacent, the other strides whole groups."""
    src = make_kv([5, 9], "vllm", 4, kv_heads=2, head_dim=64, dtype=torch.float16, gen=gen)
    k, v = src.kv.k, src.kv.v
    wide = torch.zeros(*k.shape[:-1], 9, dtype=k.dtype)            # slot stride 9: not whole groups
    wide[..., :8] = k
    with raises(ValueError, "k_cache", "multiples of x=8", str(tuple(wide[..., :8].stride()))):
        KVCache.paged(wide[..., :8], v, src.page_indptr, src.page_indices, src.kv.seq_lens, layout="vllm")


def test_q_indptr_must_start_at_zero(gen):
    """q_indptr[0] != 0 left output rows unwritten (triton) or failed deep in torch (reference)."""
    kv = make_kv([5, 9], "NHD", 4, kv_heads=2, head_dim=64, gen=gen).kv
    q, _ = ragged_q([3, 2], 4, 64, gen=gen)
    bad = torch.tensor([2, 5, 7], dtype=torch.int32)
    for backend in ("triton", "torch"):
        with raises(ValueError, "q_indptr[0] must be 0", "got 2"):
            attn.prefill(q, kv, bad, backend=backend)
    with raises(ValueError, "q_indptr[0] must be 0"):
        attn.BatchPrefill(max_tokens=16, max_batch=4, device="cpu", num_q_heads=4).plan(bad, kv)


def test_seq_lens_host_is_checked(gen):
    kv = make_kv([5, 40], "NHD", 4, kv_heads=2, head_dim=64, gen=gen).kv
    dec = attn.BatchDecode(max_batch=4, device="cpu")
    with raises(ValueError, "seq_lens_host must equal kv.seq_lens [5, 40]", "got [5, -3]"):
        dec.plan(kv, 4, seq_lens_host=[5, -3])
    attn.set_validation("full")
    try:
        with raises(ValueError, "seq_lens_host must equal", "got [5, 20]"):
            dec.plan(kv, 4, seq_lens_host=[5, 20])
    finally:
        attn.set_validation("cheap")
    dec.plan(kv, 4, seq_lens_host=[5, 20])           # "cheap": the caller's word, no device sync


def test_convert_page_order_must_be_distinct_pages(case):
    from attn.layouts import convert
    need = sum(-(-int(n) // 4) for n in case.kv.seq_lens)
    with raises(ValueError, "page_order", f"{need} distinct pages"):
        convert(case.kv, "NHD", 4, num_pages=need + 2, page_order=torch.zeros(need + 2, dtype=torch.int64))
    with raises(ValueError, "page_order", f"[0, {need})"):
        convert(case.kv, "NHD", 4, page_order=torch.arange(need) + 1)


def test_merge_inputs_and_the_torch_backends_dtype(gen):
    o = randn((2, 3, 4, 16), torch.float16, "cpu", gen)
    lse = randn((2, 3, 4), torch.float32, "cpu", gen)
    for backend in ("torch", "triton"):
        out, l = attn.merge_states(o, lse, backend=backend)
        assert out.dtype == torch.float16 and l.dtype == torch.float32, (backend, out.dtype, l.dtype)
        out, l = attn.merge_state(o[0], lse[0], o[1], lse[1], backend=backend)
        assert out.dtype == torch.float16 and l.dtype == torch.float32, (backend, out.dtype, l.dtype)
    with raises(TypeError, "outs", "torch.int32"):
        attn.merge_states(o.to(torch.int32), lse)
    with raises(ValueError, "at least 1 partial result"):
        attn.merge_states(o[:0], lse[:0])
    with raises(ValueError, "out_a", "at least 2 dims"):
        attn.merge_state(o[0, 0, 0], lse[0, 0, :1], o[1, 0, 0], lse[1, 0, :1])
    with raises(ValueError, "out_b", "device cpu", "meta"):
        attn.merge_state(o[0], lse[0], o[1].to("meta"), lse[1])


def test_rotary_argument_types(case, gen):
    with raises(TypeError, "cos_sin_cache", "torch.int32"):
        attn.Rotary(torch.zeros(16, 64, dtype=torch.int32))
    with raises(TypeError, "rotary_dim must be an int", "32.0"):
        attn.Rotary(attn.rotary.cos_sin_cache(16, 64), rotary_dim=32.0)
    q, qi = ragged_q([3, 0, 20], 4, 64, gen=gen)
    with raises(TypeError, "rotary must be an attn.Rotary", "Tensor"):
        attn.prefill(q, case.kv, qi, rotary=attn.rotary.cos_sin_cache(32, 64), backend="triton")


def test_zero_q_heads(case):
    with raises(ValueError, "q heads must be a multiple of kv heads", "q_heads=0"):
        attn.decode(torch.zeros(3, 0, 64), case.kv)


def test_small_construction_and_write_errors(case, gen):
    k, v, ip, idx, sl = _paged_parts(case)
    with raises(ValueError, "kv_indptr must have batch + 1 >= 1 entries; got 0"):
        KVCache.paged(k, v, ip[:0], idx, sl[:0], layout="HND")
    rows = randn((3, 2, 64), torch.float32, "cpu", gen)
    with raises(TypeError, "kv must be an attn.layouts.KVCache", "tuple"):
        write_kv((k, v), rows, rows, torch.tensor([0, 1, 2]))
    from attn.layouts import convert
    with raises(TypeError, "kv must be an attn.layouts.KVCache"):
        convert((k, v), "NHD")
    attn.set_validation("full")
    try:
        last = torch.tensor([1, 0, 4], dtype=torch.int32)      # sequence 1 has no pages: 0 is its value
        KVCache.paged(k, v, ip, idx, kv_last_page_len=last, layout="HND")
        with raises(ValueError, "kv_last_page_len must be in [1, 17)", "kv_last_page_len[0]=0"):
            KVCache.paged(k, v, ip, idx, kv_last_page_len=torch.tensor([0, 0, 4], dtype=torch.int32), layout="HND")
        # Negative slots are padding, all of them, not only -1.
        before = case.kv.k.clone()
        write_kv(case.kv, rows, rows, torch.tensor([-1, -5, -2]))
        assert torch.equal(before.nan_to_num(7.0), case.kv.k.nan_to_num(7.0))
    finally:
        attn.set_validation("cheap")
    assert attn.BatchPrefill(max_tokens=8, max_batch=2).device == torch.device("cpu")   # no GPU here


def test_page_table_rows_must_not_overlap(case):
    k, v = case.kv.k, case.kv.v
    table = torch.tensor([[0, 1, 2]], dtype=torch.int32).expand(2, 3)
    with raises(ValueError, "page_table's rows must not overlap", "(0, 1)"):
        KVCache.from_page_table(k, v, table, torch.tensor([5, 5], dtype=torch.int32), layout="HND")


def test_custom_mask_length_on_the_reference(gen):
    kv = make_kv([5, 9], "NHD", 4, kv_heads=2, head_dim=64, gen=gen).kv
    q, qi = ragged_q([3, 2], 4, 64, gen=gen)
    with raises(ValueError, "custom_mask", "sum(q_len * kv_len) = 33", "[32]"):
        attn.prefill(q, kv, qi, causal=False, custom_mask=torch.ones(32, dtype=torch.bool), backend="torch")
