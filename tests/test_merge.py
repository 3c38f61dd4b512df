"""Merge kernels (triton_kernels/merge.py) against the reference (attn/reference/merge.py) and
against the definition: merging the partial states of disjoint KV ranges gives the state of
their union. CPU tier through the interpreter (fp16/fp32); GPU tier adds bf16."""
import math

import pytest
import torch

import attn
from attn.reference import merge as ref
from attn.triton_kernels import merge as tm
from kvgen import assert_close, empty_poisoned, randn, rel_err

BACKEND = "triton"          # the backend the GPU tier report counts these tests under

CPU_DTYPES = (torch.float16, torch.float32)


def partials(n, lead, heads, d, dtype, gen, device, empty=()):
    """n random partial states [n, *lead, heads, d] / [n, *lead, heads]; parts listed in `empty`
    (index tuples into the lse tensor) saw no key: lse -inf and NaN in their o (never read)."""
    outs = randn((n, *lead, heads, d), dtype, device, gen)
    lses = randn((n, *lead, heads), torch.float32, device, gen, scale=4.0)
    for idx in empty:
        lses[idx] = -math.inf
        outs[idx] = math.nan
    return outs, lses


def ref_merge(outs, lses):
    # The reference multiplies o by a zero weight; give it zeros where the kernel may hold NaN.
    return ref.merge_states(torch.where(torch.isinf(lses)[..., None], 0.0, outs.double()), lses.double())


@pytest.mark.parametrize("dtype", CPU_DTYPES)
@pytest.mark.parametrize("n,lead,heads,d", [(1, (3,), 2, 64), (2, (4,), 4, 80), (5, (2, 3), 3, 128), (20, (2,), 2, 64)])
def test_merge_states(n, lead, heads, d, dtype, gen, device):
    empty = [(slice(None), 0, 0)]                       # a row where every part is empty
    if n > 1:
        empty.append((n - 1, Ellipsis))                 # a part empty everywhere
    outs, lses = partials(n, lead, heads, d, dtype, gen, device, empty)
    out, lse = attn.merge_states(outs, lses, backend="triton")
    want_o, want_l = ref_merge(outs, lses)
    what = f"merge_states n={n} lead={lead} heads={heads} d={d} {dtype}"
    assert out.dtype == dtype and out.shape == outs.shape[1:], what
    assert_close(out, want_o, dtype, what)
    assert_close(lse, want_l, torch.float32, what + " lse", factor=10)
    assert torch.isneginf(lse[(0,) * (len(lead) - 1) + (0, 0)]) and not out[(0,) * len(lead) + (0,)].any(), \
        f"{what}: all-empty row must give out 0, lse -inf"


@pytest.mark.parametrize("dtype", CPU_DTYPES)
@pytest.mark.parametrize("lead,heads,d", [((5,), 4, 64), ((2, 3), 2, 80), ((3,), 8, 128)])
def test_merge_state(lead, heads, d, dtype, gen, device):
    outs, lses = partials(2, lead, heads, d, dtype, gen, device)
    lses[0, 0, 0] = -math.inf                           # a empty, b not
    lses[1, 0, 1] = -math.inf                           # b empty, a not
    lses[:, -1, -1] = -math.inf                         # both empty
    out, lse = attn.merge_state(outs[0], lses[0], outs[1], lses[1], backend="triton")
    want_o, want_l = ref_merge(outs, lses)
    what = f"merge_state lead={lead} heads={heads} d={d} {dtype}"
    assert_close(out, want_o, dtype, what)
    assert_close(lse, want_l, torch.float32, what + " lse", factor=10)


