"""attn.prefill (backend "triton") and attn.BatchPrefill against the float32 reference.

CPU tier: a sampled slice of layouts x page sizes x head dims x GQA x masks / transforms / rotary,
with empty, length-1 and extend (kv_len > q_len) sequences, through the Triton interpreter, NaN in
every unowned cache slot and outputs poisoned before the launch. GPU tier (@pytest.mark.gpu): the
full matrix in fp16 / bf16, 32k contexts, a pool past 2**31 elements, CUDA-graph replay.
"""
from __future__ import annotations

import itertools
import random

import numpy as np
import pytest
import torch

import attn
from attn import configs
from attn import transforms as T
from kvgen import flat_custom_mask, make_kv, poison, ragged_q, randn, rel_err, tol

BACKEND = "triton"          # the backend the GPU tier report counts these tests under

LAYOUT_PAGES = [("ragged", 1), ("token_pool", 1), ("NHD", 1), ("NHD", 3), ("HND", 16), ("HND", 3), ("vllm", 16),
                ("vllm", 3)]
HEAD_DIMS = [64, 80, 96, 128, 192, 256]
GROUPS = [1, 4, 8]
FEATURES = ["causal", "noncausal", "window", "softcap", "mask", "mask_causal_window", "alibi", "soft_cap_fn",
            "rotary_neox", "rotary_gptj_partial"]


def _sample(n: int, seed: int = 0):
    """n cases of the full product, every value of every axis present (fixed: stable test ids)."""
    full = list(itertools.product(LAYOUT_PAGES, HEAD_DIMS, GROUPS, FEATURES))
    random.Random(seed).shuffle(full)
    picked = full[:n]
    for axis, values in ((0, LAYOUT_PAGES), (1, HEAD_DIMS), (2, GROUPS), (3, FEATURES)):
        for v in values:
            if not any(c[axis] == v for c in picked):
                picked.append(next(c for c in full if c[axis] == v))
    return picked


CPU_CASES = _sample(30)


def _options(feature: str, q_lens, kv_lens, head_dim: int, q_heads: int, layout: str, gen, device):
    """attn.prefill keyword arguments for a feature of the matrix."""
    kw = dict(causal=True)
    if feature == "noncausal":
        kw["causal"] = False
    elif feature == "window":
        kw["window_left"] = 7
    elif feature == "softcap":
        kw.update(softcap=2.5, sm_scale=0.3)
    elif feature == "mask":
        kw.update(causal=False, custom_mask=flat_custom_mask(q_lens, kv_lens, gen).to(device))
    elif feature == "mask_causal_window":
        kw.update(window_left=20, custom_mask=flat_custom_mask(q_lens, kv_lens, gen, p=0.5).to(device))
    elif feature == "alibi":
        kw["logits_transform"] = T.alibi(q_heads)
    elif feature == "soft_cap_fn":
        kw.update(logits_transform=T.soft_cap(3.0), sm_scale=0.5)
    elif feature.startswith("rotary"):
        style = "neox" if "neox" in feature else "gptj"
        r = head_dim if "partial" not in feature else head_dim // 2 - (head_dim // 2) % 2
        cache = attn.rotary.cos_sin_cache(max(kv_lens) + 8, head_dim, device=device)
        kw["rotary"] = attn.Rotary(cache, style, rotary_dim=r, rotate_k=layout == "ragged")
    return kw


def _reference(q, kv, q_indptr, kw, return_lse=True):
    return attn.prefill(q, kv, q_indptr, backend="torch", return_lse=return_lse, **kw)


def _lens(gen, long: int = 50):
    a = int(torch.randint(17, long, (1,), generator=gen))
    b = int(torch.randint(2, long, (1,), generator=gen))
    c = int(torch.randint(1, b + 1, (1,), generator=gen))
    # empty, length 1, prefill, extend (kv_len > q_len), a cached prefix with no new query
    return [0, 1, a, c, 0], [0, 1, a, b, 6]


