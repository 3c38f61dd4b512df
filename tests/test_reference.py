"""The "torch" backend (attn.reference, through the public API) against kvgen's float64 definition."""
import math

import pytest
import torch

import attn
from kvgen import (FORMS, assert_close, attention_f64, flat_custom_mask, make_kv, randn, ragged_q, rel_err, tol)

DTYPES = (torch.float32, torch.float16, torch.bfloat16)


def alibi_like(score, batch, q_head, q_pos, kv_pos):
    """A logits transform that depends on every argument (works on ints and broadcastable tensors)."""
    return score - 0.05 * (q_head + 1) * (q_pos - kv_pos).abs() + 0.01 * batch


def _kv_lens_and_q_lens(mode, gen):
    if mode == "prefill":
        kv_lens = [0, 1, 7, 19, 2]
        return kv_lens, list(kv_lens)
    kv_lens = [0, 1, 9, 23, 5]                               # extend: q_len <= kv_len
    return kv_lens, [0, 1, 3, 23, 1]


# (mode, layout, page size, q_heads, kv_heads, head_dim, dtype, options): a sampled slice of the matrix
CASES = [
    ("prefill", "NHD", 3, 4, 4, 64, torch.float32, dict()),
    ("prefill", "HND", 16, 8, 2, 64, torch.float32, dict(causal=False)),
    ("prefill", "vllm", 16, 4, 1, 80, torch.float16, dict(window_left=4)),
    ("prefill", "token_pool", 1, 8, 1, 64, torch.bfloat16, dict(softcap=5.0)),
    ("prefill", "ragged", 1, 2, 2, 96, torch.float32, dict(custom_mask=True)),
    ("extend", "NHD", 1, 4, 1, 128, torch.float32, dict(window_left=2, softcap=3.0)),
    ("extend", "vllm", 3, 8, 2, 64, torch.float32, dict(logits_transform=alibi_like, sm_scale=0.3)),
    ("extend", "HND", 16, 4, 4, 64, torch.float16, dict(custom_mask=True, causal=False)),
    ("extend", "token_pool", 1, 4, 1, 32, torch.float32, dict(causal=False, window_left=5)),
    ("extend", "ragged", 1, 8, 8, 64, torch.bfloat16, dict(logits_transform=alibi_like, custom_mask=True)),
]


@pytest.mark.parametrize("mode,layout,ps,hq,hk,d,dtype,opts", CASES,
                         ids=[f"{c[0]}-{c[1]}-ps{c[2]}-{c[3]}x{c[4]}-d{c[5]}-{str(c[6])[6:]}-{'+'.join(c[7]) or 'causal'}"
                              for c in CASES])
def test_prefill(mode, layout, ps, hq, hk, d, dtype, opts, gen):
    kv_lens, q_lens = _kv_lens_and_q_lens(mode, gen)
    case = make_kv(kv_lens, layout, ps, kv_heads=hk, head_dim=d, dtype=dtype, gen=gen)
    q, q_indptr = ragged_q(q_lens, hq, d, dtype, gen=gen)
    opts = dict(opts)
    if opts.pop("custom_mask", False):
        opts["custom_mask"] = flat_custom_mask(q_lens, kv_lens, gen)
    out, lse = attn.prefill(q, case.kv, q_indptr, return_lse=True, backend="torch", **opts)
    want, want_lse = attention_f64(q, q_indptr, case.k_rows, case.v_rows, case.indptr, **opts)
    what = f"{mode} {case.describe()} q_lens={q_lens} hq={hq} {sorted(opts)}"
    assert out.dtype == dtype and out.shape == q.shape, what
    assert lse.dtype == torch.float32 and lse.shape == (q.shape[0], hq), what
    assert_close(out, want, dtype, what)
    assert rel_err(lse, want_lse) <= 1e-5, what + f": lse rel_err={rel_err(lse, want_lse):.3g}"
    # Without return_lse: the same output alone.
    out2 = attn.prefill(q, case.kv, q_indptr, backend="torch", **opts)
    assert torch.equal(out2, out), what


