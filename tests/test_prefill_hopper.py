"""The warp-specialized Hopper prefill (triton_kernels/prefill_hopper.py) against the reference.

GPU tier only, on sm_90: the kernel is Gluon (no interpreter) and Hopper's (TMA, wgmma). Its
compile check runs on the CPU tier through the compile matrix (its compile_specs()), and
supports() is checked here without a GPU.
"""
from __future__ import annotations

import pytest
import torch

import attn
from kvgen import make_kv, poison, ragged_q, rel_err, tol

BACKEND = "triton"

hopper = pytest.mark.skipif(not (torch.cuda.is_available() and torch.version.cuda
                                 and torch.cuda.get_device_capability() == (9, 0)), reason="needs an sm_90 GPU")


def _ph():
    from attn.triton_kernels import prefill_hopper
    return prefill_hopper


# Lengths that end mid-block, on a block, one past it, single tokens and a long one; with kv_len >
# q_len (extend over a cached prefix in the same rows) for the second list.
PREFILL = ([1, 127, 128, 129, 300, 1000], [1, 127, 128, 129, 300, 1000])
EXTEND = ([5, 128, 64, 1], [300, 128, 700, 129])


@pytest.mark.gpu
@hopper
@pytest.mark.parametrize("lens", [PREFILL, EXTEND], ids=["prefill", "extend"])
@pytest.mark.parametrize("head_dim", [64, 128])
@pytest.mark.parametrize("dtype", [torch.bfloat16, torch.float16])
@pytest.mark.parametrize("causal,return_lse", [(True, False), (False, False), (True, True)])
@pytest.mark.parametrize("group", [1, 4])
@pytest.mark.parametrize("layout,page_size", [("ragged", 1), ("NHD", 16), ("HND", 16), ("HND", 256)])
def test_matches_reference(lens, head_dim, dtype, causal, return_lse, group, layout, page_size, gen):
    q_lens, kv_lens = lens
    kv_heads = 2
    hq = kv_heads * group
    # NaN in the rows / pages no sequence owns, pages shuffled: the tail block's V must be cleaned.
    case = make_kv(kv_lens, layout=layout, page_size=page_size, kv_heads=kv_heads, head_dim=head_dim, dtype=dtype,
                   device="cuda", gen=gen, extra_pages=200 if layout == "ragged" else 3)
    q, q_indptr = ragged_q(q_lens, hq, head_dim, dtype, "cuda", gen)
    assert _ph().supports(q, case.kv)
    ref = attn.prefill(q, case.kv, q_indptr, backend="torch", causal=causal, return_lse=True)
    got = _ph().prefill(q, case.kv, q_indptr, causal=causal, return_lse=return_lse)
    o = got[0] if return_lse else got
    what = f"{case.describe()} q_lens={q_lens} d={head_dim} g={group} causal={causal} {dtype}"
    assert not torch.isnan(o).any(), what
    assert rel_err(o, ref[0]) <= tol(dtype), what
    if return_lse:
        assert rel_err(got[1], ref[1]) <= 1e-3, what


@pytest.mark.gpu
@hopper
@pytest.mark.parametrize("lens", [PREFILL, EXTEND], ids=["prefill", "extend"])
@pytest.mark.parametrize("head_dim", [64, 128])
@pytest.mark.parametrize("causal,return_lse,blocks", [
    (True, True, (128, 2)), (False, False, (128, 2)), (True, False, (128, 2)), (True, True, (64, 3)),
    (True, False, (64, 4))])
@pytest.mark.parametrize("layout,page_size", [("token_pool", 1), ("NHD", 1), ("HND", 3), ("NHD", 24)])
def test_gathered_pages_match_reference(lens, head_dim, causal, return_lse, blocks, layout, page_size, gen):
    """Pages TMA cannot copy (fewer than 8 slots, or not tiling a block), gathered by cp.async, with
    NaN in the slots no sequence owns (zero-filled past the sequence, not read as NaN)."""
    q_lens, kv_lens = lens
    case = make_kv(kv_lens, layout=layout, page_size=page_size, kv_heads=2, head_dim=head_dim, dtype=torch.bfloat16,
                   device="cuda", gen=gen, extra_pages=3)
    q, q_indptr = ragged_q(q_lens, 8, head_dim, torch.bfloat16, "cuda", gen)
    assert _ph().supports(q, case.kv) and not _ph().tma_pages(case.kv.page_size, 128)
    ref = attn.prefill(q, case.kv, q_indptr, backend="torch", causal=causal, return_lse=True)
    got = _ph().prefill(q, case.kv, q_indptr, causal=causal, return_lse=return_lse, block_n=blocks[0],
                        stages=blocks[1])
    o = got[0] if return_lse else got
    what = f"{case.describe()} q_lens={q_lens} d={head_dim} causal={causal} blocks={blocks}"
    assert not torch.isnan(o).any(), what
    assert rel_err(o, ref[0]) <= tol(torch.bfloat16), what
    if return_lse:
        assert rel_err(got[1], ref[1]) <= 1e-3, what