def _check_case(layout, page_size, head_dim, group, feature, dtype, device, gen, *, kv_heads=2, long=50,
                functional=True):
    q_lens, kv_lens = _lens(gen, long)
    case = make_kv(kv_lens, layout=layout, page_size=page_size, kv_heads=kv_heads, head_dim=head_dim, dtype=dtype,
                   device=device, gen=gen)
    hq = kv_heads * group
    q, q_indptr = ragged_q(q_lens, hq, head_dim, dtype, device, gen)
    kw = _options(feature, q_lens, kv_lens, head_dim, hq, layout, gen, device)
    what = f"{case.describe()} q_lens={q_lens} group={group} {feature}"
    ref, ref_lse = _reference(q, case.kv, q_indptr, kw)
    # The kernel rounds rotated q to its dtype, as an unfused rotation would store it; the reference
    # keeps it in float32. In float32 that rounding is exact, so no allowance there.
    factor = 3.0 if "rotary" in feature and dtype != torch.float32 else 1.0

    # Plan/run into poisoned outputs with spare rows: rows past the batch must stay untouched.
    total = q.shape[0]
    q_big = torch.cat([q, torch.full((3, hq, head_dim), float("nan"), dtype=dtype, device=device)])
    out = poison(torch.empty_like(q_big))
    lse = poison(torch.empty(total + 3, hq, dtype=torch.float32, device=device))
    plan = attn.BatchPrefill(max_tokens=total + 3, max_batch=8, device=device, num_q_heads=hq)
    plan.plan(q_indptr, case.kv, return_lse=True, **kw)
    got, got_lse = plan.run(q_big, case.kv, out=out, lse=lse)
    e, el = rel_err(got[:total], ref), rel_err(got_lse[:total], ref_lse)
    assert e <= tol(dtype) * factor, f"BatchPrefill out: rel_err={e:.3g} ({what})"
    assert el <= 1e-4 * factor, f"BatchPrefill lse: rel_err={el:.3g} ({what})"
    assert torch.isnan(got[total:]).all() and torch.isnan(got_lse[total:]).all(), f"wrote past the batch ({what})"

    if functional:
        o = attn.prefill(q, case.kv, q_indptr, backend="triton", **kw)
        e = rel_err(o, ref)
        assert e <= tol(dtype) * factor, f"attn.prefill: rel_err={e:.3g} ({what})"


@pytest.mark.parametrize("layout_page,head_dim,group,feature", CPU_CASES,
                         ids=[f"{lp[0]}-p{lp[1]}-d{d}-g{g}-{f}" for lp, d, g, f in CPU_CASES])
def test_prefill_matrix(layout_page, head_dim, group, feature, gen, device):
    layout, page_size = layout_page
    # fp16 on a third of the cases (bf16 dots are wrong in the interpreter: GPU tier only)
    dtype = torch.float16 if (head_dim + group) % 3 == 0 else torch.float32
    kv_heads = 1 if group == 8 else 2                    # keep the interpreter's tiles few
    _check_case(layout, page_size, head_dim, group, feature, dtype, device, gen, kv_heads=kv_heads,
                functional=CPU_CASES.index((layout_page, head_dim, group, feature)) % 2 == 0)


# ---------------------------------------------------------------------------- custom mask skipping
def test_mask_block_lists_skip_masked_blocks():
    """The plan lists only live blocks: a masked tail halves the list; a fully masked request has none;
    fully visible blocks are listed as such (no per-element mask work)."""
    import numpy as np
    from attn.scheduling import prefill_items
    from attn.triton_kernels.mask_summary import block_lists
    tq, bn = 16, 16
    q_lens, kv_lens = np.array([64, 32]), np.array([128, 64])
    m0 = torch.ones(64, 128, dtype=torch.bool)
    m0[:, 64:] = False                                  # the second half of the keys: masked
    m0[5, 3] = False                                    # one hole: block 0 of tile 0 is partial
    m1 = torch.zeros(32, 64, dtype=torch.bool)          # nothing visible
    mask = torch.cat([m0.flatten(), m1.flatten()])
    items = prefill_items(q_lens, tq)
    bi, ids = block_lists(items, mask, q_lens, kv_lens, tq, bn, causal=False, window_left=-1)
    per_item = [(ids[bi[2 * i]:bi[2 * i + 1]].tolist(), ids[bi[2 * i + 1]:bi[2 * i + 2]].tolist())
                for i in range(len(items))]
    assert per_item[0] == ([0], [1, 2, 3]), per_item[0]
    assert all(p == ([], [0, 1, 2, 3]) for p in per_item[1:4]), per_item[1:4]
    assert all(p == ([], []) for p in per_item[4:]), per_item[4:]
    assert len(ids) == 16                                # of 4 * 8 + 2 * 4 = 40 blocks
    # causal folded in: the diagonal block is partial, the ones before full, the ones after gone
    full_mask = torch.ones(32 * 32, dtype=torch.bool)
    q1 = np.array([32])
    bi, ids = block_lists(prefill_items(q1, tq), full_mask, q1, q1, tq, bn, causal=True, window_left=-1)
    assert bi.tolist() == [0, 1, 1, 2, 3] and ids.tolist() == [0, 1, 0], (bi, ids)


