"""attn.layouts: descriptors, KVCache constructors, conversions, page maps and write_kv, checked
against kvgen's own storage permutes (not the library's descriptors)."""
import itertools

import pytest
import torch
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import attn
from attn.layouts import KVCache, convert, csr_to_page_table, gather, page_table_to_csr, to_dense, write_kv
from kvgen import FORMS, PAGED, make_gen, make_kv, read_tokens, storage_to_logical

PAGE_SIZES = (1, 3, 16)
LENS = [0, 1, 5, 17, 3]          # empty, length 1, shorter than a page, several pages


def _same(a, b) -> bool:
    return bool(a.shape == b.shape and torch.equal(a, b))


def _check_rows(case, kv, what):
    k, v, ip = gather(kv)
    assert torch.equal(ip.cpu(), case.indptr), f"{what}: indptr {ip.tolist()} != {case.indptr.tolist()}"
    assert _same(k.cpu(), case.k_rows), f"{what}: K differs"
    assert _same(v.cpu(), case.v_rows), f"{what}: V differs"
    assert not torch.isnan(k).any() and not torch.isnan(v).any(), f"{what}: NaN from an unowned slot"


# ----------------------------------------------------------------------------- constructors / gather

FORM_SIZES = [(f, ps) for f in PAGED for ps in PAGE_SIZES] + [("ragged", 1), ("token_pool", 1)]


@pytest.mark.parametrize("form,page_size", FORM_SIZES)
def test_gather_reads_live_tokens(form, page_size, gen):
    for dtype in (torch.float32, torch.float16, torch.bfloat16):
        case = make_kv(LENS, form, page_size, kv_heads=2, head_dim=32, dtype=dtype, gen=gen)
        _check_rows(case, case.kv, case.describe())
        assert case.kv.page_size == page_size and case.kv.num_kv_heads == 2 and case.kv.head_dim == 32


@pytest.mark.parametrize("layout", PAGED)
def test_page_table_form_reads_in_place(layout, gen):
    case = make_kv(LENS, layout, 3, head_dim=32, gen=gen, page_table=True)
    kv = case.kv
    assert case.page_table.stride(0) != case.page_table.shape[1], "kvgen should make a strided table"
    # In place: the descriptor's indices share the table's memory, padding included.
    assert kv.page_indices.data_ptr() == case.page_table.data_ptr()
    assert kv.k.data_ptr() is not None and kv.k is not None
    _check_rows(case, kv, case.describe())
    # And the same contents as the CSR form of that table.
    ip, idx, lpl = page_table_to_csr(case.page_table, kv.seq_lens, 3)
    csr = KVCache.paged(kv.k, kv.v, ip, idx, kv_last_page_len=lpl, layout=layout)
    _check_rows(case, csr, "csr of " + case.describe())


@pytest.mark.parametrize("layout", PAGED)
def test_last_page_len_form(layout, gen):
    case = make_kv(LENS, layout, 16, head_dim=32, gen=gen, last_page_len=True)
    assert case.kv.seq_lens.tolist() == LENS
    _check_rows(case, case.kv, case.describe())


def test_storage_is_not_copied(gen):
    for form in FORMS:
        case = make_kv([4, 9], form, 1 if form in ("ragged", "token_pool") else 4, head_dim=32, gen=gen)
        k, v = case.kv.k, case.kv.v
        kv2 = KVCache.from_parts(k, v, case.kv.layout, case.kv.page_indptr, case.kv.page_indices, case.kv.seq_lens)
        assert kv2.k.data_ptr() == k.data_ptr() and kv2.v.data_ptr() == v.data_ptr(), form


@pytest.mark.parametrize("layout", PAGED + ("ragged",))
def test_strides_address_every_element(layout):
    """offset(page, head, slot, d) from the descriptor's strides hits the element kvgen put there."""
    from attn.layouts import get_layout
    p, s, h, d = 3, 4 if layout != "ragged" else 1, 2, 16
    for dtype in (torch.float32, torch.float16):
        logical = torch.arange(p * s * h * d, dtype=torch.float32).reshape(p, s, h, d).to(dtype)
        for which in ("k", "v"):
            store = (logical.reshape(p, h, d) if layout == "ragged" else
                     __import__("kvgen").logical_to_storage(logical, layout, which))
            st = get_layout(layout).strides(store, which)
            P, S, H, D = torch.meshgrid(torch.arange(p), torch.arange(s), torch.arange(h), torch.arange(d),
                                        indexing="ij")
            off = st.offset(P, H, S, D)
            flat = store.as_strided((store.numel(),), (1,))
            assert torch.equal(flat[off], logical), f"{layout} {which} {dtype}"


# ----------------------------------------------------------------------------- conversions

PAIRS = list(itertools.product(FORMS, ("NHD", "HND", "vllm", "ragged")))


