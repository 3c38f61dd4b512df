"""attn.BatchAttention: mixed decode + prefill batches in one persistent launch (issue 9).

CPU tier: the Triton interpreter on small random mixed batches against attn.reference, with NaN
in unowned slots and poisoned outputs; the scheduler's coverage and balance. GPU tier: bf16/fp16
batches and one CUDA graph replayed over 20 random batch compositions."""
import math

import numpy as np
import pytest
import torch

import attn
from attn import persistent_schedule as S
from kvgen import assert_close, make_kv, poison, ragged_q

BACKEND = "triton"          # the backend the GPU tier report counts these tests under


def _batch(gen, n_decode, prefill, layout, page_size, device, dtype, kv_heads=2, q_heads=8, head_dim=64,
           max_kv=90):
    """n_decode requests with q_len 1 and one prefill/extend request per (q_len, prefix) pair."""
    dec_kv = torch.randint(1, max_kv, (n_decode,), generator=gen).tolist()
    q_lens = [1] * n_decode + [q for q, _ in prefill]
    kv_lens = dec_kv + [q + p for q, p in prefill]
    order = torch.randperm(len(q_lens), generator=gen).tolist()       # decode and prefill interleaved
    q_lens = [q_lens[i] for i in order]
    kv_lens = [kv_lens[i] for i in order]
    case = make_kv(kv_lens, layout=layout, page_size=page_size, kv_heads=kv_heads, head_dim=head_dim,
                   dtype=dtype, device=device, gen=gen)
    q, q_indptr = ragged_q(q_lens, q_heads, head_dim, dtype, device, gen)
    return case, q, q_indptr


def _check(ba, case, q, q_indptr, what, **opts):
    ba.plan(q_indptr, case.kv, q.shape[1], return_lse=True, **opts)
    out = poison(torch.empty_like(q))
    lse = poison(torch.empty(q.shape[:2], dtype=torch.float32, device=q.device))
    out, lse = ba.run(q, case.kv, out=out, lse=lse)
    ref, ref_lse = attn.reference.prefill(q, case.kv, q_indptr, return_lse=True, **opts)
    assert_close(out, ref, what=f"{what} {case.describe()}")
    # fp32 inputs: the fp32 tolerance (measured on the CPU tier: <= 2e-7). Half inputs keep 100x (as
    # tests/test_decode.py) until the GPU tier is measured: fp16 also measured <= 2e-7 on the CPU tier.
    assert_close(lse, ref_lse, dtype=torch.float32, what=f"lse {what}",
                 factor=1 if q.dtype == torch.float32 else 100)


@pytest.mark.parametrize("layout,page_size", [("HND", 16), ("NHD", 3), ("vllm", 4), ("ragged", 1),
                                              ("token_pool", 1)])
def test_mixed_batch_matches_reference(layout, page_size, gen, device):
    case, q, q_indptr = _batch(gen, 5, [(20, 0), (7, 300), (33, 5)], layout, page_size, device, torch.float32)
    # A 300-key prefix: longer than two KV blocks of any device's tile (128 keys on sm_90), so with
    # chunk_kv=32 and few programs long tiles are cut into chunks: partial rows and the merge run.
    ba = attn.BatchAttention(max_tokens=128, max_batch=16, num_programs=3, device=device, chunk_kv=32)
    _check(ba, case, q, q_indptr, f"mixed {layout}/{page_size}")
    assert ba.schedule.num_partial_rows > 0, "the batch should have split tiles"