def test_mask_fully_masked_rows(gen, device):
    """Rows whose mask hides every key give out 0 and lse -inf; block skipping keeps other rows exact."""
    q_lens, kv_lens = [20, 9], [40, 33]
    case = make_kv(kv_lens, layout="HND", page_size=3, kv_heads=2, head_dim=64, device=device, gen=gen)
    q, qi = ragged_q(q_lens, 4, 64, device=device, gen=gen)
    m = flat_custom_mask(q_lens, kv_lens, gen, p=0.6)
    m[: 5 * 40] = False                                  # rows 0-4 of request 0 see nothing
    m[20 * 40:] = False                                  # request 1: nothing at all
    m[5 * 40 + 30: 6 * 40] = False
    m = m.to(device)
    out, lse = attn.prefill(q, case.kv, qi, causal=False, custom_mask=m, return_lse=True, backend="triton")
    ref, ref_lse = _reference(q, case.kv, qi, dict(causal=False, custom_mask=m))
    assert rel_err(out, ref) <= 1e-5 and rel_err(lse, ref_lse) <= 1e-5
    assert (out[:5] == 0).all() and torch.isneginf(lse[:5]).all() and torch.isneginf(lse[20:]).all()


def test_pack_mask_is_numpy_packbits_per_row(gen):
    from attn.triton_kernels.mask_summary import pack_mask
    q_lens, kv_lens = np.array([3, 0, 2, 1]), np.array([13, 4, 8, 1])
    m = flat_custom_mask(q_lens, kv_lens, gen, p=0.5)
    packed, indptr = pack_mask(m, q_lens, kv_lens)
    want, bit = [], 0
    for lq, lk in zip(q_lens, kv_lens):
        rows = m[bit: bit + lq * lk].view(lq, lk).numpy()
        bit += lq * lk
        want.append(np.packbits(rows, axis=1, bitorder="little").reshape(-1))
    want = np.concatenate(want)
    assert indptr.tolist() == [0, 6, 6, 8, 9]
    assert packed[: indptr[-1]].numpy().tolist() == want.tolist()


def test_batch_prefill_masks_odd_lengths_replanned(gen, device):
    """Packed rows of kv_len not a multiple of 8 (the last byte of a row is partial, the next row's
    bits follow in the next byte), a request without queries, and a re-plan into the same buffers."""
    plan = attn.BatchPrefill(max_tokens=96, max_batch=5, device=device, num_q_heads=4, max_mask_bits=8000,
                             max_kv_len=90)
    for q_lens, kv_lens in [([5, 1, 70, 0, 2], [13, 1, 85, 3, 33]), ([9, 40], [9, 47])]:
        case = make_kv(kv_lens, layout="NHD", page_size=5, kv_heads=2, head_dim=32, device=device, gen=gen)
        q, qi = ragged_q(q_lens, 4, 32, device=device, gen=gen)
        m = flat_custom_mask(q_lens, kv_lens, gen, p=0.5).to(device)
        plan.plan(qi, case.kv, causal=False, custom_mask=m)
        ref, _ = _reference(q, case.kv, qi, dict(causal=False, custom_mask=m))
        assert rel_err(plan.run(q, case.kv), ref) <= 1e-5, (q_lens, kv_lens)


