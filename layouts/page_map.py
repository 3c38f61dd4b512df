"""Page maps: which pages hold sequence b, in order, and how long b is.

Users hold one of two forms:
  CSR         kv_indptr [b+1], kv_indices [nnz], and seq_lens [b] or kv_last_page_len [b]
  page table  page_table [b, max_pages] (padded rows) and seq_lens [b]
attn's canonical form is CSR with int32 indices: (page_indptr, page_indices, seq_lens). A padded
page table IS such a CSR with page_indptr = arange(b+1) * row_stride, so it is read in place,
without compaction, and padding entries are never read.
"""
from __future__ import annotations

import torch


def seq_lens_from_last_page_len(kv_indptr: torch.Tensor, kv_last_page_len: torch.Tensor, page_size: int):
    """FlashInfer's form to lengths: (pages - 1) * page_size + last_page_len, 0 for no pages."""
    pages = (kv_indptr[1:] - kv_indptr[:-1]).to(torch.int32)
    lens = (pages - 1) * page_size + kv_last_page_len.to(torch.int32)
    return torch.where(pages > 0, lens, torch.zeros_like(lens))


def last_page_len_from_seq_lens(seq_lens: torch.Tensor, page_size: int):
    """Lengths to FlashInfer's last_page_len (0 for empty sequences)."""
    sl = seq_lens.to(torch.int32)
    rem = sl - (torch.clamp(sl - 1, min=0) // page_size) * page_size
    return torch.where(sl > 0, rem, torch.zeros_like(sl))


def page_table_to_csr(page_table: torch.Tensor, seq_lens: torch.Tensor, page_size: int):
    """Compact a padded page table [b, max_pages] into (kv_indptr, kv_indices, kv_last_page_len),
    keeping only the pages each sequence's length needs."""
    pages = (seq_lens.to(torch.int64) + page_size - 1) // page_size
    kv_indptr = torch.zeros(page_table.shape[0] + 1, dtype=torch.int32, device=page_table.device)
    kv_indptr[1:] = torch.cumsum(pages, 0)
    cols = torch.arange(page_table.shape[1], device=page_table.device)
    keep = cols[None, :] < pages[:, None]
    kv_indices = page_table[keep].to(torch.int32)
    return kv_indptr, kv_indices, last_page_len_from_seq_lens(seq_lens, page_size)


def csr_to_page_table(kv_indptr: torch.Tensor, kv_indices: torch.Tensor, max_pages: int | None = None,
                      pad: int = 0):
    """Expand CSR pages into a padded page table [b, max_pages] (entries past a row's pages = pad)."""
    counts = (kv_indptr[1:] - kv_indptr[:-1]).to(torch.int64)
    b = counts.shape[0]
    if max_pages is None:
        max_pages = int(counts.max()) if b else 0
    cols = torch.arange(max_pages, device=kv_indptr.device)
    keep = cols[None, :] < counts[:, None]
    src = (kv_indptr[:-1].to(torch.int64)[:, None] + cols[None, :]).clamp(max=max(kv_indices.numel() - 1, 0))
    table = torch.full((b, max_pages), pad, dtype=kv_indices.dtype, device=kv_indices.device)
    if kv_indices.numel():
        table[keep] = kv_indices[src[keep]]
    return table


def token_positions(page_indptr, page_indices, seq_lens, page_size: int, b: int, lengths=None):
    """(page, slot) of every live token of sequence b, as two int64 tensors on the host's terms.
    Used by the reference path and conversions, not by kernels."""
    n = int(seq_lens[b]) if lengths is None else lengths
    t = torch.arange(n, device=seq_lens.device)
    logical = int(page_indptr[b]) + t // page_size
    page = logical if page_indices is None else page_indices[logical].to(torch.int64)
    return page, t % page_size