def test_prefill_no_key_seen_gives_zero_and_minus_inf(gen):
    """Fully masked queries (window 0 with non-causal custom mask all False, or kv_len 0)."""
    case = make_kv([4, 0], "NHD", 2, kv_heads=1, head_dim=32, gen=gen)
    q, q_indptr = ragged_q([2, 0], 2, 32, gen=gen)
    mask = torch.zeros(2 * 4, dtype=torch.bool)
    out, lse = attn.prefill(q, case.kv, q_indptr, custom_mask=mask, return_lse=True, backend="torch")
    assert torch.equal(out, torch.zeros_like(out))
    assert torch.isneginf(lse).all()


@pytest.mark.parametrize("layout,ps,hq,hk,dtype,opts", [
    ("HND", 16, 4, 4, torch.float32, dict()),
    ("vllm", 3, 8, 2, torch.float16, dict(window_left=3)),
    ("NHD", 1, 8, 1, torch.bfloat16, dict(softcap=4.0)),
    ("token_pool", 1, 4, 2, torch.float32, dict(logits_transform=alibi_like, sm_scale=0.2)),
    ("ragged", 1, 2, 1, torch.float32, dict(window_left=0)),
])
def test_decode(layout, ps, hq, hk, dtype, opts, gen):
    kv_lens = [0, 1, 2, 17, 33]
    d = 64
    case = make_kv(kv_lens, layout, ps, kv_heads=hk, head_dim=d, dtype=dtype, gen=gen)
    q = randn((len(kv_lens), hq, d), dtype, gen=gen)
    out, lse = attn.decode(q, case.kv, return_lse=True, backend="torch", **opts)
    q_indptr = torch.arange(len(kv_lens) + 1)
    want, want_lse = attention_f64(q, q_indptr, case.k_rows, case.v_rows, case.indptr, causal=True, **opts)
    what = f"decode {case.describe()} hq={hq} {sorted(opts)}"
    assert out.shape == q.shape and out.dtype == dtype, what
    assert_close(out, want, dtype, what)
    assert rel_err(lse, want_lse) <= 1e-5, what
    assert torch.equal(out[0], torch.zeros_like(out[0])) and torch.isneginf(lse[0]).all(), what + ": empty sequence"


def test_decode_equals_last_row_of_prefill(gen):
    case = make_kv([5, 12], "HND", 4, kv_heads=2, head_dim=64, gen=gen)
    q, q_indptr = ragged_q([5, 12], 4, 64, gen=gen)
    full = attn.prefill(q, case.kv, q_indptr, backend="torch")
    last = q_indptr[1:].long() - 1
    dec = attn.decode(q[last].contiguous(), case.kv, backend="torch")
    assert rel_err(dec, full[last]) <= 1e-6


# ----------------------------------------------------------------------------- merge

def _partials(gen, b=3, h=4, d=32, dtype=torch.float32):
    """Attention over each sequence's keys split at a random point, non-causal: (full, part a, part b)."""
    lens = [6, 1, 9][:b]
    case = make_kv(lens, "NHD", 16, kv_heads=h, head_dim=d, gen=gen)
    q = randn((b, h, d), dtype, gen=gen)
    qi = torch.arange(b + 1)
    cut = [int(torch.randint(0, n + 1, (1,), generator=gen)) for n in lens]
    parts = []
    for lo_hi in (lambda n, c: (0, c), lambda n, c: (c, n)):
        ks, vs, ip = [], [], [0]
        for i, n in enumerate(lens):
            lo, hi = lo_hi(n, cut[i])
            kr, vr = case.rows(i)
            ks.append(kr[lo:hi]); vs.append(vr[lo:hi]); ip.append(ip[-1] + hi - lo)
        parts.append(attention_f64(q, qi, torch.cat(ks), torch.cat(vs), torch.tensor(ip), causal=False))
    full = attention_f64(q, qi, case.k_rows, case.v_rows, case.indptr, causal=False)
    return full, parts, cut


