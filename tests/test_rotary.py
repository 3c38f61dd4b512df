"""attn.rotary: the cos/sin cache (each scaling against its formula), apply (Triton, one launch) and
apply_and_write_kv (every layout) against a float64 oracle written here, independently of
attn.reference.

CPU tier: Triton kernels through the interpreter (TRITON_INTERPRET=1), small shapes; on a GPU
machine the same cases run compiled. GPU tier (@pytest.mark.gpu): fp16/bf16, large token counts.
"""
import math
import os

import pytest
import torch

if not torch.cuda.is_available():
    # Decided when a kernel module is imported (triton.jit): set before attn's kernels load.
    os.environ.setdefault("TRITON_INTERPRET", "1")

import attn  # noqa: E402
from attn.layouts import KVCache, get_layout, set_validation, get_validation  # noqa: E402
from attn.triton_kernels import rotary as K  # noqa: E402
import kvgen  # noqa: E402

BACKEND = "triton"          # the backend the GPU tier report counts these tests under

DEV = "cuda" if torch.cuda.is_available() else "cpu"
gpu = pytest.mark.gpu
needs_cuda = pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA/ROCm GPU")
TOL = kvgen.TOL       # DESIGN.md tolerances: fp32 1e-5, fp16 1e-3, bf16 1e-2 (relative, norm-wise)


# ------------------------------------------------------------------------------------ oracle

