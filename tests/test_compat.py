"""attn.compat: flash-attn's varlen and kvcache entry points, against a float64 definition."""
import pytest
import torch

import attn
from attn.compat import flash_attn_varlen_func, flash_attn_with_kvcache
from attn.reference.rotary import rotate
from kvgen import assert_close, attention_f64, randn


def _cu(lens):
    return torch.tensor([0] + list(lens)).cumsum(0).to(torch.int32)


@pytest.mark.parametrize("causal,window", [(True, (-1, -1)), (False, (-1, -1)), (True, (5, 0))])
def test_varlen_matches_definition(causal, window, gen):
    q_lens, k_lens = [7, 1, 12], [7, 9, 20]
    q = randn((sum(q_lens), 8, 64), gen=gen)
    k = randn((sum(k_lens), 2, 64), gen=gen)
    v = randn((sum(k_lens), 2, 64), gen=gen)
    out, lse, probs = flash_attn_varlen_func(q, k, v, _cu(q_lens), _cu(k_lens), 12, 20, causal=causal,
                                             window_size=window, return_attn_probs=True)
    want, want_lse = attention_f64(q, _cu(q_lens), k, v, _cu(k_lens), causal=causal, window_left=window[0])
    assert_close(out, want, torch.float32, "varlen out")
    assert lse.shape == (8, sum(q_lens)) and probs is None
    assert_close(lse, want_lse.T, torch.float32, "varlen lse")


def test_varlen_paged_block_table(gen):
    lens = [5, 19]
    ps, nblocks = 4, 12
    k_cache = randn((nblocks, ps, 2, 64), gen=gen)
    v_cache = randn((nblocks, ps, 2, 64), gen=gen)
    table = torch.tensor([[3, 0, 0, 0, 0], [7, 1, 10, 2, 5]], dtype=torch.int32)
    q = randn((sum(lens), 4, 64), gen=gen)
    out = flash_attn_varlen_func(q, k_cache, v_cache, _cu(lens), _cu(lens), causal=True, block_table=table)
    rows = [k_cache[table[b, t // ps], t % ps] for b, n in enumerate(lens) for t in range(n)]
    vrows = [v_cache[table[b, t // ps], t % ps] for b, n in enumerate(lens) for t in range(n)]
    want, _ = attention_f64(q, _cu(lens), torch.stack(rows), torch.stack(vrows), _cu(lens), causal=True)
    assert_close(out, want, torch.float32, "paged varlen")


@pytest.mark.parametrize("interleaved", [True, False])
def test_with_kvcache_appends_rotates_and_attends(interleaved, gen):
    b, s_cache, hk, hq, d, new, sq = 3, 32, 2, 4, 64, 2, 2
    k_cache = randn((b + 1, s_cache, hk, d), gen=gen)
    v_cache = randn((b + 1, s_cache, hk, d), gen=gen)
    before_k, before_v = k_cache.clone(), v_cache.clone()
    seqlens = torch.tensor([4, 0, 17], dtype=torch.int32)
    batch_idx = torch.tensor([2, 0, 3], dtype=torch.int32)
    q = randn((b, sq, hq, d), gen=gen)
    k_new, v_new = randn((b, new, hk, d), gen=gen), randn((b, new, hk, d), gen=gen)
    cache = attn.rotary.cos_sin_cache(64, 32)
    cos, sin = cache[:, :16], cache[:, 16:]
    out, lse = flash_attn_with_kvcache(q, k_cache, v_cache, k_new, v_new, rotary_cos=cos, rotary_sin=sin,
                                       cache_seqlens=seqlens, cache_batch_idx=batch_idx, causal=True,
                                       rotary_interleaved=interleaved, return_softmax_lse=True)
    style = "gptj" if interleaved else "neox"
    q_rows, k_rows, v_rows, k_lens = [], [], [], []
    for i in range(b):
        row, n0 = int(batch_idx[i]), int(seqlens[i])
        pos_new = torch.arange(n0, n0 + new)
        k_rot = rotate(k_new[i], pos_new, cache, style, 32)
        # the new tokens are written into the caller's cache row, rotated
        assert_close(k_cache[row, n0:n0 + new], k_rot, torch.float32, f"written k row {row}")
        assert torch.equal(v_cache[row, n0:n0 + new], v_new[i])
        assert torch.equal(k_cache[row, :n0], before_k[row, :n0]) and torch.equal(v_cache[row, n0 + new:],
                                                                                   before_v[row, n0 + new:])
        k_rows.append(torch.cat([before_k[row, :n0], k_rot]))
        v_rows.append(torch.cat([before_v[row, :n0], v_new[i]]))
        q_rows.append(rotate(q[i], torch.arange(n0, n0 + sq), cache, style, 32))
        k_lens.append(n0 + new)
    want, want_lse = attention_f64(torch.cat(q_rows), _cu([sq] * b), torch.cat(k_rows), torch.cat(v_rows),
                                   _cu(k_lens), causal=True)
    assert_close(out, want.reshape(b, sq, hq, d), torch.float32, "kvcache out")
    assert_close(lse, want_lse.reshape(b, sq, hq).transpose(1, 2), torch.float32, "kvcache lse")
    assert torch.equal(k_cache[1], before_k[1]), "a cache row no batch entry uses must stay untouched"


def test_with_kvcache_paged_decode(gen):
    ps = 8
    k_cache, v_cache = randn((10, ps, 2, 64), gen=gen), randn((10, ps, 2, 64), gen=gen)
    table = torch.tensor([[4, 9, 0], [2, 0, 0]], dtype=torch.int32)
    seqlens = torch.tensor([13, 3], dtype=torch.int32)
    q = randn((2, 1, 8, 64), gen=gen)
    out = flash_attn_with_kvcache(q, k_cache, v_cache, cache_seqlens=seqlens, block_table=table)
    want = attn.decode(q[:, 0], attn.KVCache.from_page_table(k_cache, v_cache, table, seqlens, layout="NHD"),
                       backend="torch")
    assert_close(out[:, 0], want, torch.float32, "paged decode")


@pytest.mark.parametrize("kw,name", [(dict(dropout_p=0.1), "dropout_p"), (dict(alibi_slopes=torch.ones(8)),
                                                                           "alibi_slopes"),
                                     (dict(window_size=(4, 3)), "window_size")])
def test_unsupported_options_name_the_argument(kw, name, gen):
    q = randn((4, 8, 64), gen=gen)
    k = randn((4, 2, 64), gen=gen)
    with pytest.raises(ValueError, match=name):
        flash_attn_varlen_func(q, k, k, _cu([4]), _cu([4]), causal=True, **kw)