# ---------------------------------------------------------------------------- transforms, rotary
@pytest.mark.parametrize("name", ["alibi", "soft_cap"])
def test_transform_examples(name, gen, device):
    case = make_kv([30, 45], layout="NHD", page_size=16, kv_heads=2, head_dim=64, device=device, gen=gen)
    q, qi = ragged_q([30, 17], 8, 64, device=device, gen=gen)
    q = q * 3
    t = T.alibi(8) if name == "alibi" else T.soft_cap(4.0)
    got = attn.prefill(q, case.kv, qi, logits_transform=t, backend="triton")
    ref = attn.prefill(q, case.kv, qi, logits_transform=t, backend="torch")
    plain = attn.prefill(q, case.kv, qi, backend="torch")
    assert rel_err(got, ref) <= 1e-5, name
    assert rel_err(plain, ref) > 1e-2, f"{name} changed nothing: the test would not see it missing"
    if name == "soft_cap":       # the same function as the built-in option
        assert rel_err(got, attn.prefill(q, case.kv, qi, softcap=4.0, backend="torch")) <= 1e-5


def test_transform_cache_keys_differ(gen, device):
    """Two parameters of one example are two kernels (no stale compile-cache hit)."""
    case = make_kv([24], layout="ragged", kv_heads=1, head_dim=64, device=device, gen=gen)
    q, qi = ragged_q([24], 4, 64, device=device, gen=gen)
    a = attn.prefill(q, case.kv, qi, logits_transform=T.alibi(4), backend="triton")
    b = attn.prefill(q, case.kv, qi, logits_transform=T.alibi(16), backend="triton")
    assert rel_err(b, attn.prefill(q, case.kv, qi, logits_transform=T.alibi(16), backend="torch")) <= 1e-5
    assert rel_err(a, b) > 1e-3


def test_bf16_matches_the_reference_in_the_interpreter(gen, device):
    """bf16 prefill, decode and rotate_k (the interpreter's own bf16 tl.dot is wrong, so the
    launcher upcasts there; GPU binaries keep bf16 operands)."""
    from attn.triton_kernels.attention import dot_precision
    dt = torch.bfloat16
    assert dot_precision(torch.empty(1, dtype=dt)) == "upcast"
    assert dot_precision(torch.empty(1, dtype=torch.float16)) is None
    assert dot_precision(torch.empty(1, dtype=torch.float32)) == "ieee"
    q_lens, kv_lens = [20, 9, 1], [20, 30, 5]
    case = make_kv(kv_lens, layout="ragged", page_size=1, kv_heads=2, head_dim=64, dtype=dt, device=device, gen=gen)
    q, qi = ragged_q(q_lens, 8, 64, dt, device=device, gen=gen)
    rot = attn.Rotary(attn.rotary.cos_sin_cache(64, 64, device=device), "neox", rotate_k=True)
    for kw in ({}, dict(rotary=rot)):
        got = attn.prefill(q, case.kv, qi, backend="triton", **kw)
        assert rel_err(got, attn.prefill(q, case.kv, qi, backend="torch", **kw)) <= tol(dt), kw
    paged = make_kv([7, 40, 1], layout="HND", page_size=16, kv_heads=2, head_dim=64, dtype=dt, device=device, gen=gen)
    qd = q[:3].contiguous()
    assert rel_err(attn.decode(qd, paged.kv, backend="triton"), attn.decode(qd, paged.kv, backend="torch")) <= tol(dt)


@pytest.mark.parametrize("style,partial,rotate_k", [("neox", False, False), ("gptj", True, False),
                                                     ("neox", True, True), ("gptj", False, True)])
def test_rotary_fused(style, partial, rotate_k, gen, device):
    d = 64
    layout = "ragged" if rotate_k else "HND"
    q_lens, kv_lens = [1, 19, 0], [1, 40, 5]
    case = make_kv(kv_lens, layout=layout, page_size=3, kv_heads=2, head_dim=d, device=device, gen=gen)
    q, qi = ragged_q(q_lens, 4, d, device=device, gen=gen)
    cache = attn.rotary.cos_sin_cache(64, d, base=500.0, device=device)
    rot = attn.Rotary(cache, style, rotary_dim=24 if partial else None, rotate_k=rotate_k)
    got = attn.prefill(q, case.kv, qi, rotary=rot, backend="triton")
    ref = attn.prefill(q, case.kv, qi, rotary=rot, backend="torch")
    assert rel_err(got, ref) <= 1e-5, (style, partial, rotate_k)
    # and it is the rotation done outside: q at kv_len - q_len + i
    pos = torch.cat([torch.arange(k - n, k) for n, k in zip(q_lens, kv_lens)]).to(device)
    q_rot, _ = attn.rotary.apply(q, q[:, :2], pos, cache, style=style, rotary_dim=rot.rotary_dim, backend="torch")
    if not rotate_k:
        assert rel_err(got, attn.prefill(q_rot, case.kv, qi, backend="torch")) <= 1e-5