def inv_freq_plain(r, base):
    return [base ** (-2.0 * i / r) for i in range(r // 2)]


def oracle(x, pos, inv_freq, style, r, mscale=1.0):
    """float64 rotation as complex multiplication: pair (a, b) -> (a + ib) * mscale * e^{i pos w}."""
    x = x.to(torch.float64).cpu()
    pos = pos.reshape(x.shape[:-2]).to(torch.float64).cpu()
    w = torch.tensor(inv_freq, dtype=torch.float64)
    rot = torch.polar(torch.full_like(pos[..., None] * w, mscale), pos[..., None] * w)[..., None, :]
    out = x.clone()
    if style == "neox":
        idx_a, idx_b = torch.arange(r // 2), torch.arange(r // 2) + r // 2
    else:
        idx_a, idx_b = torch.arange(0, r, 2), torch.arange(1, r, 2)
    z = torch.complex(x[..., idx_a], x[..., idx_b]) * rot
    out[..., idx_a], out[..., idx_b] = z.real, z.imag
    return out


def close(got, want, dtype, what):
    got = got.detach().to(torch.float64).cpu()
    want = want.detach().to(torch.float64).cpu()
    assert not torch.isnan(got).any(), f"{what}: NaN in result"
    err = (got - want).norm() / want.norm().clamp_min(1e-30)
    assert err <= TOL[dtype], f"{what}: relative error {err:.3g} > {TOL[dtype]}"


# ------------------------------------------------------------------------------------ the cache

def scaled_inv_freq(r, base, max_position, scaling):
    """Each scaling by its published formula, scalar float64 Python (returns inv_freq, mscale)."""
    kind, f = scaling["type"], scaling["factor"]
    freqs = inv_freq_plain(r, base)
    if kind == "linear":
        return [w / f for w in freqs], 1.0
    L = scaling.get("original_max_position")
    if kind == "dynamic":
        b = base * ((f * max_position / L) - (f - 1)) ** (r / (r - 2)) if max_position > L else base
        return inv_freq_plain(r, b), 1.0
    if kind == "yarn":
        bf, bs = scaling.get("beta_fast", 32), scaling.get("beta_slow", 1)
        cd = lambda n: (r * math.log(L / (n * 2 * math.pi))) / (2 * math.log(base))  # noqa: E731
        lo, hi = max(math.floor(cd(bf)), 0), min(math.ceil(cd(bs)), r - 1)
        out = []
        for i, w in enumerate(freqs):
            ramp = min(max((i - lo) / ((hi - lo) or 0.001), 0.0), 1.0)
            out.append(w * (1 - ramp) + (w / f) * ramp)
        ms = (0.1 * math.log(f) + 1.0) * scaling.get("attn_factor", 1.0)
        return out, ms
    if kind == "llama3":
        lf, hf = scaling["low_freq_factor"], scaling["high_freq_factor"]
        out = []
        for w in freqs:
            wl = 2 * math.pi / w
            if wl < L / hf:
                out.append(w)
            elif wl > L / lf:
                out.append(w / f)
            else:
                s = (L / wl - lf) / (hf - lf)
                out.append((1 - s) * w / f + s * w)
        return out, 1.0
    raise AssertionError(kind)


SCALINGS = [
    None,
    {"type": "linear", "factor": 4.0},
    {"type": "dynamic", "factor": 2.0, "original_max_position": 512},
    {"type": "yarn", "factor": 8.0, "original_max_position": 256, "beta_fast": 32, "beta_slow": 1},
    {"type": "yarn", "factor": 4.0, "original_max_position": 4096, "attn_factor": 0.9},
    {"type": "llama3", "factor": 8.0, "low_freq_factor": 1.0, "high_freq_factor": 4.0,
     "original_max_position": 256},
]


@pytest.mark.parametrize("scaling", SCALINGS, ids=lambda s: "none" if s is None else s["type"])
@pytest.mark.parametrize("r,base", [(64, 10000.0), (128, 500000.0)])
def test_cos_sin_cache_formula(scaling, r, base):
    maxp = 1024
    got = attn.rotary.cos_sin_cache(maxp, r, base=base, scaling=scaling, dtype=torch.float64)
    w, ms = scaled_inv_freq(r, base, maxp, scaling) if scaling else (inv_freq_plain(r, base), 1.0)
    p = torch.arange(maxp, dtype=torch.float64)[:, None] * torch.tensor(w, dtype=torch.float64)
    want = torch.cat([p.cos(), p.sin()], -1) * ms
    assert got.shape == (maxp, r)
    assert torch.allclose(got, want, rtol=0, atol=1e-12), f"scaling {scaling}, r={r}: {(got - want).abs().max()}"
    if scaling and scaling["type"] in ("yarn", "llama3"):
        # The highest frequency is kept, the lowest interpolated by the factor (both methods' point).
        plain = inv_freq_plain(r, base)
        assert math.isclose(w[0], plain[0]) and math.isclose(w[-1], plain[-1] / scaling["factor"])


def test_cos_sin_cache_hf_names_and_dtype():
    a = attn.rotary.cos_sin_cache(64, 32, scaling={"rope_type": "llama3", "factor": 8.0, "low_freq_factor": 1.0,
                                                   "high_freq_factor": 4.0, "original_max_position_embeddings": 32})
    b = attn.rotary.cos_sin_cache(64, 32, scaling={"type": "llama3", "factor": 8.0, "low_freq_factor": 1.0,
                                                   "high_freq_factor": 4.0, "original_max_position": 32})
    assert a.dtype == torch.float32 and torch.equal(a, b)


# ------------------------------------------------------------------------------------ apply

def _inputs(shape_lead, hq, hk, d, dtype, gen):
    q = kvgen.randn((*shape_lead, hq, d), dtype, DEV, gen)
    k = kvgen.randn((*shape_lead, hk, d), dtype, DEV, gen)
    return q, k


def _randint(lo, hi, shape, gen, dtype=torch.int64, device=DEV):
    return torch.randint(lo, hi, shape, generator=gen, dtype=dtype).to(device)


@pytest.mark.parametrize("style", ["neox", "gptj"])
@pytest.mark.parametrize("d,r", [(64, 64), (128, 64), (80, 80), (80, 32)])
@pytest.mark.parametrize("inplace", [False, True])
@pytest.mark.parametrize("dtype", [torch.float32, torch.float16])
def test_apply_tokens(style, d, r, inplace, dtype, gen):
    n, hq, hk, maxp = 13, 6, 2, 300
    cache = attn.rotary.cos_sin_cache(maxp, r, base=10000.0, device=DEV)
    q, k = _inputs((n,), hq, hk, d, dtype, gen)
    pos = _randint(0, maxp, (n,), gen, torch.int32)
    q0, k0 = q.clone(), k.clone()
    qo, ko = attn.rotary.apply(q, k, pos, cache, style=style, inplace=inplace, backend="triton")
    what = f"style={style} d={d} r={r} inplace={inplace} {dtype}"
    close(qo, oracle(q0, pos, inv_freq_plain(r, 10000.0), style, r), dtype, "q " + what)
    close(ko, oracle(k0, pos, inv_freq_plain(r, 10000.0), style, r), dtype, "k " + what)
    if inplace:
        assert qo.data_ptr() == q.data_ptr() and ko.data_ptr() == k.data_ptr()
    else:
        assert torch.equal(q, q0) and torch.equal(k, k0), "inputs modified without inplace"
    if r < d:   # the pass-through dims are bit-exact copies
        assert torch.equal(qo[..., r:], q0[..., r:]) and torch.equal(ko[..., r:], k0[..., r:]), what


@pytest.mark.parametrize("style", ["neox", "gptj"])
@pytest.mark.parametrize("d,r", [(64, 64), (64, 32)])
def test_kernel_poisoned_outputs_and_blockings(style, d, r, gen):
    """Outputs NaN before the launch; small forced blockings: several head blocks per token with a
    ragged last one, token blocks of 1 and 4 with a ragged tail."""
    n, hq, hk, maxp = 11, 5, 3, 200
    cache = attn.rotary.cos_sin_cache(maxp, r, device=DEV)
    q, k = _inputs((n,), hq, hk, d, torch.float32, gen)
    pos = _randint(0, maxp, (n,), gen)
    for cfg in (dict(BLOCK_TQ=1, BLOCK_TK=2, BLOCK_HQ=2, BLOCK_HK=2, num_warps=1),
                dict(BLOCK_TQ=4, BLOCK_TK=1, BLOCK_HQ=8, BLOCK_HK=1, num_warps=2)):
        qo, ko = torch.full_like(q, float("nan")), torch.full_like(k, float("nan"))
        K.rotary(q, k, qo, ko, cache, r, style == "neox", positions=pos, config=cfg)
        what = f"style={style} d={d} r={r} cfg={cfg}"
        close(qo, oracle(q, pos, inv_freq_plain(r, 1e4), style, r), torch.float32, "q " + what)
        close(ko, oracle(k, pos, inv_freq_plain(r, 1e4), style, r), torch.float32, "k " + what)


@pytest.mark.parametrize("style", ["neox", "gptj"])
def test_positions_past_2_16_and_int64(style, gen):
    n, r, maxp = 9, 64, 2 ** 17 + 7
    cache = attn.rotary.cos_sin_cache(maxp, r, device=DEV)
    q, k = _inputs((n,), 4, 1, r, torch.float32, gen)
    pos = _randint(2 ** 16, maxp, (n,), gen, torch.int64)
    pos[0] = maxp - 1
    qo, ko = attn.rotary.apply(q, k, pos, cache, style=style, backend="triton")
    w = inv_freq_plain(r, 1e4)
    # fp32 cache entries at angles ~1e5 rad: the cache, not the kernel, bounds the error.
    close(qo, oracle(q, pos, w, style, r), torch.float32, "q")
    close(ko, oracle(k, pos, w, style, r), torch.float32, "k")


@pytest.mark.parametrize("scaling", SCALINGS[1:], ids=lambda s: s["type"])
def test_apply_scaled_cache(scaling, gen):
    n, r, maxp = 7, 32, 2048
    cache = attn.rotary.cos_sin_cache(maxp, r, base=10000.0, scaling=scaling, device=DEV)
    w, ms = scaled_inv_freq(r, 10000.0, maxp, scaling)
    q, k = _inputs((n,), 2, 2, r, torch.float32, gen)
    pos = _randint(0, maxp, (n,), gen)
    qo, ko = attn.rotary.apply(q, k, pos, cache, backend="triton")
    close(qo, oracle(q, pos, w, "neox", r, ms), torch.float32, str(scaling))
    close(ko, oracle(k, pos, w, "neox", r, ms), torch.float32, str(scaling))


@pytest.mark.parametrize("style", ["neox", "gptj"])
@pytest.mark.parametrize("pos_form", ["positions", "positions2d", "offsets"])
@pytest.mark.parametrize("inplace", [False, True])
def test_apply_bshd(style, pos_form, inplace, gen):
    b, s, hq, hk, d, r, maxp = 3, 5, 4, 2, 64, 32, 100
    cache = attn.rotary.cos_sin_cache(maxp, r, device=DEV)
    # A non-contiguous [b, s] slice of a longer buffer (flash-attn's k_cache[:, :s] case).
    qbuf, kbuf = _inputs((b, s + 3), hq, hk, d, torch.float32, gen)
    qbuf0, kbuf0 = qbuf.clone(), kbuf.clone()
    q, k = qbuf[:, 1:s + 1], kbuf[:, 1:s + 1]
    q0, k0 = q.clone(), k.clone()
    offsets = _randint(0, maxp - s, (b,), gen, torch.int32)
    pos2d = offsets[:, None].to(torch.int64) + torch.arange(s, device=DEV)
    kw = {"positions": pos2d.reshape(-1)} if pos_form == "positions" else \
        {"positions": pos2d} if pos_form == "positions2d" else {"offsets": offsets}
    qo, ko = attn.rotary.apply(q, k, cos_sin_cache=cache, style=style, inplace=inplace, backend="triton", **kw)
    w = inv_freq_plain(r, 1e4)
    what = f"{style} {pos_form} inplace={inplace}"
    close(qo, oracle(q0, pos2d, w, style, r), torch.float32, "q " + what)
    close(ko, oracle(k0, pos2d, w, style, r), torch.float32, "k " + what)
    assert qo.shape == q.shape and ko.shape == k.shape
    # The rows around the slice are untouched, in place or not.
    for buf, buf0 in ((qbuf, qbuf0), (kbuf, kbuf0)):
        assert torch.equal(buf[:, 0], buf0[:, 0]) and torch.equal(buf[:, s + 1:], buf0[:, s + 1:]), what


@pytest.mark.parametrize("style", ["neox", "gptj"])
def test_apply_ragged_offsets_indptr(style, gen):
    lens = [3, 0, 1, 7, 2]
    n, r, maxp = sum(lens), 64, 500
    indptr = torch.tensor([0] + list(torch.tensor(lens).cumsum(0)), dtype=torch.int32, device=DEV)
    offsets = _randint(0, maxp - 8, (len(lens),), gen)
    pos = torch.cat([o + torch.arange(L, device=DEV) for o, L in zip(offsets.tolist(), lens)])
    cache = attn.rotary.cos_sin_cache(maxp, r, device=DEV)
    q, k = _inputs((n,), 8, 1, r, torch.float32, gen)
    set_validation("full")
    try:
        qo, ko = attn.rotary.apply(q, k, cos_sin_cache=cache, style=style, offsets=offsets, indptr=indptr,
                                   backend="triton")
    finally:
        set_validation("cheap")
    close(qo, oracle(q, pos, inv_freq_plain(r, 1e4), style, r), torch.float32, f"q lens={lens}")
    close(ko, oracle(k, pos, inv_freq_plain(r, 1e4), style, r), torch.float32, f"k lens={lens}")


def test_apply_fused_qkv_view_inplace(gen):
    """q and k as views into one [tokens, (hq + 2 hk) * d] projection, rotated in place; v untouched."""
    n, hq, hk, d = 6, 4, 2, 64
    qkv = kvgen.randn((n, (hq + 2 * hk) * d), device=DEV, gen=gen)
    ref = qkv.clone()
    q = qkv[:, : hq * d].view(n, hq, d)
    k = qkv[:, hq * d: (hq + hk) * d].view(n, hk, d)
    pos = _randint(0, 64, (n,), gen)
    cache = attn.rotary.cos_sin_cache(64, d, device=DEV)
    attn.rotary.apply(q, k, pos, cache, inplace=True, backend="triton")
    w = inv_freq_plain(d, 1e4)
    close(q, oracle(ref[:, : hq * d].view(n, hq, d), pos, w, "neox", d), torch.float32, "q")
    close(k, oracle(ref[:, hq * d:(hq + hk) * d].view(n, hk, d), pos, w, "neox", d), torch.float32, "k")
    assert torch.equal(qkv[:, (hq + hk) * d:], ref[:, (hq + hk) * d:]), "v part of qkv modified"


def test_torch_backend_matches_oracle(gen):
    n, r = 5, 32
    cache = attn.rotary.cos_sin_cache(50, r, device=DEV)
    q, k = _inputs((n,), 2, 1, 48, torch.float32, gen)
    pos = _randint(0, 50, (n,), gen)
    for style in ("neox", "gptj"):
        qo, ko = attn.rotary.apply(q, k, pos, cache, style=style, backend="torch")
        close(qo, oracle(q, pos, inv_freq_plain(r, 1e4), style, r), torch.float32, "q " + style)
        close(ko, oracle(k, pos, inv_freq_plain(r, 1e4), style, r), torch.float32, "k " + style)


# ------------------------------------------------------------------------------------ fused write

def _server_step(layout, page_size, hk, d, dtype, lens_old, lens_new, pad_tokens, gen):
    """A cache with shuffled pages (some unowned), random old contents and NaN, and one step of
    new tokens appended to each sequence, plus padding tokens with slot -1."""
    lay = get_layout(layout)
    b = len(lens_old)
    total = [o + n for o, n in zip(lens_old, lens_new)]
    if lay.paged:
        pages_per = [-(-t // page_size) for t in total]
        n_pages = sum(pages_per) + 3
        perm = torch.randperm(n_pages, generator=gen)
        indptr = torch.tensor([0] + list(torch.tensor(pages_per).cumsum(0)), dtype=torch.int32)
        indices = perm[: sum(pages_per)].to(torch.int32)
        kc = kvgen.randn(lay.shape("k", n_pages, page_size, hk, d, dtype), dtype, gen=gen)
        vc = kvgen.randn(lay.shape("v", n_pages, page_size, hk, d, dtype), dtype, gen=gen)
    else:
        page_size, n_rows = 1, sum(total) + 5
        perm = torch.randperm(n_rows, generator=gen)
        indptr = torch.tensor([0] + list(torch.tensor(total).cumsum(0)), dtype=torch.int32)
        indices = perm[: sum(total)].to(torch.int32)
        kc = kvgen.randn((n_rows, hk, d), dtype, gen=gen)
        vc = kvgen.randn((n_rows, hk, d), dtype, gen=gen)
    kc.view(-1)[:: 7] = float("nan")     # what an uninitialized cache may hold
    vc.view(-1)[:: 5] = float("nan")
    seq_lens = torch.tensor(total, dtype=torch.int32)
    kc, vc = kc.to(DEV), vc.to(DEV)
    if lay.paged:
        kv = KVCache.paged(kc, vc, indptr.to(DEV), indices.to(DEV), seq_lens.to(DEV), layout=lay)
    else:
        kv = KVCache.token_pool(kc, vc, indptr.to(DEV), indices.to(DEV))
    pos, slots = [], []
    for bi in range(b):
        for p in range(lens_old[bi], total[bi]):
            page = int(indices[indptr[bi] + p // page_size])
            pos.append(p)
            slots.append(page * page_size + p % page_size)
    at = sorted(torch.randperm(len(pos) + pad_tokens, generator=gen)[:pad_tokens].tolist())
    for i in at:
        pos.insert(i, int(torch.randint(16, (1,), generator=gen)))     # padding: any valid position
        slots.insert(i, -1)
    return kv, torch.tensor(pos, device=DEV), torch.tensor(slots, device=DEV)


def _check_written(kv, k_old, v_old, slots, k_want, v_want, dtype, what):
    """The slots of live tokens hold k_want / v_want; every other slot (other tokens, unowned pages,
    NaN included) is bit-identical to k_old / v_old. Storage is read back through tests/kvgen.py's
    own permutes, not the library's strides."""
    live = slots[slots >= 0].to(torch.int64).cpu()
    ps = kv.page_size
    page, slot = live // ps, live % ps
    for name, store, old, want in (("k", kv.k, k_old, k_want), ("v", kv.v, v_old, v_want)):
        new_l = kvgen.storage_to_logical(store.cpu(), kv.layout.name, name)    # [P, S, H, D]
        old_l = kvgen.storage_to_logical(old.cpu(), kv.layout.name, name)
        close(new_l[page, slot], want, dtype, f"{name} written slots, {what}")
        untouched = torch.ones(new_l.shape[:2], dtype=torch.bool)
        untouched[page, slot] = False
        torch.testing.assert_close(new_l[untouched], old_l[untouched], rtol=0, atol=0, equal_nan=True,
                                   msg=lambda m: f"{name} slots not written changed, {what}: {m}")


@pytest.mark.parametrize("layout,page_size", [("NHD", 16), ("HND", 3), ("vllm", 4), ("vllm", 1), ("ragged", 1)])
@pytest.mark.parametrize("style,d,r", [("neox", 64, 64), ("gptj", 64, 32), ("neox", 80, 48)])
@pytest.mark.parametrize("dtype", [torch.float32, torch.float16])
def test_apply_and_write_kv(layout, page_size, style, d, r, dtype, gen):
    hq, hk = 4, 2
    kv, pos, slots = _server_step(layout, page_size, hk, d, dtype, [5, 0, 17], [1, 6, 3], pad_tokens=2, gen=gen)
    n = pos.shape[0]
    k_old, v_old = kv.k.clone(), kv.v.clone()
    cache = attn.rotary.cos_sin_cache(64, r, device=DEV)
    q = kvgen.randn((n, hq, d), dtype, DEV, gen)
    k_new = kvgen.randn((n, hk, d), dtype, DEV, gen)
    v_new = kvgen.randn((n, hk, d), dtype, DEV, gen)
    q0, kn0, vn0 = q.clone(), k_new.clone(), v_new.clone()
    qo = attn.rotary.apply_and_write_kv(q, k_new, v_new, pos, cache, kv, slots, style=style, backend="triton")
    what = f"layout={layout} page_size={page_size} {style} d={d} r={r} {dtype}"
    w = inv_freq_plain(r, 1e4)
    close(qo, oracle(q0, pos, w, style, r), dtype, "q " + what)
    assert torch.equal(k_new, kn0) and torch.equal(v_new, vn0), "k_new / v_new modified"
    live = slots >= 0
    k_want = oracle(kn0, pos, w, style, r)[live.cpu()]
    _check_written(kv, k_old, v_old, slots, k_want, vn0[live].double().cpu(), dtype, what)


@pytest.mark.parametrize("layout", ["vllm", "HND", "NHD"])
def test_write_kv_page_runs(layout, gen):
    """Forced blockings of 4 tokens over pages of 8: blocks whose slots are one aligned run of a
    page (vLLM: the slot-contiguous store path) and blocks that are not (a sequence starting mid-page,
    a block straddling two sequences, padding) in one launch; unwritten slots keep their contents."""
    hq, hk, d, r, dtype, ps = 4, 2, 64, 64, torch.float32, 8
    kv, pos, slots = _server_step(layout, ps, hk, d, dtype, [0, 8, 3], [16, 13, 9], pad_tokens=0, gen=gen)
    pad = torch.tensor([-1], device=DEV)
    pos, slots = torch.cat([pos, pos[:1]]), torch.cat([slots, pad])       # a padding token at the end
    n = pos.shape[0]
    k_old, v_old = kv.k.clone(), kv.v.clone()
    cache = attn.rotary.cos_sin_cache(64, r, device=DEV)
    q = kvgen.randn((n, hq, d), dtype, DEV, gen)
    k_new = kvgen.randn((n, hk, d), dtype, DEV, gen)
    v_new = kvgen.randn((n, hk, d), dtype, DEV, gen)
    for cfg in (dict(BLOCK_TQ=2, BLOCK_TK=4, BLOCK_HQ=2, BLOCK_HK=1, num_warps=1),
                dict(BLOCK_TQ=8, BLOCK_TK=8, BLOCK_HQ=4, BLOCK_HK=2, num_warps=2)):
        kv.k.copy_(k_old)
        kv.v.copy_(v_old)
        qo = torch.full_like(q, float("nan"))
        K.rotary(q, k_new, qo, None, cache, r, True, positions=pos, kv=kv, v=v_new, slot_mapping=slots, config=cfg)
        what = f"layout={layout} cfg={cfg}"
        w = inv_freq_plain(r, 1e4)
        close(qo, oracle(q, pos, w, "neox", r), dtype, "q " + what)
        live = slots >= 0
        _check_written(kv, k_old, v_old, slots, oracle(k_new, pos, w, "neox", r)[live.cpu()],
                       v_new[live].double().cpu(), dtype, what)


def test_tuned_rotary_entry_reaches_apply_launches_only(gen, monkeypatch):
    """A tuned "rotary" entry (here forced through attn.configs.override) sets launch_config's
    knobs for apply's launches, and only its tunable ones; the cache write keeps its own row. The
    apply launch it gives is still right, and leaving the override drops it again."""
    from attn import configs
    dev = torch.device(DEV)
    seen = []
    real = K.launch_config

    def spy(*args):
        seen.append((args[6], args[-1]))                    # (write, overrides)
        return real(*args)
    monkeypatch.setattr(K, "launch_config", spy)
    kv, pos, slots = _server_step("HND", 4, 2, 64, torch.float32, [5, 0, 17], [1, 6, 3], pad_tokens=2, gen=gen)
    n = pos.shape[0]
    cache = attn.rotary.cos_sin_cache(64, 64, device=DEV)
    q = kvgen.randn((n, 4, 64), torch.float32, DEV, gen)
    k = kvgen.randn((n, 2, 64), torch.float32, DEV, gen)
    v = kvgen.randn((n, 2, 64), torch.float32, DEV, gen)
    assert K.tuned_overrides(dev, n, 64, torch.float32) == ()
    with configs.override("rotary", dict(tile=1024, num_warps=2, BLOCK_TQ=99)):
        assert K.tuned_overrides(dev, n, 64, torch.float32) == (("num_warps", 2), ("tile", 1024))
        qo, ko = attn.rotary.apply(q, k, pos, cache, backend="triton")
        qr, kr = attn.rotary.apply(q, k, pos, cache, backend="torch")
        assert torch.allclose(qo, qr, atol=1e-5) and torch.allclose(ko, kr, atol=1e-5)
        assert seen[-1] == (False, (("num_warps", 2), ("tile", 1024)))
        attn.rotary.apply_and_write_kv(q, k, v, pos, cache, kv, slots, backend="triton")
        assert seen[-1][0] is True and seen[-1][1] == ()        # the write keeps its row
    assert K.tuned_overrides(dev, n, 64, torch.float32) == ()
    attn.rotary.apply(q, k, pos, cache, backend="triton")
    assert seen[-1] == (False, ())


def test_launch_config():
    """Tiles fill the vendor's tile; writes to head-major caches take page runs that divide the page;
    decode-sized batches shrink the token blocks until the grid fills the machine."""
    lc = K.launch_config
    big = lc(8192, 32, 8, 128, "nvidia", 132)
    assert big["BLOCK_HQ"] * big["BLOCK_TQ"] * 128 == K._CONFIGS["nvidia"]["tile"]
    hnd = lc(8192, 32, 8, 128, "nvidia", 132, True, True, 0)
    assert hnd["BLOCK_TK"] == K._CONFIGS["nvidia"]["run_tokens"]
    write_tile = K._CONFIGS["nvidia"].get("write_tile", K._CONFIGS["nvidia"]["tile"])
    assert hnd["BLOCK_TK"] * hnd["BLOCK_HK"] * 128 == write_tile // 2   # k and v: half each
    assert hnd["BLOCK_TQ"] * hnd["BLOCK_HQ"] * 128 == write_tile
    assert lc(8192, 32, 8, 128, "nvidia", 132, True, True, 8)["BLOCK_TK"] == 8
    slot_runs = K._CONFIGS["nvidia"].get("slot_run_tokens", K._CONFIGS["nvidia"]["run_tokens"])
    assert lc(8192, 32, 8, 128, "nvidia", 132, True, True, 3)["BLOCK_TK"] == slot_runs
    slot_heads = K._CONFIGS["nvidia"].get("slot_run_heads", 8)
    assert lc(8192, 32, 8, 128, "nvidia", 132, True, True, 16)["BLOCK_HK"] == min(8, slot_heads)
    assert lc(8192, 32, 8, 128, "nvidia", 132, True, True, 0)["BLOCK_HK"] > slot_heads   # HND: not capped
    # Runs along the slots (vLLM's V) and along the dims (HND) take their own lengths; the q
    # programs of a write their own head count.
    over = (("run_tokens", 2), ("slot_run_tokens", 8), ("write_max_heads", 4), ("max_heads", 16))
    assert lc(8192, 32, 8, 128, "nvidia", 132, True, True, 0, over)["BLOCK_TK"] == 2
    assert lc(8192, 32, 8, 128, "nvidia", 132, True, True, 16, over)["BLOCK_TK"] == 8
    assert lc(8192, 32, 8, 128, "nvidia", 132, True, True, 16, over)["BLOCK_HQ"] == 4
    assert lc(8192, 32, 8, 128, "nvidia", 132, False, False, 1, over)["BLOCK_HQ"] == 16
    small = lc(64, 32, 8, 128, "nvidia", 132)
    assert small["BLOCK_TQ"] == 1 and small["BLOCK_TK"] == 1
    assert lc(8192, 32, 8, 128, "nvidia", 132, overrides=(("tile", 4096),))["BLOCK_TQ"] == big["BLOCK_TQ"] // 2


def test_validation_memo_still_rejects(gen):
    """Cheap checks are remembered per metadata: a call with other metadata is still checked, and
    "full" checks values every time."""
    cache = attn.rotary.cos_sin_cache(32, 64, device=DEV)
    q, k = _inputs((4,), 4, 2, 64, torch.float32, gen)
    pos = torch.arange(4, device=DEV)
    attn.rotary.apply(q, k, pos, cache, backend="triton")
    attn.rotary.apply(q, k, pos, cache, backend="triton")
    _err(TypeError, "positions must have dtype", attn.rotary.apply, q, k, pos.float(), cache, backend="triton")
    _err(ValueError, "positions must have 4 entries; got 3", attn.rotary.apply, q, k, pos[:3], cache, backend="triton")
    set_validation("full")
    try:
        _err(ValueError, "positions must be in", attn.rotary.apply, q, k, pos + 100, cache, backend="triton")
    finally:
        set_validation("cheap")


def test_apply_and_write_kv_torch_backend_and_inplace(gen):
    d, hk = 64, 2
    results = []
    seed = int(torch.randint(2 ** 62, (1,), generator=gen))
    for backend in ("torch", "triton"):
        g = torch.Generator().manual_seed(seed)          # the same inputs for both backends
        kv, pos, slots = _server_step("vllm", 8, hk, d, torch.float32, [3, 9], [2, 1], pad_tokens=1, gen=g)
        cache = attn.rotary.cos_sin_cache(32, d, device=DEV)
        q = kvgen.randn((pos.shape[0], 4, d), device=DEV, gen=g)
        k_new, v_new = kvgen.randn((pos.shape[0], hk, d), device=DEV, gen=g), kvgen.randn((pos.shape[0], hk, d), device=DEV, gen=g)
        qo = attn.rotary.apply_and_write_kv(q, k_new, v_new, pos, cache, kv, slots, inplace=True, backend=backend)
        assert qo.data_ptr() == q.data_ptr()
        results.append((qo.clone(), kv.k.clone(), kv.v.clone()))
    for a, b_, name in zip(results[0], results[1], ("q", "k cache", "v cache")):
        torch.testing.assert_close(b_, a, rtol=1e-5, atol=1e-5, equal_nan=True,
                                   msg=lambda m: f"{name}: {m}")


# ------------------------------------------------------------------------------------ errors

def _err(exc, match, fn, *a, **kw):
    with pytest.raises(exc, match=match):
        fn(*a, **kw)


def test_errors(gen):
    cache = attn.rotary.cos_sin_cache(32, 64, device=DEV)
    q, k = _inputs((4,), 4, 2, 64, torch.float32, gen)
    pos = torch.arange(4, device=DEV)
    apply = attn.rotary.apply
    _err(ValueError, "style must be 'neox' or 'gptj'; got 'rope'", apply, q, k, pos, cache, style="rope")
    _err(ValueError, "rotary_dim must be a positive even int <= head_dim=64.*got rotary_dim=31", apply, q, k, pos,
         cache, rotary_dim=31)
    _err(ValueError, "rotary_dim .* got rotary_dim=128", apply, q, k, pos,
         attn.rotary.cos_sin_cache(32, 128, device=DEV))
    _err(ValueError, r"k must have shape \[4, \*, 64\] like q; got \[4, 2, 32\]", apply, q, k[..., :32], pos, cache)
    _err(ValueError, "positions must have 4 entries; got 3", apply, q, k, pos[:3], cache)
    _err(TypeError, "positions must have dtype torch.int32 or torch.int64; got torch.float32", apply, q, k,
         pos.float(), cache)
    _err(ValueError, "give exactly one of positions and offsets", apply, q, k, pos, cache, offsets=pos)
    _err(ValueError, "needs indptr", apply, q, k, cos_sin_cache=cache, offsets=pos[:1])
    _err(ValueError, "q must have unit stride along head_dim", apply, q.transpose(1, 2).contiguous().transpose(1, 2),
         k, pos, cache)
    _err(ValueError, "backend must be one of", apply, q, k, pos, cache, backend="cuda")
    _err(ValueError, "scaling\\['type'\\] must be one of", attn.rotary.cos_sin_cache, 8, 8, scaling={"type": "ntk"})
    _err(ValueError, "needs 'original_max_position'", attn.rotary.cos_sin_cache, 8, 8,
         scaling={"type": "yarn", "factor": 2.0})
    _err(ValueError, "rotary_dim must be a positive even int; got 7", attn.rotary.cos_sin_cache, 8, 7)
    cs = attn.rotary.cos_sin_cache
    _err(ValueError, "max_position must be a positive int; got 2.5", cs, 2.5, 8)
    _err(ValueError, "base must be a finite number > 1; got 0", cs, 8, 8, base=0)
    _err(TypeError, "dtype must be one of .* got torch.int32", cs, 8, 8, dtype=torch.int32)
    _err(ValueError, "factor'\\] must be a finite positive number; got nan", cs, 8, 8,
         scaling={"type": "linear", "factor": float("nan")})
    _err(ValueError, "original_max_position'\\] must be positive; got 0", cs, 8, 8,
         scaling={"type": "yarn", "factor": 2.0, "original_max_position": 0})
    _err(ValueError, "dynamic scaling needs rotary_dim >= 4", cs, 8, 2,
         scaling={"type": "dynamic", "factor": 2.0, "original_max_position": 4})
    level = get_validation()
    set_validation("full")
    try:
        _err(ValueError, r"positions must be in \[0, 32\); positions\[2\]=40", apply, q, k,
             torch.tensor([0, 1, 40, 2], device=DEV), cache)
        _err(ValueError, "indptr\\[-1\\] must equal the number of tokens 4; got 3", apply, q, k, cos_sin_cache=cache,
             offsets=torch.zeros(2, dtype=torch.int32, device=DEV),
             indptr=torch.tensor([0, 1, 3], dtype=torch.int32, device=DEV))
    finally:
        set_validation(level)


def test_errors_write_kv(gen):
    kv, pos, slots = _server_step("NHD", 4, 2, 64, torch.float32, [2], [3], pad_tokens=0, gen=gen)
    cache = attn.rotary.cos_sin_cache(32, 64, device=DEV)
    n = pos.shape[0]
    q = kvgen.randn((n, 4, 64), device=DEV, gen=gen)
    k, v = kvgen.randn((n, 2, 64), device=DEV, gen=gen), kvgen.randn((n, 2, 64), device=DEV, gen=gen)
    f = attn.rotary.apply_and_write_kv
    _err(TypeError, "kv must be an attn.layouts.KVCache; got Tensor", f, q, k, v, pos, cache, kv.k, slots)
    _err(ValueError, r"k_new must have shape \[\*, 2, 64\]; got \[3, 3, 64\]", f, q, kvgen.randn((n, 3, 64), device=DEV, gen=gen),
         v, pos, cache, kv, slots)
    _err(ValueError, "slot_mapping must have 3 entries; got 2", f, q, k, v, pos, cache, kv, slots[:2])
    _err(ValueError, "q must have 3 dims", f, q[None], k, v, pos, cache, kv, slots)


def test_triton_backend_on_cpu_without_interpreter(monkeypatch, gen):
    q, k = kvgen.randn((2, 1, 16), gen=gen), kvgen.randn((2, 1, 16), gen=gen)
    monkeypatch.setenv("TRITON_INTERPRET", "0")
    _err(RuntimeError, "set TRITON_INTERPRET=1", attn.rotary.apply, q, k, torch.arange(2),
         attn.rotary.cos_sin_cache(4, 16), backend="triton")


def test_rotary_dataclass():
    cache = attn.rotary.cos_sin_cache(8, 32)
    assert attn.Rotary(cache).rotary_dim == 32
    _err(ValueError, "style must be", attn.Rotary, cache, style="x")
    _err(ValueError, "rotary_dim must be even", attn.Rotary, cache, rotary_dim=34)


# ------------------------------------------------------------------------------------ GPU tier

@gpu
@needs_cuda
@pytest.mark.parametrize("dtype", [torch.float16, torch.bfloat16])
@pytest.mark.parametrize("style", ["neox", "gptj"])
@pytest.mark.parametrize("n", [1, 64, 8192, 40000])
def test_gpu_apply_large(dtype, style, n, gen):
    hq, hk, d, maxp = 32, 8, 128, 1 << 17
    cache = attn.rotary.cos_sin_cache(maxp, d, base=500000.0, device="cuda")
    q, k = kvgen.randn((n, hq, d), dtype, "cuda", gen), kvgen.randn((n, hk, d), dtype, "cuda", gen)
    pos = _randint(0, maxp, (n,), gen, torch.int32, "cuda")
    qo, ko = attn.rotary.apply(q, k, pos, cache, style=style)
    w = inv_freq_plain(d, 500000.0)
    sel = torch.randint(0, n, (min(n, 512),), generator=gen)   # the float64 oracle on a sample of tokens
    close(qo[sel], oracle(q[sel], pos[sel], w, style, d), dtype, f"q n={n} {dtype} {style}")
    close(ko[sel], oracle(k[sel], pos[sel], w, style, d), dtype, f"k n={n} {dtype} {style}")
    ref_q, ref_k = attn.rotary.apply(q, k, pos, cache, style=style, backend="torch")
    close(qo, ref_q.double(), dtype, f"q vs torch backend n={n}")
    close(ko, ref_k.double(), dtype, f"k vs torch backend n={n}")


@gpu
@needs_cuda
@pytest.mark.parametrize("layout,page_size", [("NHD", 16), ("HND", 16), ("vllm", 16), ("ragged", 1)])
@pytest.mark.parametrize("dtype", [torch.float16, torch.bfloat16])
def test_gpu_apply_and_write_kv_large(layout, page_size, dtype, gen):
    hq, hk, d = 32, 8, 128
    lens_old = torch.randint(0, 3000, (16,), generator=gen).tolist()
    lens_new = torch.randint(1, 600, (16,), generator=gen).tolist()
    kv, pos, slots = _server_step(layout, page_size, hk, d, dtype, lens_old, lens_new, pad_tokens=7, gen=gen)
    n = pos.shape[0]
    cache = attn.rotary.cos_sin_cache(4096, d, device="cuda")
    q = kvgen.randn((n, hq, d), dtype, "cuda", gen)
    k_new, v_new = kvgen.randn((n, hk, d), dtype, "cuda", gen), kvgen.randn((n, hk, d), dtype, "cuda", gen)
    k_old, v_old = kv.k.clone(), kv.v.clone()
    qo = attn.rotary.apply_and_write_kv(q, k_new, v_new, pos, cache, kv, slots)
    what = f"{layout} page_size={page_size} {dtype} n={n}"
    close(qo, attn.rotary.apply(q, k_new, pos, cache, backend="torch")[0].double(), dtype, "q " + what)
    kv_ref = KVCache.paged(k_old, v_old, kv.page_indptr, kv.page_indices, kv.seq_lens, layout=layout) \
        if kv.layout.paged else KVCache.token_pool(k_old, v_old, kv.page_indptr, kv.page_indices)
    attn.rotary.apply_and_write_kv(q, k_new, v_new, pos, cache, kv_ref, slots, backend="torch")
    for got, want, name in ((kv.k, kv_ref.k, "k"), (kv.v, kv_ref.v, "v")):
        torch.testing.assert_close(got, want, rtol=TOL[dtype], atol=TOL[dtype], equal_nan=True,
                                   msg=lambda m: f"{name} cache, {what}: {m}")
