"""Decode (attn.decode backend "triton", attn.BatchDecode) against the float64 definition in
tests/kvgen.py. Caches hold NaN in every slot no live token owns; outputs are poisoned before the
launch. CPU tier: a sampled slice through the interpreter (fp16/fp32). GPU tier: the full matrix
in bf16/fp16, 128k-token sequences, CUDA-graph replay across re-plans."""
import math

import numpy as np
import pytest
import torch

import attn
from attn import configs
import kvgen
from kvgen import assert_close, empty_poisoned, make_kv, randn

BACKEND = "triton"          # the backend the GPU tier report counts these tests under

# Lengths: empty, one token, odd, longer than one split (CPU chunks are >= 4 blocks of 16), a page.
LENS = [0, 1, 37, 150, 16]

# (form, page_size, GQA group, head_dim, dtype): every form, page size, group and head dim at least
# twice, in a slice the interpreter runs in seconds (the GPU tier runs the product).
CPU_CASES = [
    ("NHD", 16, 4, 128, torch.float16), ("NHD", 3, 1, 64, torch.float32), ("NHD", 1, 8, 80, torch.float16),
    ("HND", 16, 8, 64, torch.float32), ("HND", 3, 4, 80, torch.float16), ("HND", 1, 1, 128, torch.float16),
    ("vllm", 16, 1, 80, torch.float16), ("vllm", 3, 8, 128, torch.float16), ("vllm", 1, 4, 64, torch.float32),
    ("ragged", 1, 4, 64, torch.float16), ("ragged", 1, 8, 128, torch.float32),
    ("token_pool", 1, 4, 128, torch.float16), ("token_pool", 1, 1, 80, torch.float32),
]


def reference(case, q, **opts):
    b = q.shape[0]
    return kvgen.attention_f64(q, torch.arange(b + 1), case.k_rows, case.v_rows, case.indptr, causal=True, **opts)


def run_plan(dec, case, q, num_splits=None, **opts):
    """BatchDecode plan + run into poisoned outputs (so an unwritten element fails)."""
    dec.plan(case.kv, q.shape[1], return_lse=True, num_splits=num_splits, **opts)
    out = empty_poisoned(q.shape, q.dtype, q.device)
    lse = empty_poisoned(q.shape[:2], torch.float32, q.device)
    o, l = dec.run(q, case.kv, out=out, lse=lse)
    assert o is out and l is lse
    return o, l


def check(case, q, out, lse, what, **opts):
    want_o, want_l = reference(case, q, **opts)
    b = len(case.lens)
    what = f"{what} [{case.describe()} q_heads={q.shape[1]}]"
    assert_close(out[:b], want_o, q.dtype, what)
    assert_close(lse[:b], want_l, torch.float32, what + " lse", factor=100 if q.dtype != torch.float32 else 1)
    for i, n in enumerate(case.lens):
        if n == 0:
            assert (out[i] == 0).all() and torch.isneginf(lse[i]).all(), f"{what}: empty sequence {i} must give 0/-inf"


@pytest.mark.parametrize("form,page_size,group,head_dim,dtype", CPU_CASES)
@pytest.mark.parametrize("splits", [None, 3])
def test_decode_cpu(form, page_size, group, head_dim, dtype, splits, gen, device):
    case = make_kv(LENS, layout=form, page_size=page_size, kv_heads=2, head_dim=head_dim, dtype=dtype,
                   device=device, gen=gen)
    q = randn((len(LENS), 2 * group, head_dim), dtype, device, gen)
    dec = attn.BatchDecode(max_batch=len(LENS), max_splits=4, device=device)
    out, lse = run_plan(dec, case, q, num_splits=splits)
    check(case, q, out, lse, f"BatchDecode splits={splits}")


@pytest.mark.parametrize("form", ["HND", "vllm", "token_pool"])
def test_decode_functional(form, gen, device):
    """attn.decode(backend="triton"): the same plan + run, sized to its one batch."""
    case = make_kv(LENS, layout=form, page_size=16, kv_heads=2, head_dim=64, dtype=torch.float16, device=device,
                   gen=gen, page_table=form == "HND")
    q = randn((len(LENS), 8, 64), torch.float16, device, gen)
    for splits in (None, 1, 5):
        out, lse = attn.decode(q, case.kv, return_lse=True, num_splits=splits, backend="triton")
        check(case, q, out, lse, f"attn.decode splits={splits}")
    out = attn.decode(q, case.kv, backend="triton")
    assert_close(out, reference(case, q)[0], torch.float16, "attn.decode without lse")