@pytest.mark.parametrize("src,dst", PAIRS, ids=[f"{a}-{b}" for a, b in PAIRS])
def test_convert_round_trip(src, dst, gen):
    src_sizes = (1,) if src in ("ragged", "token_pool") else PAGE_SIZES
    dst_sizes = (1,) if dst == "ragged" else PAGE_SIZES
    for ps_a, ps_b in itertools.product(src_sizes, dst_sizes):
        dtype = torch.float16 if (ps_a + ps_b) % 2 else torch.float32
        case = make_kv(LENS, src, ps_a, kv_heads=2, head_dim=32, dtype=dtype, gen=gen)
        what = f"{case.describe()} -> {dst} page_size={ps_b}"
        n_need = sum((n + ps_b - 1) // ps_b for n in LENS)
        order = torch.randperm(n_need + 2, generator=gen)
        out = convert(case.kv, layout=dst, page_size=ps_b,
                      **({} if dst == "ragged" else {"num_pages": n_need + 2, "page_order": order}))
        assert out.layout.name == dst and out.dtype == dtype, what
        if dst != "ragged":
            assert out.page_size == ps_b, what
            # Read back through kvgen's own permutes, not the library's.
            k, v = read_tokens(out, dst, out.page_indptr.cpu(), out.page_indices.cpu(), LENS)
            assert _same(k, case.k_rows) and _same(v, case.v_rows), what
        _check_rows(case, out, what)
        # And back to the source form's layout.
        back = convert(out, layout="ragged" if src == "token_pool" else src, page_size=ps_a)
        _check_rows(case, back, what + " -> back")


@pytest.mark.parametrize("form", FORMS)
def test_to_dense(form, gen):
    ps = 1 if form in ("ragged", "token_pool") else 3
    case = make_kv(LENS, form, ps, head_dim=32, gen=gen)
    k, v, lens = to_dense(case.kv, pad_value=-7.0)
    assert k.shape == (len(LENS), max(LENS), 2, 32)
    assert lens.tolist() == LENS
    for b, n in enumerate(LENS):
        kr, vr = case.rows(b)
        assert torch.equal(k[b, :n], kr) and torch.equal(v[b, :n], vr), f"{case.describe()} seq {b}"
        assert (k[b, n:] == -7.0).all() and (v[b, n:] == -7.0).all()


def test_convert_empty_batch_and_all_empty(gen):
    for lens in ([], [0, 0]):
        case = make_kv(lens, "HND", 4, head_dim=32, gen=gen)
        out = convert(case.kv, layout="vllm", page_size=2)
        assert out.batch_size == len(lens)
        k, _, ip = gather(out)
        assert k.shape[0] == 0 and ip.tolist() == [0] * (len(lens) + 1)


# ----------------------------------------------------------------------------- page maps

def test_page_table_csr_round_trip(gen):
    lens = torch.tensor([0, 1, 16, 17, 40], dtype=torch.int32)
    ps = 16
    case = make_kv(lens.tolist(), "NHD", ps, head_dim=32, gen=gen)
    table = csr_to_page_table(case.page_indptr, case.page_indices, pad=-1)
    assert table.shape == (5, 3)
    assert table[0].tolist() == [-1, -1, -1] and table[1, 1:].tolist() == [-1, -1]
    ip, idx, lpl = page_table_to_csr(table, lens, ps)
    assert torch.equal(ip, case.page_indptr) and torch.equal(idx, case.page_indices)
    assert lpl.tolist() == [0, 1, 16, 1, 8]
    wide = csr_to_page_table(case.page_indptr, case.page_indices, max_pages=6, pad=0)
    assert wide.shape == (5, 6) and torch.equal(wide[:, :3].masked_fill(table < 0, 0), wide[:, :3])


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(lens=st.lists(st.integers(0, 40), min_size=0, max_size=6), page_size=st.integers(1, 9),
       extra=st.integers(0, 5), seed=st.integers(0, 2 ** 31 - 1), data=st.data())
def test_page_maps_property(lens, page_size, extra, seed, data):
    """Random lengths and page permutations: CSR <-> table round trips, both forms read the same
    tokens, last_page_len <-> seq_lens agree."""
    from attn.layouts import last_page_len_from_seq_lens, seq_lens_from_last_page_len
    gen = make_gen("page_maps", seed)
    layout = data.draw(st.sampled_from(PAGED))
    case = make_kv(lens, layout, page_size, kv_heads=1, head_dim=16, gen=gen, extra_pages=extra)
    _check_rows(case, case.kv, case.describe())
    table = csr_to_page_table(case.page_indptr, case.page_indices, pad=-1)
    seq_lens = torch.tensor(lens, dtype=torch.int32)
    ip, idx, lpl = page_table_to_csr(table, seq_lens, page_size)
    assert torch.equal(ip, case.page_indptr) and torch.equal(idx, case.page_indices)
    assert torch.equal(seq_lens_from_last_page_len(ip, lpl, page_size), seq_lens)
    assert torch.equal(last_page_len_from_seq_lens(seq_lens, page_size), lpl)
    if lens:
        kv_t = KVCache.from_page_table(case.kv.k, case.kv.v, table.clamp(min=0), seq_lens, layout=layout)
        _check_rows(case, kv_t, "table " + case.describe())
    # Every page is owned at most once, and the owned ones are a subset of the pool.
    if idx.numel():
        assert idx.unique().numel() == idx.numel() and int(idx.max()) < case.num_pages


@settings(max_examples=25, deadline=None)
@given(lens=st.lists(st.integers(0, 20), min_size=1, max_size=4), ps_a=st.sampled_from([1, 3, 16]),
       ps_b=st.sampled_from([1, 2, 3, 16]), seed=st.integers(0, 2 ** 31 - 1), data=st.data())
def test_convert_property(lens, ps_a, ps_b, seed, data):
    src = data.draw(st.sampled_from(FORMS))
    dst = data.draw(st.sampled_from(("NHD", "HND", "vllm", "ragged")))
    gen = make_gen("convert", seed)
    case = make_kv(lens, src, 1 if src in ("ragged", "token_pool") else ps_a, head_dim=16, gen=gen)
    _check_rows(case, convert(case.kv, layout=dst, page_size=ps_b), f"{case.describe()} -> {dst}/{ps_b}")


# ----------------------------------------------------------------------------- write_kv

def _slots_for(case, n_new, gen):
    """Distinct random slots (page * page_size + offset) anywhere in the pool, owned or not."""
    pool = case.num_pages * case.page_size
    return torch.randperm(pool, generator=gen)[:n_new]


@pytest.mark.parametrize("backend", ["torch", "triton"])
@pytest.mark.parametrize("form", FORMS)
def test_write_kv(form, backend, gen):
    ps = 1 if form in ("ragged", "token_pool") else (3 if form != "HND" else 16)
    for dtype in (torch.float32, torch.float16):
        case = make_kv([5, 0, 9], form, ps, kv_heads=2, head_dim=32, dtype=dtype, gen=gen, extra_pages=4)
        kv = case.kv
        n = 6
        slots = _slots_for(case, n, gen).to(torch.int64)
        slots[2] = -1                                      # vLLM's padding: skipped
        slots[5] = -1
        k_new = torch.randn(n, 2, 32, generator=gen).to(dtype)
        v_new = torch.randn(n, 2, 32, generator=gen).to(dtype)
        k_before = storage_to_logical(kv.k, form, "k")
        v_before = storage_to_logical(kv.v, form, "v")
        write_kv(kv, k_new, v_new, slots.to(torch.int32 if dtype == torch.float16 else torch.int64),
                 backend=backend)
        k_after = storage_to_logical(kv.k, form, "k")
        v_after = storage_to_logical(kv.v, form, "v")
        k_want, v_want = k_before.clone(), v_before.clone()
        for i, s in enumerate(slots.tolist()):
            if s >= 0:
                k_want[s // ps, s % ps] = k_new[i]
                v_want[s // ps, s % ps] = v_new[i]
        what = f"write_kv {backend} {case.describe()} slots={slots.tolist()}"
        assert torch.equal(k_after.isnan(), k_want.isnan()), what + ": K NaN pattern"
        assert torch.equal(k_after.nan_to_num(), k_want.nan_to_num()), what + ": K"
        assert torch.equal(v_after.nan_to_num(), v_want.nan_to_num()) and torch.equal(v_after.isnan(), v_want.isnan()), \
            what + ": V"


def test_write_kv_then_read(gen):
    """Append one token per sequence with write_kv, grow seq_lens, and gather the new tokens."""
    case = make_kv([3, 16, 1], "vllm", 16, head_dim=32, gen=gen, extra_pages=3)
    kv = case.kv
    # Sequence 1 fills its page: give it a fresh (unowned) page for its 17th token.
    owned = set(case.page_indices.tolist())
    free = [p for p in range(case.num_pages) if p not in owned]
    ip = case.page_indptr.tolist()
    idx = case.page_indices.tolist()
    idx.insert(ip[2], free[0])
    ip = [ip[0], ip[1], ip[2] + 1, ip[3] + 1]
    lens = [4, 17, 2]
    kv2 = KVCache.paged(kv.k, kv.v, torch.tensor(ip, dtype=torch.int32), torch.tensor(idx, dtype=torch.int32),
                        torch.tensor(lens, dtype=torch.int32), layout="vllm")
    slots = torch.tensor([idx[ip[b] + (lens[b] - 1) // 16] * 16 + (lens[b] - 1) % 16 for b in range(3)])
    k_new, v_new = torch.randn(3, 2, 32, generator=gen), torch.randn(3, 2, 32, generator=gen)
    write_kv(kv2, k_new, v_new, slots)
    k, v, gip = gather(kv2)
    for b in range(3):
        assert torch.equal(k[int(gip[b + 1]) - 1], k_new[b]) and torch.equal(v[int(gip[b + 1]) - 1], v_new[b])
        kr, _ = case.rows(b)
        assert torch.equal(k[int(gip[b]):int(gip[b]) + kr.shape[0]], kr)
