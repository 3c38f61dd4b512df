"""Moving KV contents between layouts: gather, to_dense, convert."""
from __future__ import annotations

import torch

from . import validation as V
from .descriptors import get_layout
from .kvcache import KVCache


def token_index(kv: KVCache):
    """(seq, page, slot) of every live token, sequences in order, as int64 tensors on kv's device.
    One vectorized pass, no per-sequence loop."""
    lens = kv.seq_lens.to(torch.int64)
    total = int(lens.sum()) if kv.batch_size else 0
    dev = kv.device
    seq = torch.repeat_interleave(torch.arange(kv.batch_size, device=dev), lens, output_size=total)
    starts = torch.cumsum(lens, 0) - lens
    t = torch.arange(total, device=dev) - starts[seq]
    logical = kv.page_indptr.to(torch.int64)[seq] + t // kv.page_size
    page = logical if kv.page_indices is None else kv.page_indices.to(torch.int64)[logical]
    return seq, page, t % kv.page_size


def gather(kv: KVCache):
    """All live tokens as ragged rows: (k [total, kv_heads, d], v [total, kv_heads, d], indptr [b+1])."""
    _, page, slot = token_index(kv)
    k = kv.layout.to_nhd(kv.k, "k")[page, slot]
    v = kv.layout.to_nhd(kv.v, "v")[page, slot]
    indptr = torch.zeros(kv.batch_size + 1, dtype=torch.int64, device=kv.device)
    indptr[1:] = torch.cumsum(kv.seq_lens.to(torch.int64), 0)
    return k, v, indptr


def to_dense(kv: KVCache, pad_value: float = 0.0):
    """Padded copies (k [b, max_len, kv_heads, d], v [b, max_len, kv_heads, d], seq_lens [b]).
    Positions past a sequence's length hold pad_value."""
    seq, page, slot = token_index(kv)
    max_len = kv.max_seq_len()
    shape = (kv.batch_size, max_len, kv.num_kv_heads, kv.head_dim)
    k = torch.full(shape, pad_value, dtype=kv.dtype, device=kv.device)
    v = torch.full(shape, pad_value, dtype=kv.dtype, device=kv.device)
    starts = torch.cumsum(kv.seq_lens.to(torch.int64), 0) - kv.seq_lens.to(torch.int64)
    pos = torch.arange(seq.shape[0], device=kv.device) - starts[seq]
    k[seq, pos] = kv.layout.to_nhd(kv.k, "k")[page, slot]
    v[seq, pos] = kv.layout.to_nhd(kv.v, "v")[page, slot]
    return k, v, kv.seq_lens


def convert(kv: KVCache, layout: str = "NHD", page_size: int | None = None, *, num_pages: int | None = None,
            page_order: torch.Tensor | None = None) -> KVCache:
    """The same contents in new storage of another layout and/or page size.

    Sequences get ceil(len / page_size) pages each, assigned in order, unless page_order (a
    permutation of the new pages, e.g. to shuffle them in tests) says otherwise. Unowned slots
    are zero. layout="ragged" gives a KVCache.ragged of the live tokens.
    """
    if not isinstance(kv, KVCache):
        V.fail(f"kv must be an attn.layouts.KVCache; got {type(kv).__name__}", TypeError)
    lay = get_layout(layout)
    k_rows, v_rows, indptr = gather(kv)
    if not lay.paged:
        return KVCache.ragged(k_rows, v_rows, indptr.to(torch.int32))
    ps = kv.page_size if page_size is None else page_size
    if ps < 1:
        V.fail(f"page_size must be >= 1; got {ps}")
    lens = kv.seq_lens.to(torch.int64)
    pages = (lens + ps - 1) // ps
    kv_indptr = torch.zeros(kv.batch_size + 1, dtype=torch.int32, device=kv.device)
    kv_indptr[1:] = torch.cumsum(pages, 0)
    need = int(kv_indptr[-1]) if kv.batch_size else 0
    n_pages = max(need, 1) if num_pages is None else num_pages
    if n_pages < need:
        V.fail(f"num_pages must be >= {need} to hold every sequence; got {n_pages}")
    kv_indices = torch.arange(need, dtype=torch.int32, device=kv.device)
    if page_order is not None:
        V.check_index("page_order", page_order)
        order = page_order.to("cpu", torch.int64)
        if order.numel() < need or (need and (order[:need].min() < 0 or order[:need].max() >= n_pages)) \
                or order[:need].unique().numel() != need:
            V.fail(f"page_order must give {need} distinct pages in [0, {n_pages}) (one a page the sequences "
                   f"own); got {order.tolist() if order.numel() <= 16 else f'{order.numel()} entries'}")
        kv_indices = page_order[:need].to(torch.int32).to(kv.device)
    k_new = torch.zeros(lay.shape("k", n_pages, ps, kv.num_kv_heads, kv.head_dim, kv.dtype), dtype=kv.dtype,
                        device=kv.device)
    v_new = torch.zeros(lay.shape("v", n_pages, ps, kv.num_kv_heads, kv.head_dim, kv.dtype), dtype=kv.dtype,
                        device=kv.device)
    out = KVCache.paged(k_new, v_new, kv_indptr, kv_indices, kv.seq_lens, layout=lay)
    _, page, slot = token_index(out)
    _scatter(out, page, slot, k_rows, v_rows)
    return out


def _scatter(kv: KVCache, page, slot, k_rows, v_rows):
    """Write rows [n, kv_heads, d] at (page, slot) through the layout's strides (torch path)."""
    for store, rows, st in ((kv.k, k_rows, kv.k_strides), (kv.v, v_rows, kv.v_strides)):
        h = torch.arange(kv.num_kv_heads, device=kv.device)
        d = torch.arange(kv.head_dim, device=kv.device)
        off = st.offset(page[:, None, None], h[None, :, None], slot[:, None, None], d[None, None, :])
        flat_view(store)[off] = rows.to(store.dtype)


def flat_view(t: torch.Tensor) -> torch.Tensor:
    """A 1-D view of t's storage from t's first element to its last, so that stride offsets index it."""
    span = 1 + sum((n - 1) * s for n, s in zip(t.shape, t.stride())) if t.numel() else 0
    return t.as_strided((span,), (1,))