def test_batch_prefill_rotary_replanned_over_one_q_buffer(gen, device):
    """BatchPrefill with rotary over one static q buffer (as a captured graph holds it), re-planned
    for batches of other sizes and positions: every run matches the reference (q at its new
    positions), and the caller's q is left as it was."""
    d, max_tokens = 32, 64
    cache = attn.rotary.cos_sin_cache(128, d, base=300.0, device=device)
    plan = attn.BatchPrefill(max_tokens=max_tokens, max_batch=3, device=device, num_q_heads=4)
    q_static = randn((max_tokens, 4, d), torch.float32, device, gen)
    for q_lens, kv_lens, style in [([20, 3], [50, 3], "neox"), ([60], [100], "gptj"), ([1, 2, 5], [9, 2, 77], "neox")]:
        case = make_kv(kv_lens, layout="HND", page_size=4, kv_heads=2, head_dim=d, device=device, gen=gen)
        qi = torch.tensor([0] + list(itertools.accumulate(q_lens)), dtype=torch.int32, device=device)
        rot = attn.Rotary(cache, style)
        plan.plan(qi, case.kv, rotary=rot)
        q_static.copy_(randn((max_tokens, 4, d), torch.float32, device, gen))
        before = q_static.clone()
        got = plan.run(q_static, case.kv)[: sum(q_lens)]
        assert torch.equal(q_static, before), "run() must not rotate the caller's q in place"
        ref = _reference(q_static[: sum(q_lens)].clone(), case.kv, qi, dict(rotary=rot), return_lse=False)
        assert rel_err(got, ref) <= 1e-5, (q_lens, kv_lens, style)


# ---------------------------------------------------------------------------- plan / run
def test_batch_prefill_replan(gen, device):
    """One BatchPrefill object, several batches: buffers reused, each run matches its batch."""
    plan = attn.BatchPrefill(max_tokens=80, max_batch=4, device=device, num_q_heads=4)
    for q_lens, kv_lens, layout, ps in [([40, 40], [40, 60], "NHD", 3), ([80], [80], "ragged", 1),
                                        ([1, 2, 3, 70], [9, 2, 3, 70], "vllm", 16), ([0, 0], [0, 5], "HND", 16)]:
        case = make_kv(kv_lens, layout=layout, page_size=ps, kv_heads=2, head_dim=64, device=device, gen=gen,
                       page_table=layout == "NHD")
        q, qi = ragged_q(q_lens, 4, 64, device=device, gen=gen)
        work = plan._work
        plan.plan(qi, case.kv, causal=True)
        assert work is None or plan._work is work, "the work list must not be reallocated within the maximum"
        got = plan.run(q, case.kv)
        assert got.shape == q.shape
        ref = _reference(q, case.kv, qi, {}, return_lse=False)
        assert rel_err(got, ref) <= 1e-5, f"{layout} {q_lens} {kv_lens}"


@pytest.mark.parametrize("block_m", [16, 32])
@pytest.mark.parametrize("layout,page_size", [("NHD", 4), ("HND", 2), ("vllm", 8), ("HND", 32)])
def test_prefill_block_over_several_pages(layout, page_size, block_m, gen, device):
    """KV blocks of 16 keys over 2-8 shuffled pages (one page number a run of keys), or inside
    pages of 32: causal and window blocks, extends whose prefix ends inside a page, a length-1
    sequence; at 32 query rows a tile, the slots are computed once for every block."""
    q_lens, kv_lens = [13, 1, 40], [37, 1, 40]
    case = make_kv(kv_lens, layout=layout, page_size=page_size, kv_heads=2, head_dim=64, device=device, gen=gen)
    q, qi = ragged_q(q_lens, 4, 64, device=device, gen=gen)
    for opts in (dict(causal=True), dict(causal=True, window_left=9)):
        with configs.override("prefill", dict(BLOCK_N=16, BLOCK_M=block_m)):
            got = attn.BatchPrefill(max_tokens=64, max_batch=3, device=device, num_q_heads=4).plan(
                qi, case.kv, **opts).run(q, case.kv)
        ref = _reference(q, case.kv, qi, opts, return_lse=False)
        assert rel_err(got, ref) <= 1e-5, (layout, page_size, opts)