def test_ragged_cache_runs_as_a_token_pool(gen, device, monkeypatch):
    """A ragged cache is launched with a page map of its rows in order (the persistent loop's
    no-page-map binary did not fit sm_90 at d128); the answer is the ragged cache's."""
    import attn.triton_kernels.attention as A
    seen = []
    real = A.launch
    monkeypatch.setattr(A, "launch", lambda *a, **k: seen.append(k["page_map"]) or real(*a, **k))
    case, q, q_indptr = _batch(gen, 3, [(20, 5)], "ragged", 1, device, torch.float32)
    ba = attn.BatchAttention(max_tokens=64, max_batch=8, num_programs=2, device=device, chunk_kv=32)
    _check(ba, case, q, q_indptr, "ragged as token pool")
    page_indptr, page_indices, _ = seen[-1]
    assert case.kv.identity_pages and page_indices is not page_indptr       # the page-map binary
    assert torch.equal(page_indices.cpu(), torch.arange(case.kv.num_pages, dtype=torch.int32))


@pytest.mark.parametrize("kind", ["decode_only", "prefill_only", "empty_requests"])
def test_pure_batches(kind, gen, device):
    mix = {"decode_only": (7, []), "prefill_only": (0, [(40, 0), (9, 9)]),
           "empty_requests": (2, [(0, 5), (12, 0), (0, 0)])}[kind]
    case, q, q_indptr = _batch(gen, *mix, "HND", 16, device, torch.float16)
    ba = attn.BatchAttention(max_tokens=128, max_batch=16, num_programs=4, device=device)
    _check(ba, case, q, q_indptr, kind)


def test_options_window_softcap_noncausal(gen, device):
    case, q, q_indptr = _batch(gen, 3, [(25, 10)], "NHD", 16, device, torch.float32)
    ba = attn.BatchAttention(max_tokens=64, max_batch=8, num_programs=2, device=device, chunk_kv=32)
    _check(ba, case, q, q_indptr, "window+softcap", window_left=9, softcap=20.0)
    _check(ba, case, q, q_indptr, "non-causal", causal=False)


def test_replan_reuses_buffers(gen, device):
    ba = attn.BatchAttention(max_tokens=128, max_batch=16, num_programs=3, device=device, chunk_kv=48)
    for i in range(3):
        case, q, q_indptr = _batch(gen, 2 + i, [(10 + 9 * i, 4 * i)], "HND", 16, device, torch.float32)
        _check(ba, case, q, q_indptr, f"plan {i}")


def test_small_chunk_kv_grows_the_work_list_until_captured(gen, device):
    # max_batch 2, max_tokens 2, one program: the automatic sizing holds 2*2 + 0 + 4 = 8 items;
    # chunks of one KV block (16 keys in the interpreter, 64-128 on GPUs) over 2000 and 1500 keys
    # need 28-219.
    case, q, q_indptr = _batch(gen, 0, [(1, 1999), (1, 1500)], "HND", 16, device, torch.float32)
    ba = attn.BatchAttention(max_tokens=2, max_batch=2, num_programs=1, device=device, chunk_kv=16)
    _check(ba, case, q, q_indptr, "chunk_kv 16")
    assert len(ba.schedule.items) > 8 and ba.work.max_items >= len(ba.schedule.items)
    ba._captured = True                            # what run() records while a CUDA graph is captured
    longer, q2, q_indptr2 = _batch(gen, 0, [(1, 2999), (1, 2500)], "HND", 16, device, torch.float32)
    with pytest.raises(ValueError, match="work items .* captured in a graph"):
        ba.plan(q_indptr2, longer.kv, q2.shape[1])


