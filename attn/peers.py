"""Peers the benchmark times beside attn, in the same run: PyTorch SDPA backends (flash, cuDNN,
efficient) and FlexAttention always; FlashInfer and flash-attn kernels when importable.

Each maker takes a benchmark case (attn.benchutil.Case) and returns {name: run(i) -> callable}
for the peers that can take it, or {name: "why not"}. Peers get their natural inputs built once,
outside timing: SDPA and FlexAttention dense padded [b, heads, len, d] tensors (GQA by enable_gqa,
or K/V expanded when a backend lacks it), FlashInfer and flash-attn the case's paged cache.
"""
from __future__ import annotations

import importlib.util

import torch

from attn.layouts import to_dense


def importable(name: str) -> bool:
    return importlib.util.find_spec(name) is not None


def optional_peers() -> dict:
    """Which optional peer packages import here (for the report)."""
    return {n: importable(n) for n in ("flashinfer", "flash_attn", "vllm", "sglang")}


def _dense(case, i):
    k, v, _ = to_dense(case.kvs[i])                                  # [b, n, hkv, d]
    b = len(case.kv_lens)
    if case.op == "decode":
        q = case.qs[i][:, None]                                       # [b, 1, hq, d]
    else:
        lq = int(case.q_lens[0])
        q = case.qs[i].view(b, lq, *case.qs[i].shape[1:])
    return q.transpose(1, 2), k.transpose(1, 2), v.transpose(1, 2)  # [b, h, n, d]


def sdpa_peers(case) -> dict:
    """SDPA flash / cuDNN / efficient on dense inputs (uniform lengths only: SDPA has no ragged form)."""
    from torch.nn.attention import SDPBackend, sdpa_kernel
    F = torch.nn.functional
    if len(set(case.kv_lens.tolist())) > 1 or len(set(case.q_lens.tolist())) > 1:
        return {"sdpa-*": "ragged lengths: no dense SDPA form"}
    if case.custom_mask is not None:
        return {"sdpa-*": "custom mask"}
    dense = [_dense(case, i) for i in range(case.n_sets)]
    lq, lk = int(case.q_lens[0]), int(case.kv_lens[0])
    mask = None
    causal = case.causal and case.op != "decode"
    if causal and lq != lk:
        from torch.nn.attention.bias import causal_lower_right
        mask, causal = causal_lower_right(lq, lk), False
    group = case.q.shape[1] // case.kv.num_kv_heads
    out = {}
    for name, be in (("sdpa-flash", SDPBackend.FLASH_ATTENTION), ("sdpa-cudnn", SDPBackend.CUDNN_ATTENTION),
                     ("sdpa-efficient", SDPBackend.EFFICIENT_ATTENTION)):
        def make(be, gqa):
            def run(i):
                q, k, v = dense[i]
                if not gqa:
                    k, v = k.repeat_interleave(group, 1), v.repeat_interleave(group, 1)

                def call():
                    with sdpa_kernel(be):
                        return F.scaled_dot_product_attention(q, k, v, attn_mask=mask, is_causal=causal,
                                                              enable_gqa=gqa)
                return call
            return run
        err = None
        for gqa in (True, False):
            try:
                make(be, gqa)(0)()
                torch.cuda.synchronize()
                out[name] = make(be, gqa)
                break
            except Exception as e:                # noqa: BLE001 (backend does not take this input)
                err = f"{type(e).__name__}: {str(e).splitlines()[0][:80] if str(e) else ''}"
        else:
            out[name] = err
    return out


_flex = None


def flex_peer(case) -> dict:
    """FlexAttention, compiled, with a bottom-right causal block mask for prefill/extend."""
    global _flex
    try:
        from torch.nn.attention.flex_attention import create_block_mask, flex_attention
    except ImportError as e:
        return {"flex": f"ImportError: {e}"}
    if len(set(case.kv_lens.tolist())) > 1 or case.custom_mask is not None:
        return {"flex": "ragged lengths / custom mask: not benchmarked"}
    if _flex is None:
        _flex = torch.compile(flex_attention, dynamic=False)
    dense = [_dense(case, i) for i in range(case.n_sets)]
    lq, lk = int(case.q_lens[0]), int(case.kv_lens[0])
    bm = None
    if case.causal and case.op != "decode":
        off = lk - lq
        bm = create_block_mask(lambda b, h, qi, ki: ki <= qi + off, None, None, lq, lk, device=case.q.device)

    def run(i):
        q, k, v = dense[i]
        return lambda: _flex(q, k, v, block_mask=bm, enable_gqa=True)
    try:
        run(0)()
        torch.cuda.synchronize()
    except Exception as e:                            # noqa: BLE001
        return {"flex": f"{type(e).__name__}: {str(e).splitlines()[0][:80] if str(e) else ''}"}
    return {"flex": run}