def test_batch_prefill_errors(gen, device):
    case = make_kv([10, 12], layout="NHD", page_size=3, kv_heads=2, head_dim=64, device=device, gen=gen)
    _, qi = ragged_q([10, 12], 4, 64, device=device, gen=gen)
    with pytest.raises(ValueError, match="num_q_heads"):
        attn.BatchPrefill(max_tokens=64, max_batch=2, device=device).plan(qi, case.kv)
    with pytest.raises(ValueError, match="max_tokens=16"):
        attn.BatchPrefill(max_tokens=16, max_batch=2, device=device, num_q_heads=4).plan(qi, case.kv)
    with pytest.raises(ValueError, match="max_batch=1"):
        attn.BatchPrefill(max_tokens=64, max_batch=1, device=device, num_q_heads=4).plan(qi, case.kv)
    with pytest.raises(RuntimeError, match="before plan"):
        attn.BatchPrefill(max_tokens=64, max_batch=2, device=device, num_q_heads=4).run(torch.zeros(1), case.kv)
    short = attn.Rotary(attn.rotary.cos_sin_cache(11, 64, device=device), "neox")
    with pytest.raises(ValueError, match="cos_sin_cache must have a row .* kv_len=12; got 11 rows"):
        attn.BatchPrefill(max_tokens=64, max_batch=2, device=device, num_q_heads=4).plan(qi, case.kv, rotary=short)
    q, _ = ragged_q([10, 12], 4, 64, device=device, gen=gen)
    with pytest.raises(ValueError, match="kv_len=12; got 11 rows"):
        attn.prefill(q, case.kv, qi, rotary=short, backend="triton")


def test_batch_prefill_refuses_what_a_captured_graph_cannot_follow(gen, device):
    """After capture (run() records the config it launched), a plan that needs a larger buffer or
    another kernel config must fail rather than leave the graph reading stale buffers."""
    case = make_kv([10, 12], layout="HND", page_size=4, kv_heads=2, head_dim=64, device=device, gen=gen)
    _, qi = ragged_q([10, 12], 4, 64, device=device, gen=gen)
    plan = attn.BatchPrefill(max_tokens=64, max_batch=2, device=device, num_q_heads=4, max_kv_pages=6)
    plan.plan(qi, case.kv)
    plan._captured_cfg = plan.cfg                 # what run() records while a CUDA graph is captured
    plan.plan(qi, case.kv)                        # the same shape: fine
    big = make_kv([10, 40], layout="HND", page_size=4, kv_heads=2, head_dim=64, device=device, gen=gen)
    _, qi_big = ragged_q([10, 40], 4, 64, device=device, gen=gen)
    with pytest.raises(ValueError, match="max_kv_pages"):
        plan.plan(qi_big, big.kv)
    plan._captured_cfg = dict(plan.cfg, BLOCK_N=plan.cfg["BLOCK_N"] * 2)
    with pytest.raises(ValueError, match="kernel config"):
        plan.plan(qi, case.kv)


def test_compile_specs_and_aot():
    """The prefill specs are well formed, and two compile ahead of time (sm_90, gfx942) in a fresh
    process: under TRITON_INTERPRET=1 the kernels are interpreter functions, not compilable."""
    import os
    import subprocess
    import sys
    from attn.triton_kernels.prefill import compile_specs
    specs = compile_specs()
    assert len({s.id for s in specs}) == len(specs)
    code = (
        "import triton\n"
        "from attn.triton_kernels.prefill import compile_specs\n"
        "from attn.triton_kernels.specs import gpu_target\n"
        "specs = compile_specs()\n"
        "for cfg, t in [('/bf16/d128/g4/mask/NHD|HND', 'sm_90'),\n"
        "               ('/fp16/d80/g1/causal/NHD|HND', 'gfx942')]:\n"
        "    (s,) = [s for s in specs if s.config.endswith(cfg) and t in s.targets]\n"
        "    triton.compile(s.source(), target=gpu_target(t), options=s.options_for(t))\n")
    env = {k: v for k, v in os.environ.items() if k != "TRITON_INTERPRET"}
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, timeout=600)
    assert r.returncode == 0, r.stderr[-3000:]