@pytest.mark.parametrize("opts", [dict(window_left=20), dict(softcap=5.0, sm_scale=0.3), dict(window_left=0),
                                  dict(window_left=70, softcap=30.0)])
def test_decode_options(opts, gen, device):
    case = make_kv(LENS, layout="NHD", page_size=16, kv_heads=2, head_dim=64, dtype=torch.float32, device=device,
                   gen=gen, last_page_len=True)
    q = randn((len(LENS), 8, 64), torch.float32, device, gen)
    dec = attn.BatchDecode(max_batch=len(LENS), device=device)
    for splits in (None, 3):
        out, lse = run_plan(dec, case, q, num_splits=splits, **opts)
        check(case, q, out, lse, f"options {opts} splits={splits}", **opts)


def test_batch_decode_replan(gen, device):
    """One BatchDecode re-planned with other lengths, batch sizes and page maps: every run is
    right, and rows past the planned batch are not written."""
    dec = attn.BatchDecode(max_batch=6, device=device)
    q = randn((6, 8, 64), torch.float16, device, gen)
    for lens, form in (([37, 0, 5, 150, 1], "vllm"), ([3, 200, 17], "vllm"), ([1, 1, 1, 1, 1, 90], "vllm"),
                       ([0, 0], "vllm")):
        case = make_kv(lens, layout=form, page_size=16, kv_heads=2, head_dim=64, dtype=torch.float16, device=device,
                       gen=gen)
        out, lse = run_plan(dec, case, q)
        check(case, q[:len(lens)], out, lse, f"re-plan lens={lens}")
        assert out[len(lens):].isnan().all(), "rows past the planned batch must not be written"