def hip_peer(case) -> dict:
    """attn's own HIP decode backend (plan once, run launches only)."""
    try:
        from attn.hip import backend as hb
        ok, why = hb.available(case.q)
        if not ok:
            return {"attn-hip": why[:100]}
        p = hb.plan(case.kv, q_heads=case.q.shape[1])
        outs = [torch.empty_like(q) for q in case.qs]
        hb.run(p, case.qs[0], case.kvs[0], out=outs[0])
    except Exception as e:                            # noqa: BLE001
        return {"attn-hip": f"{type(e).__name__}: {str(e).splitlines()[0][:80] if str(e) else ''}"}
    return {"attn-hip": lambda i: (lambda: hb.run(p, case.qs[i], case.kvs[i], out=outs[i]))}


def flash_attn_peer(case) -> dict:
    if not importable("flash_attn"):
        return {}
    try:
        from flash_attn import flash_attn_varlen_func, flash_attn_with_kvcache
        if case.op == "decode":
            if case.kv.layout.name != "NHD":
                return {"flash-attn": "needs the NHD layout"}
            from attn.layouts import csr_to_page_table
            table = csr_to_page_table(case.kv.page_indptr, case.kv.page_indices)
            lens = case.kv.seq_lens

            def run(i):
                kv = case.kvs[i]
                return lambda: flash_attn_with_kvcache(case.qs[i][:, None], kv.k, kv.v, cache_seqlens=lens,
                                                       block_table=table)
        else:
            if case.kv.layout.name != "ragged" or case.custom_mask is not None:
                return {"flash-attn": "ragged K/V only"}
            ip = case.q_indptr
            mq, mk = int(case.q_lens.max()), int(case.kv_lens.max())

            def run(i):
                kv = case.kvs[i]
                return lambda: flash_attn_varlen_func(case.qs[i], kv.k, kv.v, ip, kv.page_indptr, mq, mk,
                                                      causal=case.causal)
        run(0)()
        return {"flash-attn": run}
    except Exception as e:                            # noqa: BLE001
        return {"flash-attn": f"{type(e).__name__}: {str(e)[:80]}"}


def flashinfer_peer(case) -> dict:
    if not importable("flashinfer"):
        return {}
    try:
        import flashinfer
        ws = torch.empty(256 * 2 ** 20, dtype=torch.uint8, device=case.q.device)
        kv = case.kv
        hq, hk, d = case.q.shape[1], kv.num_kv_heads, kv.head_dim
        if case.op == "decode":
            if kv.layout.name not in ("NHD", "HND"):
                return {"flashinfer": "NHD/HND only"}
            from attn.layouts.page_map import last_page_len_from_seq_lens
            w = flashinfer.BatchDecodeWithPagedKVCacheWrapper(ws, kv.layout.name)
            w.plan(kv.page_indptr, kv.page_indices, last_page_len_from_seq_lens(kv.seq_lens, kv.page_size),
                   hq, hk, d, kv.page_size, data_type=kv.dtype)

            def run(i):
                return lambda: w.run(case.qs[i], (case.kvs[i].k, case.kvs[i].v))
        else:
            if kv.layout.name != "ragged" or case.custom_mask is not None:
                return {"flashinfer": "ragged K/V only"}
            w = flashinfer.BatchPrefillWithRaggedKVCacheWrapper(ws, "NHD")
            w.plan(case.q_indptr, kv.page_indptr, hq, hk, d, causal=case.causal, q_data_type=kv.dtype)

            def run(i):
                return lambda: w.run(case.qs[i], case.kvs[i].k, case.kvs[i].v)
        run(0)()
        return {"flashinfer": run}
    except Exception as e:                            # noqa: BLE001
        return {"flashinfer": f"{type(e).__name__}: {str(e)[:80]}"}