def test_merge_state(gen):
    (o, l), ((oa, la), (ob, lb)), cut = _partials(gen)
    out, lse = attn.merge_state(oa.float(), la.float(), ob.float(), lb.float(), backend="torch")
    assert rel_err(out, o) <= 1e-5 and rel_err(lse, l) <= 1e-5, f"cut={cut}"


def test_merge_state_minus_inf_parts(gen):
    h, d = 4, 32
    out_a = randn((3, h, d), gen=gen)
    out_b = randn((3, h, d), gen=gen)
    lse_a = randn((3, h), gen=gen)
    lse_b = randn((3, h), gen=gen)
    lse_b[0] = float("-inf")                      # part b empty for row 0: a passes through
    lse_a[1] = float("-inf")                      # part a empty for row 1
    lse_a[2, :2] = lse_b[2, :2] = float("-inf")   # both empty: 0 and -inf
    out, lse = attn.merge_state(out_a, lse_a, out_b, lse_b, backend="torch")
    assert rel_err(out[0], out_a[0]) <= 1e-6 and rel_err(lse[0], lse_a[0]) <= 1e-6
    assert rel_err(out[1], out_b[1]) <= 1e-6 and rel_err(lse[1], lse_b[1]) <= 1e-6
    assert torch.equal(out[2, :2], torch.zeros(2, d)) and torch.isneginf(lse[2, :2]).all()
    want = (out_a[2, 2:].double() * lse_a[2, 2:, None].double().exp() + out_b[2, 2:].double()
            * lse_b[2, 2:, None].double().exp()) / (lse_a[2, 2:].double().exp() + lse_b[2, 2:].double().exp())[:, None]
    assert rel_err(out[2, 2:], want) <= 1e-5
    assert rel_err(lse[2, 2:], torch.logaddexp(lse_a[2, 2:].double(), lse_b[2, 2:].double())) <= 1e-6


@pytest.mark.parametrize("dtype", DTYPES)
def test_merge_states(dtype, gen):
    n, b, h, d = 4, 5, 2, 32
    outs = randn((n, b, h, d), dtype, gen=gen)
    lses = randn((n, b, h), gen=gen) * 3
    lses[1, 0] = float("-inf")
    lses[:, 1, 0] = float("-inf")
    out, lse = attn.merge_states(outs, lses, backend="torch")
    w = torch.softmax(lses.double(), dim=0).nan_to_num(0.0)
    want = (outs.double() * w[..., None]).sum(0)
    assert out.shape == (b, h, d) and lse.dtype == torch.float32
    assert_close(out, want, dtype, f"merge_states {dtype}", factor=2)
    assert rel_err(lse, torch.logsumexp(lses.double(), dim=0)) <= 1e-6
    assert torch.equal(out[1, 0].float(), torch.zeros(d)) and torch.isneginf(lse[1, 0])


def test_merge_of_split_prefill_equals_full(gen):
    """Two partial prefills from the reference itself (non-causal, split KV) merge to the full one."""
    (o, l), _, _ = _partials(gen, b=1)
    case = make_kv([10, 3], "vllm", 4, kv_heads=2, head_dim=32, gen=gen)
    q = randn((2, 4, 32), gen=gen)
    qi = torch.tensor([0, 1, 2], dtype=torch.int32)
    full, lse = attn.prefill(q, case.kv, qi, causal=False, return_lse=True, backend="torch")
    halves = []
    for sl in (slice(0, 4), slice(4, None)):
        ks, vs, ip = [], [], [0]
        for i in range(2):
            kr, vr = case.rows(i)
            ks.append(kr[sl]); vs.append(vr[sl]); ip.append(ip[-1] + kr[sl].shape[0])
        kv = attn.KVCache.ragged(torch.cat(ks), torch.cat(vs), torch.tensor(ip, dtype=torch.int32))
        halves.append(attn.prefill(q, kv, qi, causal=False, return_lse=True, backend="torch"))
    out, lse_m = attn.merge_state(*halves[0], *halves[1], backend="torch")
    assert rel_err(out, full) <= 1e-5 and rel_err(lse_m, lse) <= 1e-5