# ============================================================================ GPU tier
GPU_AXES = list(itertools.product(LAYOUT_PAGES + [("NHD", 256), ("HND", 7)], [torch.float16, torch.bfloat16]))


@pytest.mark.gpu
@pytest.mark.parametrize("layout_page,dtype", GPU_AXES, ids=[f"{lp[0]}-p{lp[1]}-{str(dt)[6:]}" for lp, dt in GPU_AXES])
def test_gpu_prefill_matrix(layout_page, dtype, gen):
    """Every head dim on every layout, page size and dtype; features and groups rotate across the
    cases so that each feature meets every layout (a full product would compile ~1000 kernels)."""
    layout, page_size = layout_page
    k = GPU_AXES.index((layout_page, dtype))
    for j, head_dim in enumerate(HEAD_DIMS):
        feature = FEATURES[(j + 3 * k) % len(FEATURES)]
        group = GROUPS[(j + k) % 3]
        _check_case(layout, page_size, head_dim, group, feature, dtype, "cuda", gen, kv_heads=2, long=700,
                    functional=j % 2 == 0)


@pytest.mark.gpu
@pytest.mark.parametrize("head_dim", [64, 128, 256])
def test_gpu_rotary_rotating_k_on_load(head_dim, gen):
    """rotate_k over a ragged cache at the head dims whose tiles it reshapes (attn.configs:
    128x64 / 3 stages needed more shared memory than Hopper has at d80-d128)."""
    q_lens, kv_lens = [700, 300, 1], [700, 900, 33]
    case = make_kv(kv_lens, layout="ragged", page_size=1, kv_heads=8, head_dim=head_dim, dtype=torch.bfloat16,
                   device="cuda", gen=gen)
    q, qi = ragged_q(q_lens, 32, head_dim, torch.bfloat16, device="cuda", gen=gen)
    cache = attn.rotary.cos_sin_cache(1024, head_dim, device="cuda")
    rot = attn.Rotary(cache, "neox", rotate_k=True)
    got = attn.prefill(q, case.kv, qi, rotary=rot, backend="triton")
    ref = attn.prefill(q, case.kv, qi, rotary=rot, backend="torch")
    assert rel_err(got, ref) <= tol(torch.bfloat16), head_dim


@pytest.mark.gpu
@pytest.mark.parametrize("dtype", [torch.float16, torch.bfloat16])
def test_gpu_long_context(dtype, gen):
    """32k contexts: an extend of 512 queries over a 32k paged prefix, beside a 4k prefill."""
    q_lens, kv_lens = [512, 4096], [32768, 4096]
    case = make_kv(kv_lens, layout="HND", page_size=16, kv_heads=8, head_dim=128, dtype=dtype, device="cuda",
                   gen=gen, extra_pages=0)
    q, qi = ragged_q(q_lens, 32, 128, dtype, "cuda", gen)
    for kw in (dict(causal=True), dict(causal=True, window_left=4000)):
        got = attn.prefill(q, case.kv, qi, backend="triton", **kw)
        ref = _reference(q, case.kv, qi, kw, return_lse=False)
        assert rel_err(got, ref) <= tol(dtype), f"{kw} rel_err={rel_err(got, ref):.3g}"


@pytest.mark.gpu
def test_gpu_pool_past_2_31_elements(gen):
    """A pool of more than 2**31 elements per K / V with the sequence's pages at its end."""
    ps, h, d = 16, 8, 128
    pages = 2 ** 31 // (ps * h * d) + 64
    need = (3000 + ps - 1) // ps
    free = torch.cuda.mem_get_info()[0]
    if free < 2 * pages * ps * h * d * 2 + 2 ** 31:
        pytest.skip(f"needs {2 * pages * ps * h * d * 2 / 2 ** 30:.1f} GiB free")
    k = torch.empty(pages, ps, h, d, dtype=torch.bfloat16, device="cuda")
    v = torch.empty_like(k)
    k.view(torch.int16)[: pages - need].fill_(0x7fc0)      # NaN everywhere no sequence owns
    v.view(torch.int16)[: pages - need].fill_(0x7fc0)
    k[pages - need:].normal_()
    v[pages - need:].normal_()
    idx = torch.arange(pages - need, pages, dtype=torch.int32, device="cuda").flip(0)
    kv = attn.KVCache.paged(k, v, torch.tensor([0, need], dtype=torch.int32, device="cuda"), idx,
                            torch.tensor([3000], dtype=torch.int32, device="cuda"), layout="NHD")
    q, qi = ragged_q([700], 32, d, torch.bfloat16, "cuda", gen)
    got = attn.prefill(q, kv, qi, backend="triton")
    ref = _reference(q, kv, qi, {}, return_lse=False)
    assert rel_err(got, ref) <= tol(torch.bfloat16), f"rel_err={rel_err(got, ref):.3g}"