def _block_mixed_mask(q_lens, kv_lens, gen) -> torch.Tensor:
    """A flattened custom mask whose 128 x 128 blocks (the kernel's) are, a third each, all visible,
    all hidden or random per key; one row of each request hides every key."""
    parts = []
    for lq, lk in zip(q_lens, kv_lens):
        kind = torch.randint(0, 3, (-(-lq // 128), -(-lk // 128)), generator=gen)
        kind = kind.repeat_interleave(128, 0)[:lq].repeat_interleave(128, 1)[:, :lk]
        m = (kind == 0) | ((kind == 2) & (torch.rand(lq, lk, generator=gen) < 0.5))
        m[lq // 2] = False
        parts.append(m.reshape(-1))
    return torch.cat(parts)


@pytest.mark.gpu
@hopper
@pytest.mark.parametrize("lens", [PREFILL, EXTEND], ids=["prefill", "extend"])
@pytest.mark.parametrize("head_dim", [64, 128])
@pytest.mark.parametrize("causal,return_lse", [(False, False), (True, True)])
@pytest.mark.parametrize("layout,page_size", [("ragged", 1), ("NHD", 16), ("token_pool", 1)])
def test_custom_mask_matches_reference(lens, head_dim, causal, return_lse, layout, page_size, gen):
    """Block lists (hidden blocks skipped, visible ones unmasked, partly visible ones read bit by
    bit), over TMA-copied and gathered keys; rows that see nothing give 0 and lse -inf."""
    q_lens, kv_lens = lens
    case = make_kv(kv_lens, layout=layout, page_size=page_size, kv_heads=2, head_dim=head_dim, dtype=torch.bfloat16,
                   device="cuda", gen=gen, extra_pages=3)
    q, q_indptr = ragged_q(q_lens, 8, head_dim, torch.bfloat16, "cuda", gen)
    mask = _block_mixed_mask(q_lens, kv_lens, gen).cuda()
    assert _ph().supports(q, case.kv, custom_mask=mask)
    ref = attn.prefill(q, case.kv, q_indptr, backend="torch", causal=causal, custom_mask=mask, return_lse=True)
    got = _ph().prefill(q, case.kv, q_indptr, causal=causal, custom_mask=mask, return_lse=return_lse)
    o = got[0] if return_lse else got
    what = f"{case.describe()} q_lens={q_lens} d={head_dim} causal={causal}"
    assert not torch.isnan(o).any(), what
    assert rel_err(o, ref[0]) <= tol(torch.bfloat16), what
    if return_lse:
        seen = torch.isfinite(ref[1])
        assert torch.equal(torch.isfinite(got[1]), seen), what
        assert rel_err(got[1][seen], ref[1][seen]) <= 1e-3, what


@pytest.mark.gpu
@hopper
def test_batch_prefill_runs_masks_on_hopper_replanned(gen):
    """BatchPrefill plans the Hopper kernel's own block lists for a mask, into buffers a re-plan reuses."""
    plan = attn.BatchPrefill(max_tokens=2048, max_batch=4, device="cuda", num_q_heads=8, max_mask_bits=4_000_000,
                             max_kv_len=1500)
    for q_lens, kv_lens in ([300, 1, 700], [300, 9, 1400]), ([129, 512], [129, 600]):
        case = make_kv(kv_lens, layout="NHD", page_size=16, kv_heads=2, head_dim=128, dtype=torch.bfloat16,
                       device="cuda", gen=gen)
        q, qi = ragged_q(q_lens, 8, 128, torch.bfloat16, "cuda", gen)
        mask = _block_mixed_mask(q_lens, kv_lens, gen).cuda()
        plan.plan(qi, case.kv, causal=False, custom_mask=mask)
        assert plan.cfg["hopper"]
        ref = attn.prefill(q, case.kv, qi, backend="torch", causal=False, custom_mask=mask)
        assert rel_err(plan.run(q, case.kv), ref) <= tol(torch.bfloat16), (q_lens, kv_lens)


@pytest.mark.gpu
@hopper
def test_graph_replays_for_a_smaller_batch(gen):
    """Items past work.num_items (a grid sized for the plan's maximum) run no block and write nothing."""
    from attn.scheduling import WorkList, prefill_items
    ph = _ph()
    d, hq = 128, 8
    big = make_kv([700, 300], layout="ragged", kv_heads=2, head_dim=d, dtype=torch.bfloat16, device="cuda", gen=gen)
    q, qi = ragged_q([700, 300], hq, d, torch.bfloat16, "cuda", gen)
    work = WorkList.empty(16, "cuda")
    out = poison(torch.empty_like(q))
    small = [200]
    work.fill(prefill_items(torch.tensor(small).numpy(), 128))
    qi_small = torch.tensor([0, 200], dtype=torch.int32, device="cuda")
    kv_small = attn.KVCache.ragged(big.kv.k, big.kv.v, torch.tensor([0, 200], dtype=torch.int32, device="cuda"))
    ph.launch(q, kv_small, qi_small, work, out, None, causal=True, sm_scale=d ** -0.5)
    ref = attn.prefill(q[:200], kv_small, qi_small, backend="torch", causal=True)
    assert rel_err(out[:200], ref) <= tol(torch.bfloat16)
    assert torch.isnan(out[200:]).all(), "wrote rows of items past num_items"


def test_supports_only_what_it_runs():
    """Without an sm_90 GPU (or for anything past its scope) the portable kernel runs."""
    ph = _ph()
    q = torch.zeros(4, 8, 128, dtype=torch.bfloat16)
    kv = make_kv([4], layout="ragged", kv_heads=2, head_dim=128, dtype=torch.bfloat16).kv
    assert not ph.supports(q, kv)                                  # a CPU tensor
    paged = make_kv([4], layout="NHD", page_size=16, kv_heads=2, head_dim=128, dtype=torch.bfloat16).kv
    # The caches it takes, whatever the device: ragged, NHD / HND pages of any size and the token
    # pool (pages TMA cannot copy are gathered), fp16 / bf16, d 64 / 128; not vLLM, fp32, d 80.
    bf = torch.bfloat16
    pool = make_kv([4], layout="token_pool", kv_heads=2, head_dim=128, dtype=bf).kv
    hnd3 = make_kv([4], layout="HND", page_size=3, kv_heads=2, head_dim=128, dtype=bf).kv
    assert all(ph.fits_cache(c, 8, bf) for c in (kv, paged, pool, hnd3))
    # TMA copies a page (or a block) where pages hold 8k slots and tile a block; the rest is gathered.
    assert [ph.tma_pages(ps, 128) for ps in (8, 16, 128, 256, 1, 3, 24, 200)] == [True] * 4 + [False] * 4
    for other, dt in ((make_kv([4], layout="vllm", page_size=16, kv_heads=2, head_dim=128, dtype=bf).kv, bf),
                      (make_kv([4], layout="ragged", kv_heads=2, head_dim=128).kv, torch.float32),
                      (make_kv([4], layout="ragged", kv_heads=2, head_dim=80, dtype=bf).kv, bf)):
        assert not ph.fits_cache(other, 8, dt), other.layout.name
    assert not ph.fits_cache(kv, 3, bf)                                  # q heads not a multiple of kv heads
    # The 2-D row geometry the loader's TMA copies use, from the layouts' strides.
    assert ph.kv_rows(paged) == (2 * 128, 16, 0, 128)                  # NHD: a row holds a slot's heads
    hnd = make_kv([4], layout="HND", page_size=16, kv_heads=2, head_dim=128, dtype=torch.bfloat16).kv
    assert ph.kv_rows(hnd) == (128, 2 * 16, 16, 0)                     # HND: a row, one head's slot
    ragged = make_kv([4], layout="ragged", kv_heads=2, head_dim=128, dtype=torch.bfloat16).kv
    assert ph.kv_rows(ragged) == (2 * 128, 1, 0, 128)
    vllm = make_kv([4], layout="vllm", page_size=16, kv_heads=2, head_dim=128, dtype=torch.bfloat16).kv
    assert ph.kv_rows(vllm) is None                                    # split head dim: not rows