def test_schedule_covers_every_item_once_and_balances(gen):
    rng = np.random.default_rng(int(torch.randint(2 ** 62, (1,), generator=gen)))
    q_lens = np.r_[np.ones(64, int), [512, 1024, 2048, 768], [0, 0]]
    kv_lens = np.r_[rng.integers(1024, 8192, 64), [512, 1536, 2048, 4000], [0, 7]]
    s = S.build(q_lens, kv_lens, num_programs=33, tq_decode=4, tq_prefill=32, block_m_decode=16,
                block_m_prefill=128, block_n=64, causal=True)
    assert sorted(s.prog_items.tolist()) == list(range(len(s.items)))
    assert s.prog_indptr[-1] == len(s.items)
    assert s.imbalance() < 1.2, s.imbalance()
    # Every query token is covered by exactly one tile; every KV block of a tile by one chunk.
    tiles = {}
    for it in s.items:
        tiles.setdefault((it[S.REQ], it[S.Q_START]), []).append(it)
    covered = np.zeros(int(q_lens.sum()), int)
    q_ip = np.r_[0, np.cumsum(q_lens)]
    for (b, q0), chunks in tiles.items():
        tq = 4 if chunks[0][S.KIND] == S.DECODE else 32
        covered[q_ip[b] + q0: q_ip[b] + min(q0 + tq, q_lens[b])] += 1
        starts = sorted(c[S.KV_START] for c in chunks)
        assert starts[0] == 0 and all(c[S.STRIDE] == len(chunks) for c in chunks)
    assert (covered == 1).all()


def test_schedule_units_are_heads_of_items(gen):
    """units=(kv heads, q heads) (the Hopper kernel's schedule): every head of every item is a
    unit exactly once, decode-kind items with the kv heads' count, and the units balance over the
    programs, long tiles cut to the units' fair share."""
    rng = np.random.default_rng(int(torch.randint(2 ** 62, (1,), generator=gen)))
    q_lens = np.r_[np.ones(64, int), [512, 1024, 2048, 768]]
    kv_lens = np.r_[rng.integers(1024, 8192, 64), [512, 1536, 2048, 4000]]
    kw = dict(tq_decode=32, tq_prefill=128, block_m_decode=64, block_m_prefill=128, block_n=128, causal=True)
    s = S.build(q_lens, kv_lens, num_programs=132, units=(8, 32), **kw)
    assert sorted(s.prog_items.tolist()) == list(range(len(s.unit_item)))
    pairs = sorted(zip(s.unit_item.tolist(), s.unit_head.tolist()))
    heads = np.where(s.items[:, S.KIND] == S.DECODE, 8, 32)
    assert pairs == [(i, h) for i in range(len(s.items)) for h in range(heads[i])]
    assert s.imbalance() < 1.1, s.imbalance()
    np.testing.assert_allclose(s.program_loads().sum(), (s.cost * heads).sum())
    # Chunked by the units' fair share: no unit is much more than one program's load; two long
    # decode requests (16 units) are cut into chunks that fill 132 programs.
    assert s.cost.max() <= 1.05 * s.program_loads().mean()
    s = S.build(np.array([1, 1]), np.array([65536, 30000]), num_programs=132, units=(8, 32), **kw)
    assert s.num_partial_rows > 0 and len(s.unit_item) >= 132 and s.imbalance() < 1.3, s.imbalance()