def test_merge_of_split_attention_is_whole_attention(gen, device):
    """The definition: softmax over a KV range split in two, each part's (o, lse) merged."""
    import kvgen
    k = randn((50, 2, 64), torch.float32, device, gen)
    v = randn((50, 2, 64), torch.float32, device, gen)
    q = randn((1, 4, 64), torch.float32, device, gen)
    parts = []
    for lo, hi in ((0, 23), (23, 50)):
        o, l = kvgen.attention_f64(q, torch.tensor([0, 1]), k[lo:hi], v[lo:hi], torch.tensor([0, hi - lo]))
        parts.append((o.float().to(device), l.float().to(device)))
    whole_o, whole_l = kvgen.attention_f64(q, torch.tensor([0, 1]), k, v, torch.tensor([0, 50]))
    out, lse = attn.merge_state(parts[0][0], parts[0][1], parts[1][0], parts[1][1], backend="triton")
    assert_close(out, whole_o, torch.float32, "split attention merged")
    assert_close(lse, whole_l, torch.float32, "split attention merged lse")


@pytest.mark.parametrize("d,grid_rows", [(64, None), (80, None), (64, 3)])
def test_merge_segments(d, grid_rows, gen, device):
    """The split-KV merge: rows with no parts and rows past the live count are left alone. With
    grid_rows 3 each program walks several entries (loading the next one's bounds ahead)."""
    heads = 3
    seg = [0, 3, 0, 17, 2, 0]                           # parts per output row; 17 > one BLOCK_P tile
    indptr = torch.tensor([0] + seg, dtype=torch.int64).cumsum(0).to(torch.int32)
    total = int(indptr[-1])
    part_o = randn((total, heads, d), torch.float32, device, gen)
    part_lse = randn((total, heads), torch.float32, device, gen, scale=3.0)
    part_lse[3, 1] = -math.inf                          # one empty part inside a segment
    part_lse[20:22] = -math.inf                         # a segment (row 4) that saw nothing
    part_o[20:22] = math.nan
    max_rows = len(seg) + 2
    full_ip = torch.cat([indptr, indptr[-1:].repeat(2)]).to(device)
    live = len(seg) - 1                                 # the last row is past the live count
    out = empty_poisoned((max_rows, heads, d), torch.float16, device)
    lse = empty_poisoned((max_rows, heads), torch.float32, device)
    num_rows = torch.tensor([live], dtype=torch.int32, device=device)
    tm.merge_segments(part_o, part_lse, full_ip, num_rows, out, lse, max_rows=max_rows, grid_rows=grid_rows)
    for r, n in enumerate(seg):
        s = int(indptr[r])
        if n == 0 or r >= live:
            assert out[r].isnan().all() and lse[r].isnan().all(), f"row {r} (parts {n}) must be left alone"
            continue
        want_o, want_l = ref_merge(part_o[s:s + n], part_lse[s:s + n])
        assert_close(out[r], want_o, torch.float16, f"segment row {r} ({n} parts)")
        assert rel_err(lse[r], want_l) <= 1e-5, f"segment row {r} lse"
    assert (out[4] == 0).all() and torch.isneginf(lse[4]).all(), "an all-empty segment gives 0 and -inf"
    with pytest.raises(ValueError, match=f"max_rows={max_rows + 1} needs merge_indptr >= {max_rows + 2}"):
        tm.merge_segments(part_o, part_lse, full_ip, num_rows, out, lse, max_rows=max_rows + 1)


@pytest.mark.gpu
@pytest.mark.parametrize("dtype", [torch.bfloat16, torch.float16, torch.float32])
@pytest.mark.parametrize("n,rows,heads,d", [(2, 1000, 32, 128), (33, 64, 32, 128), (4, 300, 8, 256), (7, 17, 5, 80)])
def test_merge_states_gpu(n, rows, heads, d, dtype, gen, device):
    outs, lses = partials(n, (rows,), heads, d, dtype, gen, device, [(0, 0), (slice(None), 1, 2)])
    out, lse = attn.merge_states(outs, lses, backend="triton")
    want_o, want_l = ref_merge(outs, lses)
    assert_close(out, want_o, dtype, f"merge_states gpu n={n} rows={rows} {dtype}")
    assert_close(lse, want_l, torch.float32, "lse", factor=10)
    out2, lse2 = attn.merge_state(outs[0], lses[0], outs[1], lses[1], backend="triton")
    want_o, want_l = ref_merge(outs[:2], lses[:2])
    assert_close(out2, want_o, dtype, f"merge_state gpu rows={rows} {dtype}")