@pytest.mark.gpu
@pytest.mark.parametrize("variant", ["causal", "masked", "rotary"])
def test_gpu_cuda_graph_replay(variant, gen):
    """run() captured once replays correctly for two different batches of the planned maximum size
    (rotary: q rotated on load at the positions of each replan)."""
    masked = variant == "masked"
    hq, hk, d, max_tokens, dtype = 32, 8, 128, 4096, torch.bfloat16
    batches = [([1024, 1024, 2048], [1024, 3000, 2048]), ([4000, 96], [4000, 500])]
    cases = []
    k_rows = torch.randn(12000, hk, d, dtype=dtype, device="cuda")
    v_rows = torch.randn_like(k_rows)
    for q_lens, kv_lens in batches:
        case = make_kv(kv_lens, layout="HND", page_size=16, kv_heads=hk, head_dim=d, dtype=dtype, device="cuda",
                       gen=gen, k_rows=k_rows[: sum(kv_lens)], v_rows=v_rows[: sum(kv_lens)], extra_pages=0)
        cases.append((q_lens, kv_lens, case))
    # One KV storage for both batches (as an engine's cache): pages of batch 2 live in the same tensors.
    k_store = torch.cat([cases[0][2].kv.k, cases[1][2].kv.k])
    v_store = torch.cat([cases[0][2].kv.v, cases[1][2].kv.v])
    off = cases[0][2].kv.k.shape[0]
    kvs = []
    for i, (q_lens, kv_lens, case) in enumerate(cases):
        idx = case.kv.page_indices + (off if i else 0)
        kvs.append(attn.KVCache.paged(k_store, v_store, case.kv.page_indptr, idx, case.kv.seq_lens, layout="HND"))
    plan = attn.BatchPrefill(max_tokens=max_tokens, max_batch=4, device="cuda", num_q_heads=hq,
                             max_kv_pages=2048, max_mask_bits=2 * 4096 * 3000 + 4096 * 4096, max_kv_len=4096)
    q_static = torch.randn(max_tokens, hq, d, dtype=dtype, device="cuda")
    out_static = torch.empty_like(q_static)

    rot = attn.Rotary(attn.rotary.cos_sin_cache(4096, d, device="cuda")) if variant == "rotary" else None

    def options(q_lens, kv_lens):
        m = flat_custom_mask(q_lens, kv_lens, gen, p=0.5).cuda() if masked else None
        return dict(causal=not masked, custom_mask=m, rotary=rot)

    q_lens, kv_lens, _ = cases[0]
    qi = torch.tensor([0] + list(itertools.accumulate(q_lens)), dtype=torch.int32, device="cuda")
    opts = options(q_lens, kv_lens)
    plan.plan(qi, kvs[0], **opts)
    plan.run(q_static, kvs[0], out=out_static)          # compile outside the capture
    torch.cuda.synchronize()
    g = torch.cuda.CUDAGraph()
    with torch.cuda.graph(g):
        plan.run(q_static, kvs[0], out=out_static)
    for i, (q_lens, kv_lens, _) in enumerate(cases):
        qi = torch.tensor([0] + list(itertools.accumulate(q_lens)), dtype=torch.int32, device="cuda")
        opts = options(q_lens, kv_lens)
        plan.plan(qi, kvs[i], **opts)
        q_static.normal_()
        out_static.fill_(float("nan"))
        g.replay()
        torch.cuda.synchronize()
        ref = _reference(q_static, kvs[i], qi, opts, return_lse=False)
        e = rel_err(out_static[: sum(q_lens)], ref)
        assert e <= tol(dtype), f"batch {i} replay rel_err={e:.3g}"