def test_fit_wave_splits_fill_one_wave_with_the_shortest_chunks():
    """Config fit_wave: a mixed batch's chunks number at most the wave (programs_per_sm x SMs over
    the kv heads), where equal total / target chunks overshoot it, and a chunk one block shorter
    would not fit: the shortest that does. Chunks keep min_chunk_blocks; a batch larger than the
    wave gets one chunk a sequence."""
    from attn.triton_kernels.decode import choose_splits
    from attn.tune import mixed_lengths
    lens = np.array(mixed_lengths())
    cfg = dict(BLOCK_N=32, programs_per_sm=4, min_chunk_blocks=8)
    wave = 4 * 132 // 8
    assert choose_splits(lens, 8, 132, cfg).sum() > wave                  # the overshoot fit_wave removes
    splits = choose_splits(lens, 8, 132, {**cfg, "fit_wave": True})
    assert splits.sum() <= wave, splits.sum()
    blocks = -(-lens // 32)
    chunk = int((-(-blocks // splits)).max())                          # the longest chunk, in blocks
    assert chunk >= 8 and (-(-blocks // (chunk - 1))).sum() > wave, chunk
    assert (choose_splits(np.full(500, 4096), 8, 132, {**cfg, "fit_wave": True}) == 1).all()
    assert (choose_splits(np.array([100, 5, 0]), 8, 132, {**cfg, "fit_wave": True}) == 1).all()   # < 8 blocks


@pytest.mark.parametrize("option,form", [("fit_wave", "HND"), ("fit_wave", "vllm"), ("longest_first", "NHD"),
                                         ("longest_first", "vllm"), ("guided", "HND"), ("guided", "token_pool")])
def test_batch_decode_planning_options(option, form, gen, device):
    """The host-side planning options: fit_wave (chunks fitted to one wave), longest_first (the
    work items run longest chunk first: the plan's item list in non-increasing length), guided
    (chunks of decreasing length, the first the longest). All split some sequence and give the
    reference's answer."""
    lens = [5, 40, 77, 0, 130, 1, 33]
    case = make_kv(lens, layout=form, page_size=16, kv_heads=2, head_dim=64, dtype=torch.float16, device=device,
                   gen=gen)
    q = randn((len(lens), 8, 64), torch.float16, device, gen)
    dec = attn.BatchDecode(max_batch=len(lens), device=device,
                           kernel_config={option: 0.5 if option == "guided" else True, "BLOCK_N": 16,
                                          "min_chunk_blocks": 1, "programs_per_sm": 8})
    out, lse = run_plan(dec, case, q)
    assert int(dec.merge_indptr[-1]) > 0, "the plan must split some sequence"
    if option in ("longest_first", "guided"):
        n = int(dec.work.num_items)
        size = (dec.work.kv_end[:n].clamp(max=max(lens)) - dec.work.kv_start[:n]).cpu()
        assert (size[:-1] >= size[1:]).all() and (size[0] > size[-1]), size
    check(case, q, out, lse, option)


def test_guided_items_cover_every_sequence_longest_chunks_first():
    """guided_decode_items: every sequence's KV [begin, len) is covered once by its chunks, in KV
    order of its partial rows (what the merge expects), each chunk whole blocks from a block
    boundary; items run longest first, and no chunk of a split sequence is below half the floor; the item count stays within the bound
    BatchDecode sizes its work list by, over random batches."""
    from attn.scheduling import guided_decode_items
    rng = np.random.default_rng(0)
    for trial in range(200):
        b = int(rng.integers(1, 80))
        lens = np.exp(rng.uniform(0, math.log(70000), b)).astype(np.int64)
        lens[rng.integers(0, b)] = 0
        begin = np.where(rng.random(b) < 0.3, lens // 3, 0)
        bn, slots, floor = int(rng.choice([16, 32, 64])), int(rng.integers(1, 100)), float(rng.choice([0.25, 0.5]))
        items, mi = guided_decode_items(lens, bn, slots, 2, floor, kv_begin=begin)
        assert len(items) <= 2 * b + math.ceil(slots * (2 + math.log(1 / floor)))
        blocks = np.maximum(-(-(lens - begin // bn * bn) // bn), 1)
        smallest = max(2, int(floor * blocks.sum() / slots))
        size = items[:, 3] - items[:, 2]
        assert (size[:-1] >= size[1:]).all()                            # launch order: longest first
        for r in range(b):
            mine = items[items[:, 0] == r]
            mine = mine[np.argsort(mine[:, 2])]
            assert (mine[:, 2] % bn == 0).all()
            assert mine[0, 2] == begin[r] // bn * bn and mine[-1, 3] == lens[r], (trial, r)
            assert (mine[1:, 2] == mine[:-1, 3]).all(), (trial, r)   # contiguous, in KV order
            n = len(mine)
            assert mi[r + 1] - mi[r] == (n if n > 1 else 0)
            want = np.arange(mi[r], mi[r] + n) if n > 1 else np.full(1, -1)
            assert (mine[:, 4] == want).all(), (trial, r)
            if n > 1:
                assert (-(-(mine[:, 3] - mine[:, 2]) // bn) >= min(smallest, blocks[r]) // 2).all()


def test_guided_plans_take_equal_chunks_for_even_lengths(gen, device):
    """Config guided applies where the lengths vary (the longest over twice the mean): an even
    batch gets the equal chunks it would get without it (guided ones only add items there), a
    mixed one more, shorter-ending chunks; both right."""
    cfg = {"BLOCK_N": 16, "min_chunk_blocks": 1, "programs_per_sm": 8}
    for lens, same in (([120, 130, 125, 140], True), ([5, 300, 17, 40], False)):
        case = make_kv(lens, layout="HND", page_size=16, kv_heads=2, head_dim=64, dtype=torch.float16,
                       device=device, gen=gen)
        q = randn((len(lens), 8, 64), torch.float16, device, gen)
        items = {}
        for name, extra in (("equal", {}), ("guided", {"guided": 0.5})):
            dec = attn.BatchDecode(max_batch=len(lens), device=device, kernel_config={**cfg, **extra})
            out, lse = run_plan(dec, case, q)
            check(case, q, out, lse, f"{name} {lens}")
            n = int(dec.work.num_items)
            items[name] = torch.stack([dec.work.kv_start[:n], dec.work.kv_end[:n]]).cpu()
        assert torch.equal(items["equal"], items["guided"]) == same, items


def test_timeline_summary_reads_idle_multiprocessors():
    """attn.timeline.summary on a hand-made launch: SM 0 busy 0-10 us, SM 1 busy 0-5 and 6-8,
    SM 2 never used: busy shares 1.0 / 0.7 / 0, the last start 6 us, the span's tail after the
    live programs last fell below half of the peak (3 at 0, 1 at 5, 2 at 6, 1 at 8: 2 of 10 us)."""
    from attn.timeline import summary
    t = np.array([[0, 10, 0], [0, 5, 1], [6, 8, 1], [0, 5, 0]], float)
    s = summary(t, 3)
    assert s["span_us"] == 10 and s["peak_live"] == 3 and s["last_start_us"] == 6
    assert math.isclose(s["sm_busy_max"], 1.0) and s["sm_busy_min"] == 0.0
    assert math.isclose(s["sm_busy_mean"], (1.0 + 0.7) / 3)
    assert math.isclose(s["tail_share"], 0.2)


def test_batch_decode_measure_needs_a_plan_and_a_gpu(gen, device):
    case = make_kv([5, 9], layout="HND", page_size=4, kv_heads=2, head_dim=64, dtype=torch.float16, device=device,
                   gen=gen)
    q = randn((2, 4, 64), torch.float16, device, gen)
    with pytest.raises(ValueError, match="call plan"):
        attn.BatchDecode(max_batch=2, device=device).measure(q, case.kv)
    if torch.device(device).type != "cuda":
        with pytest.raises(ValueError, match="needs a GPU"):
            attn.BatchDecode(max_batch=2, device=device).plan(case.kv, 4).measure(q, case.kv)


@pytest.mark.gpu
def test_batch_decode_measure_times_every_program(gen, device):
    """measure(): one row per live program (items x kv heads), each ending after it starts, on a
    real multiprocessor; the timed launch computes the same output as a plain one."""
    from attn import platform
    case = make_kv([3000, 17, 900, 1], layout="HND", page_size=16, kv_heads=2, head_dim=128, dtype=torch.bfloat16,
                   device=device, gen=gen)
    q = randn((4, 8, 128), torch.bfloat16, device, gen)
    dec = attn.BatchDecode(max_batch=4, device=device).plan(case.kv, 8)
    want = dec.run(q, case.kv).clone()
    t = dec.measure(q, case.kv)
    n = int(dec.work.num_items)
    assert t.shape == (n * 2, 5)
    assert (t[:, 1] >= t[:, 0]).all() and t[:, 0].min() == 0
    assert ((t[:, 2] >= 0) & (t[:, 2] < platform.get(torch.device(device).index).num_sms)).all()
    assert (t[:, 3] == np.repeat(np.arange(n), 2)).all() and (t[:, 4] == np.tile([0, 1], n)).all()
    assert torch.equal(dec.run(q, case.kv), want)


def test_batch_decode_errors(gen, device):
    case = make_kv([5, 9, 3], layout="HND", page_size=4, kv_heads=2, head_dim=64, dtype=torch.float16, device=device,
                   gen=gen)
    with pytest.raises(ValueError, match="max_batch=2"):
        attn.BatchDecode(max_batch=2, device=device).plan(case.kv, 4)
    with pytest.raises(ValueError, match="q_heads"):
        attn.BatchDecode(max_batch=4, device=device).plan(case.kv, 3)
    with pytest.raises(ValueError, match="max_splits=2"):
        attn.BatchDecode(max_batch=4, max_splits=2, device=device).plan(case.kv, 4, num_splits=3)
    with pytest.raises(ValueError, match="max_pages"):
        attn.BatchDecode(max_batch=4, max_pages=2, device=device).plan(case.kv, 4)
    dec = attn.BatchDecode(max_batch=4, device=device).plan(case.kv, 4)
    with pytest.raises(ValueError, match="q must be"):
        dec.run(randn((3, 8, 64), torch.float16, device, gen), case.kv)
    with pytest.raises(RuntimeError, match="before plan"):
        attn.BatchDecode(max_batch=4, device=device).run(randn((3, 4, 64), torch.float16, device, gen), case.kv)
    # Rotary on load: every position below the longest kv_len (9) needs its cos/sin row.
    short = attn.Rotary(attn.rotary.cos_sin_cache(8, 64, device=device), "neox")
    with pytest.raises(ValueError, match="cos_sin_cache must have a row .* kv_len=9; got 8 rows"):
        attn.BatchDecode(max_batch=4, device=device).plan(case.kv, 4, rotary=short)
    wide = attn.Rotary(attn.rotary.cos_sin_cache(16, 128, device=device), "neox")
    with pytest.raises(ValueError, match="rotary_dim must be <= head_dim=64; got 128"):
        attn.decode(randn((3, 4, 64), torch.float16, device, gen), case.kv, rotary=wide, backend="triton")
    with pytest.raises(ValueError, match="kv_len=9; got 8 rows"):       # the reference says so too
        attn.decode(randn((3, 4, 64), torch.float16, device, gen), case.kv, rotary=short, backend="torch")


@pytest.mark.parametrize("form", ["NHD", "HND", "vllm"])
@pytest.mark.parametrize("page_size,page_runs", [(2, True), (4, True), (8, True), (4, False)])
def test_decode_block_over_several_pages(form, page_size, page_runs, gen, device):
    """A KV block of 16 keys over 2-8 shuffled pages, with one page number loaded a run of
    page_size keys and broadcast (page_runs) or one a key: lengths that end inside a run and
    inside a page."""
    case = make_kv([37, 1, 16, 5, 0, 150], layout=form, page_size=page_size, kv_heads=2, head_dim=64,
                   device=device, gen=gen)
    q = randn((6, 8, 64), torch.float32, device, gen)
    with configs.override("decode", dict(BLOCK_N=16, page_runs=page_runs)):
        out, lse = run_plan(attn.BatchDecode(max_batch=6, device=device), case, q, num_splits=2)
    check(case, q, out, lse, "block over several pages")


@pytest.mark.parametrize("mode", [1, 2])
@pytest.mark.parametrize("page_size,group,dtype", [(16, 4, torch.float16), (3, 1, torch.float32), (8, 8, torch.float16)])
def test_decode_vllm_k_by_dim_group(mode, page_size, group, dtype, gen, device):
    """vLLM's K loaded a dim group at a time (config k_by_group 1), or whole page-heads of K and V
    as flat rows (2: full blocks of whole pages; page 3 never has one, so it takes mode 1's path),
    gives the same answer as the [slot, dim] tile, on odd lengths, pages and splits."""
    case = make_kv(LENS, layout="vllm", page_size=page_size, kv_heads=2, head_dim=128, dtype=dtype, device=device,
                   gen=gen)
    q = randn((len(LENS), 2 * group, 128), dtype, device, gen)
    for splits in (None, 3):
        dec = attn.BatchDecode(max_batch=len(LENS), max_splits=4, device=device,
                               kernel_config=dict(k_by_group=mode, BLOCK_N=32))
        out, lse = run_plan(dec, case, q, num_splits=splits)
        assert dec.cfg["k_by_group"] == mode
        check(case, q, out, lse, f"k_by_group={mode} splits={splits}")


def test_decode_vllm_flat_pages_only_where_page_heads_are_dense(gen, device):
    """Whole page-heads are read as flat runs only when the cache stores them densely. Heads taken
    every other one from a larger buffer keep each page-head dense (flat); 16 slots of 32-slot pages
    do not (the dim-group tile instead). Both give the reference's answer."""
    from attn.triton_kernels.attention import k_tile_mode
    case = make_kv(LENS, layout="vllm", page_size=16, kv_heads=2, head_dim=128, dtype=torch.float16, device=device,
                   gen=gen)
    kv = case.kv
    assert k_tile_mode(dict(k_by_group=2), kv) == 2
    assert k_tile_mode(dict(k_by_group=1), kv) == 1
    P, H = kv.k.shape[:2]
    nan = float("nan")
    wide_heads_k = torch.full((P, 2 * H) + tuple(kv.k.shape[2:]), nan, dtype=kv.k.dtype, device=device)
    wide_heads_v = torch.full((P, 2 * H) + tuple(kv.v.shape[2:]), nan, dtype=kv.v.dtype, device=device)
    wide_heads_k[:, ::2], wide_heads_v[:, ::2] = kv.k, kv.v
    wide_slots_k = torch.full(tuple(kv.k.shape[:3]) + (32, 8), nan, dtype=kv.k.dtype, device=device)
    wide_slots_v = torch.full(tuple(kv.v.shape[:3]) + (32,), nan, dtype=kv.v.dtype, device=device)
    wide_slots_k[..., :16, :], wide_slots_v[..., :16] = kv.k, kv.v
    q = randn((len(LENS), 8, 128), torch.float16, device, gen)
    want = attn.decode(q, kv, backend="torch")
    for label, k, v, mode in (("strided heads", wide_heads_k[:, ::2], wide_heads_v[:, ::2], 2),
                              ("16 of 32 slots", wide_slots_k[..., :16, :], wide_slots_v[..., :16], 1)):
        view = attn.KVCache.paged(k, v, kv.page_indptr, kv.page_indices, kv.seq_lens, layout="vllm")
        assert k_tile_mode(dict(k_by_group=2), view) == mode, label
        dec = attn.BatchDecode(max_batch=len(LENS), device=device, kernel_config=dict(k_by_group=2, BLOCK_N=32))
        got = dec.plan(view, q_heads=8).run(q, view)
        assert_close(got, want, torch.float16, label)


@pytest.mark.parametrize("form,page_size,rotate_k", [("HND", 16, False), ("ragged", 1, False), ("ragged", 1, True)])
def test_decode_rotary_on_load(form, page_size, rotate_k, gen, device):
    """attn.Rotary on decode: q rotated on load at position kv_len - 1 (and a ragged K given
    un-rotated rotated at its own positions), split or not, against the torch backend."""
    case = make_kv(LENS, layout=form, page_size=page_size, kv_heads=2, head_dim=64, dtype=torch.float16,
                   device=device, gen=gen)
    q = randn((len(LENS), 8, 64), torch.float16, device, gen)
    rot = attn.Rotary(attn.rotary.cos_sin_cache(256, 64, base=500.0, device=device), "neox", rotate_k=rotate_k)
    want = attn.decode(q, case.kv, rotary=rot, backend="torch")
    for splits in (None, 3):
        got = attn.decode(q, case.kv, rotary=rot, num_splits=splits, backend="triton")
        assert_close(got, want, torch.float16, f"rotary {form} rotate_k={rotate_k} splits={splits}")
    if not rotate_k:                   # q rotated outside, then plain decode: the same answer
        pos = (case.kv.seq_lens.long() - 1).clamp(min=0)
        q_rot, _ = attn.rotary.apply(q, q[:, :2], pos, rot.cos_sin_cache, style="neox", backend="torch")
        assert_close(attn.decode(q_rot, case.kv, backend="torch"), want, torch.float16, "rotated outside")


def test_decode_register_ceiling_reaches_the_launch(gen, device):
    """maxnreg (the pre-Hopper NVIDIA heuristic's at head dims 192 / 256) is a launch option the
    kernel is launched with, not a constexpr: same answer, and the config keeps it."""
    case = make_kv(LENS, layout="HND", page_size=16, kv_heads=2, head_dim=256, dtype=torch.float16, device=device,
                   gen=gen)
    q = randn((len(LENS), 8, 256), torch.float16, device, gen)
    dec = attn.BatchDecode(max_batch=len(LENS), max_splits=4, device=device, kernel_config=dict(maxnreg=255))
    out, lse = run_plan(dec, case, q, num_splits=3)
    assert dec.cfg["maxnreg"] == 255
    check(case, q, out, lse, "maxnreg 255")


def test_occupancy_register_ceiling():
    """Config occupancy: the ceiling that keeps that many 4-warp programs resident on an sm_90 SM
    (65536 registers, allocated 256 a warp): 6 -> 80, 5 -> 96, 3 -> 168; applied only where the
    compiled binary's own count is above it, and never on AMD."""
    from types import SimpleNamespace
    from attn.platform import Platform
    from attn.triton_kernels.decode import fit_occupancy, register_ceiling
    assert [register_ceiling(n, 4, "sm_90") for n in (6, 5, 3)] == [80, 96, 168]
    assert register_ceiling(1, 1, "sm_90") == 255
    nv, amd = Platform("nvidia", "sm_90", 32, 132, "H200"), Platform("amd", "gfx942", 64, 304, "MI300X")
    cfg = dict(num_warps=4, occupancy=6)
    assert fit_occupancy(cfg, SimpleNamespace(n_regs=94), nv) == {"maxnreg": 80}
    assert fit_occupancy(cfg, SimpleNamespace(n_regs=76), nv) == {}
    assert fit_occupancy(cfg, SimpleNamespace(n_regs=94), amd) == {}
    assert fit_occupancy(dict(num_warps=4), SimpleNamespace(n_regs=200), nv) == {}


@pytest.mark.gpu
def test_decode_occupancy_fits_the_compiled_binary(gen, device):
    """BatchDecode with config occupancy: at the first run the binary is compiled without a
    ceiling, and maxnreg is set only where its registers keep fewer programs resident, so the
    binary launched fits them; the answer is the reference's either way."""
    from attn import platform
    from attn.triton_kernels.decode import register_ceiling
    case = make_kv([3000, 17, 900, 1, 0], layout="HND", page_size=16, kv_heads=2, head_dim=128,
                   dtype=torch.bfloat16, device=device, gen=gen)
    q = randn((5, 8, 128), torch.bfloat16, device, gen)
    tile = dict(BLOCK_N=32, num_warps=4, num_stages=3)
    plain = attn.BatchDecode(max_batch=5, device=device, kernel_config=dict(tile, occupancy=0))   # not a tuned one
    run_plan(plain, case, q)
    natural = plain._launch(q, case.kv, torch.empty_like(q), torch.empty(5, 8, device=device), compile_only=True)
    natural._init_handles()
    for want in (6, 2):
        dec = attn.BatchDecode(max_batch=5, device=device, kernel_config=dict(tile, occupancy=want))
        out, lse = run_plan(dec, case, q)
        check(case, q, out, lse, f"occupancy {want}")
        cap = register_ceiling(want, 4, platform.get(torch.device(device).index).arch)
        assert dec.cfg.get("maxnreg") == (cap if natural.n_regs > cap else None), (want, natural.n_regs, dec.cfg)
        launched = dec._launch(q, case.kv, out, lse, compile_only=True)
        launched._init_handles()
        assert launched.n_regs <= cap, (want, launched.n_regs)


GPU_FORMS = [(f, p) for f in ("NHD", "HND", "vllm") for p in (1, 3, 16)] + [("ragged", 1), ("token_pool", 1)]


# ------------------------------------------------------------------------------------ GPU tier
@pytest.mark.gpu
@pytest.mark.parametrize("dtype", [torch.bfloat16, torch.float16])
@pytest.mark.parametrize("group,head_dim", [(1, 64), (4, 128), (8, 256), (4, 80), (8, 96), (4, 192)])
@pytest.mark.parametrize("form,page_size", GPU_FORMS)
def test_decode_gpu_matrix(form, page_size, group, head_dim, dtype, gen, device):
    lens = kvgen.random_lens(gen, 9, 3000) + [4097]
    case = make_kv(lens, layout=form, page_size=page_size, kv_heads=2, head_dim=head_dim, dtype=dtype, device=device,
                   gen=gen)
    q = randn((len(lens), 2 * group, head_dim), dtype, device, gen)
    dec = attn.BatchDecode(max_batch=len(lens), device=device)
    for splits in (None, 1, 7):
        out, lse = run_plan(dec, case, q, num_splits=splits)
        check(case, q, out, lse, f"gpu splits={splits}")


@pytest.mark.gpu
@pytest.mark.parametrize("head_dim", [64, 96, 128, 256])
def test_decode_gpu_rotary_rotating_k(head_dim, gen, device):
    """rotate_k decode over a ragged cache at the head dims whose configs the compile matrix
    changed (3 stages needed 245-254 KB of shared memory on sm_90)."""
    lens = kvgen.random_lens(gen, 9, 3000) + [4097]
    case = make_kv(lens, layout="ragged", page_size=1, kv_heads=2, head_dim=head_dim, dtype=torch.bfloat16,
                   device=device, gen=gen)
    q = randn((len(lens), 8, head_dim), torch.bfloat16, device, gen)
    rot = attn.Rotary(attn.rotary.cos_sin_cache(4200, head_dim, device=device), "neox", rotate_k=True)
    got = attn.decode(q, case.kv, rotary=rot, backend="triton")
    assert_close(got, attn.decode(q, case.kv, rotary=rot, backend="torch"), torch.bfloat16, f"rotate_k d{head_dim}")


@pytest.mark.gpu
@pytest.mark.parametrize("form", ["HND", "NHD", "vllm", "token_pool"])
def test_decode_gpu_long(form, gen, device):
    """128k-token sequences (and a short one beside them): split-KV over many chunks."""
    lens = [131072, 7, 100_000]
    case = make_kv(lens, layout=form, page_size=16, kv_heads=8, head_dim=128, dtype=torch.bfloat16, device=device,
                   gen=gen)
    q = randn((3, 32, 128), torch.bfloat16, device, gen)
    out, lse = attn.decode(q, case.kv, return_lse=True, backend="triton")
    want_o, want_l = attn.decode(q, case.kv, return_lse=True, backend="torch")
    assert_close(out, want_o, torch.bfloat16, f"long {form}")
    assert_close(lse, want_l, torch.float32, f"long {form} lse", factor=1e-3 / 1e-5)


@pytest.mark.gpu
@pytest.mark.parametrize("form,page_size,planning", [("HND", 16, {}), ("vllm", 16, {}), ("NHD", 1, {}),
                                                     ("HND", 16, {"guided": 0.5}), ("NHD", 1, {"guided": 0.25})])
def test_batch_decode_cuda_graph(form, page_size, planning, gen, device):
    """A graph captured once replays right after re-plans with other lengths and page maps over
    the same storage (what a server does every step); NaN where no live token is. With guided
    chunks too: their item count varies with the lengths, within the work list sized at the
    first plan."""
    from attn.layouts import KVCache
    from attn.layouts.descriptors import get_layout
    # Storage for 64K tokens: the longest step below (21773 tokens) fits at every page size.
    max_batch, kvh, hq, d, num_pages = 8, 2, 8, 128, 65536 // page_size
    lay = get_layout(form)
    dt = torch.bfloat16
    k_store = torch.empty(lay.shape("k", num_pages, page_size, kvh, d, dt), dtype=dt, device=device)
    v_store = torch.empty(lay.shape("v", num_pages, page_size, kvh, d, dt), dtype=dt, device=device)
    q = randn((max_batch, hq, d), dt, device, gen)
    out = torch.empty_like(q)
    lse = torch.empty(max_batch, hq, dtype=torch.float32, device=device)
    dec = attn.BatchDecode(max_batch=max_batch, max_pages=num_pages, device=device, kernel_config=planning)

    def step(lens):
        # New contents (NaN first: unowned pages and slots past a length stay NaN), a new random page map.
        k_store.fill_(math.nan)
        v_store.fill_(math.nan)
        need = [(n + page_size - 1) // page_size for n in lens]
        perm = torch.randperm(num_pages, generator=gen)[:sum(need)].to(device=device, dtype=torch.int32)
        indptr = torch.tensor([0] + need, dtype=torch.int32).cumsum(0).to(torch.int32).to(device)
        seq = torch.tensor(lens, dtype=torch.int32, device=device)
        kv = KVCache.paged(k_store, v_store, indptr, perm, seq, layout=form)
        rows = sum(lens)
        k_rows = randn((rows, kvh, d), dt, device, gen)
        v_rows = randn((rows, kvh, d), dt, device, gen)
        slots = torch.cat([perm[int(indptr[b]):int(indptr[b + 1])].long().repeat_interleave(page_size)[:n] * page_size
                           + torch.arange(n, device=device) % page_size for b, n in enumerate(lens)])
        attn.layouts.write_kv(kv, k_rows, v_rows, slots)
        q.copy_(randn(q.shape, dt, device, gen))
        return kv

    kv = step([100, 5000, 1, 0, 33, 2048, 17, 64])
    dec.plan(kv, hq, return_lse=True)
    dec.run(q, kv, out=out, lse=lse)                    # compile outside the capture
    torch.cuda.synchronize()
    graph = torch.cuda.CUDAGraph()
    with torch.cuda.graph(graph):
        dec.run(q, kv, out=out, lse=lse)
    for lens in ([3, 1, 9000, 0, 5, 700, 64, 12000], [1] * 8, [20000, 2, 3], [0] * 8, [4095, 4096, 4097, 1, 2, 3, 4, 5]):
        kv = step(lens)
        dec.plan(kv, hq, return_lse=True)
        out.fill_(math.nan)
        lse.fill_(math.nan)
        graph.replay()
        want_o, want_l = attn.decode(q[:len(lens)], kv, return_lse=True, backend="torch")
        assert_close(out[:len(lens)], want_o, dt, f"graph replay {form} lens={lens}")
        assert_close(lse[:len(lens)], want_l, torch.float32, f"graph replay lse lens={lens}", factor=100)