# ----------------------------------------------------------------------------- rotary

def _rotate_f64(x, pos, base, rotary_dim, style):
    """Rotation as complex multiplication, in float64."""
    x = x.double()
    r = rotary_dim
    inv = base ** (-torch.arange(0, r, 2, dtype=torch.float64) / r)
    ang = pos.double()[:, None] * inv[None]                       # [t, r/2]
    rot = torch.polar(torch.ones_like(ang), ang)[:, None, :]       # [t, 1, r/2]
    xr = x[..., :r]
    if style == "neox":
        z = torch.complex(xr[..., : r // 2], xr[..., r // 2:]) * rot
        y = torch.cat([z.real, z.imag], -1)
    else:
        z = torch.complex(xr[..., 0::2], xr[..., 1::2]) * rot
        y = torch.stack([z.real, z.imag], -1).flatten(-2)
    return torch.cat([y, x[..., r:]], -1)


@pytest.mark.parametrize("style", ["neox", "gptj"])
@pytest.mark.parametrize("rotary_dim", [64, 32])
def test_rotary_apply(style, rotary_dim, gen):
    t, d = 7, 64
    q = randn((t, 4, d), gen=gen)
    k = randn((t, 2, d), gen=gen)
    pos = torch.randint(0, 100, (t,), generator=gen)
    cache = attn.rotary.cos_sin_cache(128, rotary_dim)
    q2, k2 = attn.rotary.apply(q, k, pos, cache, style=style)
    assert rel_err(q2, _rotate_f64(q, pos, 10000.0, rotary_dim, style)) <= 1e-5
    assert rel_err(k2, _rotate_f64(k, pos, 10000.0, rotary_dim, style)) <= 1e-5


def test_prefill_with_rotary(gen):
    kv_lens, q_lens = [6, 0, 11], [2, 0, 11]
    case = make_kv(kv_lens, "HND", 4, kv_heads=2, head_dim=64, gen=gen)
    q, q_indptr = ragged_q(q_lens, 4, 64, gen=gen)
    cache = attn.rotary.cos_sin_cache(64, 64)
    out = attn.prefill(q, case.kv, q_indptr, rotary=attn.Rotary(cache, style="neox"), backend="torch")
    pos = torch.cat([torch.arange(kl - ql, kl) for kl, ql in zip(kv_lens, q_lens)])
    q_rot = _rotate_f64(q, pos, 10000.0, 64, "neox")
    want, _ = attention_f64(q_rot, q_indptr, case.k_rows, case.v_rows, case.indptr)
    assert rel_err(out, want) <= 1e-5


# ----------------------------------------------------------------------------- the f64 definition itself

def test_f64_definition_by_hand():
    """A 1-query, 2-key case computed by hand, so the definition is not only checked against attn."""
    q = torch.tensor([[[1.0, 0.0]]]).repeat(1, 1, 8)[:, :, :16]     # [1, 1, 16]
    k = torch.zeros(2, 1, 16)
    k[0, 0, 0], k[1, 0, 0] = 2.0, -1.0
    v = torch.zeros(2, 1, 16)
    v[0, 0, 0], v[1, 0, 1] = 1.0, 1.0
    s = torch.tensor([2.0, -1.0]) / 4.0                               # 1/sqrt(16)
    p = torch.softmax(s.double(), 0)
    out, lse = attention_f64(q, torch.tensor([0, 1]), k, v, torch.tensor([0, 2]))
    assert abs(float(out[0, 0, 0]) - float(p[0])) < 1e-12 and abs(float(out[0, 0, 1]) - float(p[1])) < 1e-12
    assert abs(float(lse[0, 0]) - math.log(math.exp(0.5) + math.exp(-0.25))) < 1e-12