def _schedule_loop(q_lens, kv_lens, *, num_programs, tq_decode, tq_prefill, block_m_decode, block_m_prefill,
                   block_n, causal, chunk_target):
    """S.build's items, costs and merge rows, one tile and one chunk at a time."""
    tiles = []
    for b, (lq, lk) in enumerate(zip(q_lens.tolist(), kv_lens.tolist())):
        kind = S.DECODE if lq <= tq_decode else S.PREFILL
        tq = tq_decode if kind == S.DECODE else tq_prefill
        for q0 in range(0, lq, tq):
            ntok = min(tq, lq - q0)
            visible = max(min(lk, lk - lq + q0 + ntok) if causal else lk, 0)   # keys the last row sees
            tiles.append((b, q0, visible, kind, ntok, block_m_decode if kind == S.DECODE else block_m_prefill))
    cost_of = lambda keys, bm: max(-(-keys // block_n), 0) * (1.0 + bm / 64.0) + 2.0  # noqa: E731
    share = sum(cost_of(t[2], t[5]) for t in tiles) / num_programs
    items, costs, merge, slot = [], [], [], 0
    for b, q0, visible, kind, ntok, bm in tiles:
        cb = max(math.floor(share / (1.0 + bm / 64.0)), 4) if chunk_target is None else max(chunk_target // block_n, 1)
        n = -(-max(-(-visible // block_n), 1) // cb)
        for j in range(n):
            end = visible if j == n - 1 else (j + 1) * cb * block_n
            items.append((b, q0, j * cb * block_n, S.KV_END_OPEN if j == n - 1 else end,
                          -1 if n == 1 else slot + j, kind, n))
            costs.append(cost_of(end - j * cb * block_n, bm))
        if n > 1:
            merge += [(b, q0 + t, slot + t * n, n) for t in range(ntok)]
            slot += n * ntok
    return items, costs, merge, slot


@pytest.mark.parametrize("causal", [True, False])
@pytest.mark.parametrize("chunk_target", [None, 1000])
def test_schedule_matches_a_loop_over_tiles(causal, chunk_target, gen):
    rng = np.random.default_rng(int(torch.randint(2 ** 62, (1,), generator=gen)))
    for trial in range(40):
        n = int(rng.integers(0, 12))
        q_lens = np.where(rng.random(n) < 0.5, rng.integers(0, 3, n), rng.integers(0, 300, n))
        kv_lens = np.where(rng.random(n) < 0.9, q_lens + rng.integers(0, 5000, n), rng.integers(0, 100, n))
        kw = dict(num_programs=int(rng.integers(1, 40)), tq_decode=int(rng.choice([1, 2, 4])),
                  tq_prefill=int(rng.choice([16, 32])), block_m_decode=16, block_m_prefill=int(rng.choice([64, 128])),
                  block_n=int(rng.choice([16, 64])), causal=causal, chunk_target=chunk_target)
        what = f"trial {trial}: q_lens={q_lens.tolist()} kv_lens={kv_lens.tolist()} {kw}"
        s = S.build(q_lens, kv_lens, **kw)
        items, costs, merge, rows = _schedule_loop(q_lens, kv_lens, **kw)
        assert s.items.tolist() == [list(i) for i in items], what
        np.testing.assert_array_equal(s.cost, np.array(costs, np.float64), err_msg=what)
        assert s.merge.tolist() == [list(m) for m in merge], what
        assert s.num_partial_rows == rows, what


def test_schedule_splits_long_tiles_when_programs_are_few():
    s = S.build(np.array([1, 1]), np.array([6400, 64]), num_programs=8, tq_decode=4, tq_prefill=32,
                block_m_decode=16, block_m_prefill=128, block_n=64, causal=True)
    assert len(s.items) > 2 and s.num_partial_rows > 0
    assert s.imbalance() < 1.6


def _true_loads(s, model):
    return np.bincount(s.owner(), weights=model.cost(s.items[:, S.KIND], s.blocks), minlength=s.num_programs)


def test_fitted_cost_model_explains_program_times_and_rebalances(gen):
    """Programs' busy times simulated from a model unlike the default (decode blocks cheaper,
    per-item overheads larger): the fit reproduces the times, and a plan with it is balanced
    under the true costs where the default's was not."""
    rng = np.random.default_rng(int(torch.randint(2 ** 62, (1,), generator=gen)))
    q_lens = np.r_[np.ones(64, int), [512, 1024, 1536, 2048]]
    kv_lens = np.r_[rng.integers(1024, 8192, 64), [2048, 3000, 1536, 4096]]
    kw = dict(num_programs=16, tq_decode=4, tq_prefill=32, block_m_decode=16, block_m_prefill=128,
              block_n=128, causal=True)
    true = S.CostModel(decode_block=0.9, decode_item=3.0, prefill_block=4.0, prefill_item=1.5)
    first = S.build(q_lens, kv_lens, **kw)
    busy = _true_loads(first, true)
    fitted = S.fit(first, np.repeat(busy[:, None], 8, axis=1), S.CostModel.default(16, 128))
    predicted = _true_loads(first, fitted)
    np.testing.assert_allclose(predicted, busy, rtol=0.02)
    assert fitted.prefill_block / fitted.decode_block == pytest.approx(4.0 / 0.9, rel=0.1)
    before = busy.max() / busy.mean()
    after = _true_loads(S.build(q_lens, kv_lens, model=fitted, **kw), true)
    assert before > 1.03 and after.max() / after.mean() < 1.015, (before, after.max() / after.mean())


def test_fit_keeps_the_prior_for_a_tile_kind_the_batch_lacks():
    s = S.build(np.ones(40, int), np.arange(100, 4100, 100), num_programs=8, tq_decode=4, tq_prefill=32,
                block_m_decode=16, block_m_prefill=128, block_n=64, causal=True)
    prior = S.CostModel.default(16, 128)
    busy = 0.5 * s.program_loads()                       # the prior exactly, in other units
    fitted = S.fit(s, busy, prior)
    for name in ("decode_block", "decode_item", "prefill_block", "prefill_item"):
        assert getattr(fitted, name) == pytest.approx(0.5 * getattr(prior, name), rel=1e-3), name


def test_calibrate_fits_and_replans(gen, device, monkeypatch):
    """calibrate(): one warm run, measure(), fit, the same plan again with the model; the
    kernel-side clock is replaced by times from a known model (measure() itself is GPU-only)."""
    case, q, q_indptr = _batch(gen, 12, [(40, 8), (70, 0)], "HND", 16, device, torch.float32)
    ba = attn.BatchAttention(max_tokens=256, max_batch=16, device=device, num_programs=3)
    true = S.CostModel(decode_block=0.5, decode_item=9.0, prefill_block=6.0, prefill_item=1.0)
    runs = []
    monkeypatch.setattr(ba, "run", lambda q_, kv_: runs.append(1))
    monkeypatch.setattr(ba, "measure", lambda q_, kv_: np.repeat(_true_loads(ba.schedule, true)[:, None], 2, 1))
    with pytest.raises(ValueError, match="plan"):
        ba.calibrate(q, case.kv)
    ba.plan(q_indptr, case.kv, q.shape[1], causal=False, window_left=30)
    model = ba.calibrate(q, case.kv)
    assert runs == [1] and ba.cost_model is model and isinstance(model, S.CostModel)
    assert ba._planned["causal"] is False and ba._planned["window_left"] == 30   # the same options
    np.testing.assert_allclose(ba.schedule.cost, model.cost(ba.schedule.items[:, S.KIND], ba.schedule.blocks))
    assert "us when fitted" in ba.describe()
    with pytest.raises(ValueError, match="cost_model must be"):
        attn.BatchAttention(max_tokens=8, max_batch=8, device=device, cost_model={"decode_block": 1.0})


def test_describe_and_errors(gen, device):
    case, q, q_indptr = _batch(gen, 3, [(10, 0)], "HND", 16, device, torch.float32)
    ba = attn.BatchAttention(max_tokens=8, max_batch=8, device=device)
    with pytest.raises(ValueError, match="max_tokens=8"):
        ba.plan(q_indptr, case.kv, 8)
    ba = attn.BatchAttention(max_tokens=64, max_batch=8, device=device)
    ba.plan(q_indptr, case.kv, 8)
    text = ba.describe()
    assert "imbalance" in text and "items" in text
    with pytest.raises(ValueError, match="q must be"):
        ba.run(q[:, :4], case.kv)
    with pytest.raises(ValueError, match="max_batch must be"):
        attn.BatchAttention(max_tokens=8, max_batch=0)


def test_captured_plan_refuses_another_kernel_config(gen, device):
    case, q, q_indptr = _batch(gen, 3, [(10, 0)], "HND", 16, device, torch.float32)
    ba = attn.BatchAttention(max_tokens=64, max_batch=8, device=device)
    ba.plan(q_indptr, case.kv, 8)
    ba._captured = True                            # what run() records while a CUDA graph is captured
    ba.plan(q_indptr, case.kv, 8)                  # the same config: fine
    ba.kernel_config = {"BLOCK_N": ba.cfg["BLOCK_N"] * 2}
    with pytest.raises(ValueError, match="kernel config"):
        ba.plan(q_indptr, case.kv, 8)


def test_decode_items_take_their_own_kv_block(gen, device):
    """block_n_decode / stages_decode: decode items read longer KV blocks than prefill ones; every
    chunk still starts on a boundary of both blocks, and the answer does not change."""
    case, q, q_indptr = _batch(gen, 6, [(20, 0), (9, 40)], "HND", 4, device, torch.float32, max_kv=120)
    # chunk_kv 16 asks for chunks of one prefill block; the decode block (32) rounds them up.
    ba = attn.BatchAttention(max_tokens=128, max_batch=16, num_programs=3, device=device, chunk_kv=16,
                             kernel_config={"BLOCK_N": 16, "block_n_decode": 32, "stages_decode": 2})
    _check(ba, case, q, q_indptr, "block_n_decode 32")
    items = ba.schedule.items
    assert (items[:, S.KV_START] % 32 == 0).all(), items[:, S.KV_START]
    assert ba.schedule.num_partial_rows > 0, "the batch should have split tiles"


def _hopper_contract(q, kv, q_indptr, work, out, lse, *, causal, sm_scale, return_lse, page_map, batch,
                     prog_times=None):
    """What prefill_hopper.launch does with a schedule, written from its contract (launch's and
    _tile's docstrings), one unit at a time: unit id = item * q_heads + head; a decode-kind item
    packs kv head `head`'s GQA group (tokens of up to 128 // group), a prefill one is q head `head`
    (128 tokens); keys [kv_start, kv_end) of the request, causal bottom-right; rows to out / lse,
    or, for a chunk (out_slot >= 0), to partial row out_slot + token * stride."""
    from attn.layouts.convert import gather
    prog_indptr, prog_items, item_kind, item_stride, part_o, part_lse, programs = batch
    k_rows, v_rows, kv_ip = gather(kv)
    hq = q.shape[1]
    group = hq // kv.num_kv_heads
    qi, ki = q_indptr.tolist(), kv_ip.tolist()
    units = prog_items[:int(prog_indptr[programs])].tolist()
    assert len(units) == len(set(units)), "a unit scheduled twice"
    req, q_start, kv_start, kv_end, out_slot = (x.tolist() for x in (work.req, work.q_start, work.kv_start,
                                                                      work.kv_end, work.out_slot))
    for t in units:
        item, head = divmod(t, hq)
        b = req[item]
        pack = group if int(item_kind[item]) == S.DECODE else 1
        lq, lk = qi[b + 1] - qi[b], ki[b + 1] - ki[b]
        keys = torch.arange(kv_start[item], min(kv_end[item], lk))
        for i in range(min(lq - q_start[item], 128 // pack)):
            row = qi[b] + q_start[item] + i
            seen = keys[keys <= lk - lq + q_start[item] + i] if causal else keys
            for h in range(head * pack, head * pack + pack):
                kvh = h // group
                s_ = (q[row, h].double() @ k_rows[ki[b] + seen, kvh].double().T) * sm_scale
                o = torch.softmax(s_, 0) @ v_rows[ki[b] + seen, kvh].double() if len(seen) else torch.zeros(q.shape[2])
                l_ = torch.logsumexp(s_, 0) if len(seen) else torch.tensor(float("-inf"))
                if out_slot[item] < 0:
                    out[row, h] = o.to(out.dtype)
                    if return_lse:
                        lse[row, h] = l_
                else:
                    part_o[out_slot[item] + i * int(item_stride[item]), h] = o.float()
                    part_lse[out_slot[item] + i * int(item_stride[item]), h] = l_


@pytest.mark.parametrize("causal", [True, False])
def test_hopper_schedule_host_side(causal, gen, monkeypatch):
    """The sm_90 plan without its kernel: the kernel replaced by its contract (_hopper_contract),
    the rest as run() does it (units, tile ids, partial rows, the merge in the interpreter)."""
    from attn.triton_kernels import prefill as P
    from attn.triton_kernels import prefill_hopper as H
    monkeypatch.setattr(P, "hopper_kernel", lambda *a, **k: H)
    monkeypatch.setattr(H, "launch", _hopper_contract)
    case, q, q_indptr = _batch(gen, 6, [(3, 40), (40, 300), (1, 400), (33, 0)], "HND", 16, "cpu", torch.float32,
                               kv_heads=2, q_heads=8)
    ba = attn.BatchAttention(max_tokens=128, max_batch=16, num_programs=5, device="cpu", chunk_kv=128)
    _check(ba, case, q, q_indptr, f"hopper contract causal={causal}", causal=causal)
    s = ba.schedule
    assert ba.cfg.get("hopper") and s.num_partial_rows > 0
    kinds = s.items[s.unit_item, S.KIND]
    assert set(s.unit_head[kinds == S.DECODE]) == {0, 1} and set(s.unit_head[kinds == S.PREFILL]) == set(range(8))
    assert "a head a unit" in ba.describe()


def test_measure_needs_a_plan_and_a_gpu(gen):
    case, q, q_indptr = _batch(gen, 2, [(5, 0)], "HND", 16, "cpu", torch.float32)
    ba = attn.BatchAttention(max_tokens=16, max_batch=4, device="cpu")
    with pytest.raises(ValueError, match="plan"):
        ba.measure(q, case.kv)
    ba.plan(q_indptr, case.kv, q.shape[1])
    with pytest.raises(ValueError, match="needs a GPU"):
        ba.measure(q, case.kv)


# ----------------------------------------------------------------------------------- GPU tier
@pytest.mark.gpu
@pytest.mark.parametrize("dtype", [torch.float16, torch.bfloat16])
@pytest.mark.parametrize("layout,page_size", [("HND", 16), ("ragged", 1), ("vllm", 16)])
def test_gpu_mixed_batches(layout, page_size, dtype, gen):
    """Also over a ragged cache (run as a token pool) and vLLM's layout (64-key decode blocks on
    sm_90): their persistent binaries were chosen from the compile matrix alone."""
    case, q, q_indptr = _batch(gen, 48, [(300, 0), (129, 700), (1000, 24)], layout, page_size, "cuda", dtype,
                               kv_heads=8, q_heads=32, head_dim=128, max_kv=3000)
    ba = attn.BatchAttention(max_tokens=4096, max_batch=64)
    _check(ba, case, q, q_indptr, f"gpu mixed {layout} {dtype}")
    # The timed variant: one busy time per program (and kv head, on the portable kernel's grid),
    # the same answer.
    busy = ba.measure(q, case.kv)
    assert busy.shape == (ba.num_programs, 1 if ba.cfg.get("hopper") else 8) and (busy > 0).all(), busy
    assert "measured busy time" in ba.describe()
    _check(ba, case, q, q_indptr, f"gpu mixed {layout} {dtype} after measure")
    # Calibrated: a model in microseconds that predicts the programs' times, the same answer.
    model = ba.calibrate(q, case.kv)
    assert all(w > 0 for w in (model.decode_block, model.prefill_block)), model
    _check(ba, case, q, q_indptr, f"gpu mixed {layout} {dtype} calibrated")


@pytest.mark.gpu
@pytest.mark.parametrize("chunk_kv", [None, 256])
@pytest.mark.parametrize("causal", [True, False])
@pytest.mark.parametrize("q_heads,kv_heads,head_dim,layout,page_size", [
    (32, 8, 128, "HND", 16), (32, 4, 64, "NHD", 1), (16, 16, 128, "ragged", 1), (64, 8, 128, "NHD", 16)])
def test_gpu_schedules_on_the_hopper_kernel(q_heads, kv_heads, head_dim, layout, page_size, causal, chunk_kv, gen):
    """The sm_90 path: decode-kind tiles packing GQA groups of 1, 4 and 8 heads (and extends of a few
    tokens, several tokens a tile), prefill tiles a q head each, TMA pages / gathered pages / a
    ragged cache, KV cut into chunks (chunk_kv 256: every long tile) and merged."""
    prefill = [(3, 40), (9, 700), (1, 5), (200, 0), (130, 500), (16, 1200)]
    case, q, q_indptr = _batch(gen, 20, prefill, layout, page_size, "cuda", torch.bfloat16, kv_heads=kv_heads,
                               q_heads=q_heads, head_dim=head_dim, max_kv=2500)
    ba = attn.BatchAttention(max_tokens=1024, max_batch=64, chunk_kv=chunk_kv)
    _check(ba, case, q, q_indptr, f"hopper {q_heads}/{kv_heads} d{head_dim} {layout} causal={causal}", causal=causal)
    if torch.cuda.get_device_capability() == (9, 0):
        assert ba.cfg.get("hopper"), ba.cfg
    if chunk_kv:
        assert ba.schedule.num_partial_rows > 0


@pytest.mark.gpu
def test_gpu_one_graph_replays_20_batch_compositions(gen):
    torch.cuda.synchronize()
    max_tokens, max_batch, pages = 2048, 48, 4096
    ba = attn.BatchAttention(max_tokens=max_tokens, max_batch=max_batch, max_pages=pages, max_partial_rows=16384)
    ps, hkv, hq, d, dtype = 16, 8, 32, 128, torch.bfloat16
    k_store = torch.randn(pages, hkv, ps, d, dtype=dtype, device="cuda")
    v_store = torch.randn_like(k_store)
    q_buf = torch.zeros(max_tokens, hq, d, dtype=dtype, device="cuda")
    out = torch.zeros_like(q_buf)

    def batch():
        n_dec = int(torch.randint(0, 40, (1,), generator=gen))
        n_pre = int(torch.randint(0 if n_dec else 1, 4, (1,), generator=gen))
        q_lens = [1] * n_dec + torch.randint(1, 400, (n_pre,), generator=gen).tolist()
        kv_lens = [q + int(torch.randint(0, 1200, (1,), generator=gen)) for q in q_lens]
        need = [(n + ps - 1) // ps for n in kv_lens]
        perm = torch.randperm(pages, generator=gen)[:sum(need)].to(torch.int32)
        ip = torch.tensor([0] + need).cumsum(0).to(torch.int32)
        kv = attn.KVCache.paged(k_store, v_store, ip.cuda(), perm.cuda(),
                                torch.tensor(kv_lens, dtype=torch.int32, device="cuda"), layout="HND")
        q_ip = torch.tensor([0] + q_lens).cumsum(0).to(torch.int32).cuda()
        return kv, q_ip, sum(q_lens)

    kv, q_ip, n = batch()
    ba.plan(q_ip, kv, hq)
    q_buf.normal_()
    ba.run(q_buf, kv, out=out)
    graph = torch.cuda.CUDAGraph()
    with torch.cuda.graph(graph):
        ba.run(q_buf, kv, out=out)
    for step in range(20):
        kv, q_ip, n = batch()
        ba.plan(q_ip, kv, hq)
        q_buf.normal_()
        out.fill_(float("nan"))
        graph.replay()
        torch.cuda.synchronize()
        ref = attn.reference.prefill(q_buf[:n], kv, q_ip)
        assert_close(out[:n], ref, what=f"graph replay step {step} ({kv.batch_size} requests, {n} tokens)")
