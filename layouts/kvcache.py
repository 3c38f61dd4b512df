"""KVCache: K storage, V storage, a layout and a page map, read in place by every kernel."""
from __future__ import annotations

from dataclasses import dataclass, replace

import torch

from . import validation as V
from .descriptors import Layout, Strides, get_layout, vllm_x
from .page_map import seq_lens_from_last_page_len


@dataclass(frozen=True)
class KVCache:
    """A KV cache as the engine holds it, described, never copied.

    k, v          storage tensors in `layout` (see attn.layouts.LAYOUTS for their shapes)
    page_indptr   int [b+1]: sequence b owns page_indices[page_indptr[b]:page_indptr[b+1]]
    page_indices  int [nnz] physical page numbers, or None when pages are consecutive rows
                  (ragged [tokens, heads, dim] with an indptr: page b*i is row page_indptr[b]+i)
    seq_lens      int [b] tokens of sequence b; slots past it may hold anything, NaN included
    """
    k: torch.Tensor
    v: torch.Tensor
    layout: Layout
    page_size: int
    num_kv_heads: int
    head_dim: int
    num_pages: int
    page_indptr: torch.Tensor
    page_indices: torch.Tensor | None
    seq_lens: torch.Tensor
    k_strides: Strides
    v_strides: Strides
    max_pages_hint: int | None = None   # pages per sequence at most, when known without a sync

    # ---------------------------------------------------------------- constructors
    @classmethod
    def paged(cls, k_cache, v_cache, kv_indptr, kv_indices, seq_lens=None, *, kv_last_page_len=None,
              layout="HND", page_size: int | None = None) -> "KVCache":
        """A paged cache with a CSR page map (FlashInfer's form).

        k_cache, v_cache  storage in `layout`: "NHD" [pages, page_size, kv_heads, d],
                          "HND" [pages, kv_heads, page_size, d], "vllm" K [pages, kv_heads, d/x,
                          page_size, x] and V [pages, kv_heads, d, page_size]
        kv_indptr         int32/int64 [b+1]
        kv_indices        int32/int64 [nnz] page numbers
        seq_lens          int32/int64 [b], or give kv_last_page_len [b] instead

        >>> kv = KVCache.paged(k_cache, v_cache, kv_indptr, kv_indices, seq_lens, layout="NHD")
        """
        lay = get_layout(layout)
        if not lay.paged:
            V.fail(f"layout must be a paged layout (NHD, HND, vllm) for KVCache.paged; got {lay.name!r}; "
                   "use KVCache.ragged or KVCache.token_pool")
        geo = _geometry(k_cache, v_cache, lay, page_size)
        dev = k_cache.device
        V.check_indptr("kv_indptr", kv_indptr, device=dev)
        b = kv_indptr.shape[0] - 1
        V.check_index("kv_indices", kv_indices, device=dev)
        if (seq_lens is None) == (kv_last_page_len is None):
            V.fail("give exactly one of seq_lens and kv_last_page_len; got "
                   + ("both" if seq_lens is not None else "neither"))
        if seq_lens is None:
            V.check_index("kv_last_page_len", kv_last_page_len, length=b, device=dev)
            if V.values_enabled("full"):
                # FlashInfer's range: a sequence with pages fills 1..page_size slots of its last one.
                has_pages = (kv_indptr[1:] > kv_indptr[:-1]).to("cpu")
                V.check_range("kv_last_page_len", kv_last_page_len, 1, geo["S"] + 1, mask=has_pages)
            seq_lens = seq_lens_from_last_page_len(kv_indptr, kv_last_page_len, geo["S"])
        V.check_index("seq_lens", seq_lens, length=b, device=dev)
        kv = cls._make(k_cache, v_cache, lay, geo, kv_indptr, kv_indices, seq_lens, None)
        if V.values_enabled():
            kv.check_page_map("kv_indptr", "kv_indices")
        return kv

    @classmethod
    def from_page_table(cls, k_cache, v_cache, page_table, seq_lens, *, layout="NHD",
                        page_size: int | None = None) -> "KVCache":
        """A paged cache with a padded page table (vLLM's block_tables form), read in place.

        page_table  int32/int64 [b, max_pages]: entries past a sequence's pages may hold anything
        seq_lens    int32/int64 [b]
        """
        lay = get_layout(layout)
        if not lay.paged:
            V.fail(f"layout must be a paged layout (NHD, HND, vllm) for KVCache.from_page_table; got {lay.name!r}")
        geo = _geometry(k_cache, v_cache, lay, page_size)
        dev = k_cache.device
        V.check_tensor("page_table", page_table, dim=2, dtype=V.INDEX_DTYPES, device=dev)
        if page_table.stride(1) != 1:
            V.fail(f"page_table must have unit stride along its last dim; got strides {page_table.stride()}")
        b, max_pages = page_table.shape
        if b > 1 and page_table.stride(0) < max_pages:
            # The kernels read row b at b * stride(0): overlapping (e.g. expanded) rows are not rows.
            V.fail(f"page_table's rows must not overlap (row stride >= {max_pages}); got strides "
                   f"{page_table.stride()}: pass page_table.contiguous()")
        V.check_index("seq_lens", seq_lens, length=b, device=dev)
        indptr = torch.arange(b + 1, dtype=torch.int32, device=dev) * page_table.stride(0)
        # A view that starts where the table starts: row b begins at b * stride(0).
        span = (b - 1) * page_table.stride(0) + max_pages if page_table.numel() else 0
        flat = page_table.as_strided((span,), (1,))
        kv = cls._make(k_cache, v_cache, lay, geo, indptr, flat, seq_lens, max_pages)
        if V.values_enabled():
            kv.check_page_map("page_table", "page_table", table=page_table)
        return kv

    @classmethod
    def ragged(cls, k, v, kv_indptr) -> "KVCache":
        """Contiguous per-sequence K/V rows: k, v [tokens, kv_heads, d]; sequence b is rows
        kv_indptr[b]:kv_indptr[b+1] (SGLang's extend K/V, CK-tile BatchPrefill, flash-attn varlen)."""
        from .descriptors import RAGGED
        geo = _geometry(k, v, RAGGED, None)
        V.check_indptr("kv_indptr", kv_indptr, device=k.device)
        seq_lens = (kv_indptr[1:] - kv_indptr[:-1]).to(torch.int32)
        kv = cls._make(k, v, RAGGED, geo, kv_indptr, None, seq_lens, None)
        if V.values_enabled():
            V.check_indptr_values("kv_indptr", kv_indptr, geo["P"], f"rows of k: {geo['P']}")
        return kv

    @classmethod
    def token_pool(cls, k_pool, v_pool, kv_indptr, kv_indices) -> "KVCache":
        """A token pool (SGLang): k_pool, v_pool [pool_size, kv_heads, d]; sequence b's tokens are
        rows kv_indices[kv_indptr[b]:kv_indptr[b+1]], in order (a paged cache with page size 1)."""
        from .descriptors import RAGGED
        geo = _geometry(k_pool, v_pool, RAGGED, None)
        V.check_indptr("kv_indptr", kv_indptr, device=k_pool.device)
        V.check_index("kv_indices", kv_indices, device=k_pool.device)
        seq_lens = (kv_indptr[1:] - kv_indptr[:-1]).to(torch.int32)
        kv = cls._make(k_pool, v_pool, RAGGED, geo, kv_indptr, kv_indices, seq_lens, None)
        if V.values_enabled():
            kv.check_page_map("kv_indptr", "kv_indices")
        return kv

    @classmethod
    def from_parts(cls, k, v, layout, page_indptr, page_indices, seq_lens) -> "KVCache":
        """Rebuild a descriptor from its tensors without checks (custom ops, plans)."""
        lay = get_layout(layout)
        return cls._make(k, v, lay, lay.sizes(k, "k"), page_indptr, page_indices, seq_lens, None)

    @classmethod
    def _make(cls, k, v, lay, geo, indptr, indices, seq_lens, max_pages):
        return cls(k=k, v=v, layout=lay, page_size=geo["S"], num_kv_heads=geo["H"], head_dim=geo["D"],
                   num_pages=geo["P"], page_indptr=indptr, page_indices=indices, seq_lens=seq_lens,
                   k_strides=lay.strides(k, "k"), v_strides=lay.strides(v, "v"), max_pages_hint=max_pages)

    # ---------------------------------------------------------------- properties
    @property
    def batch_size(self) -> int:
        return self.seq_lens.shape[0]

    @property
    def dtype(self) -> torch.dtype:
        return self.k.dtype

    @property
    def device(self) -> torch.device:
        return self.k.device

    @property
    def identity_pages(self) -> bool:
        """Pages are consecutive rows from page_indptr[b] (ragged): no page_indices lookup."""
        return self.page_indices is None

    def max_seq_len(self) -> int:
        """Longest sequence (a host sync; plan() calls it once, run() never)."""
        return int(self.seq_lens.max()) if self.batch_size else 0

    def with_seq_lens(self, seq_lens: torch.Tensor) -> "KVCache":
        return replace(self, seq_lens=seq_lens)

    def page_map(self):
        """Kernel arguments of the page map: (page_indptr, page_indices or page_indptr, seq_lens)."""
        return self.page_indptr, (self.page_indptr if self.page_indices is None else self.page_indices), self.seq_lens

    def __repr__(self) -> str:
        return (f"KVCache(layout={self.layout.name}, batch={self.batch_size}, pages={self.num_pages}, "
                f"page_size={self.page_size}, kv_heads={self.num_kv_heads}, head_dim={self.head_dim}, "
                f"dtype={self.dtype}, device={self.device})")

    # ---------------------------------------------------------------- value checks
    def check_page_map(self, indptr_name: str, indices_name: str, table: torch.Tensor | None = None):
        """Indptr monotone, lengths that fit their pages, every page a live token needs in range.

        The checks reduce on the cache's device to one flag each, fetched in one host transfer; only
        when one is set does _explain_page_map re-read the map on the host to name the first bad entry.
        table: the padded page table [b, max_pages] of from_page_table (its seq_lens must also fit
        max_pages pages)."""
        if self.page_indptr.numel() == 0 or any(self._page_map_flags(table).tolist()):
            self._explain_page_map(indptr_name, indices_name, table)

    def _page_map_flags(self, table: torch.Tensor | None) -> torch.Tensor:
        """bool [n] on the device, one per check of _explain_page_map; all False for a valid map.
        No host sync: no data-dependent shapes (masks instead of nonzero or boolean indexing)."""
        ip = self.page_indptr.detach().to(torch.int64)
        lens = self.seq_lens.detach().to(torch.int64)
        high = 2 ** 31 if table is None else min(2 ** 31, table.shape[1] * self.page_size + 1)
        given = ip[1:] - ip[:-1]
        # Lengths out of range may overflow here; their own flag is set then.
        need = (lens + self.page_size - 1) // self.page_size
        flags = [((lens < 0) | (lens >= high)).any(), (need > given).any()]
        if table is None:
            flags += [ip[0] != 0, (given < 0).any()]
            if self.page_indices is not None:
                flags.append(ip[-1] > self.page_indices.shape[0])
        if self.page_indices is not None and self.batch_size:
            if table is None:
                # Entry e belongs to the last sequence starting at or before it; on a valid map it
                # is live when it is one of that sequence's first need pages. An invalid indptr or
                # lengths set a flag above, whatever this mask says.
                vals = self.page_indices
                e = torch.arange(vals.shape[0], device=ip.device)
                owner = (torch.searchsorted(ip.contiguous(), e, right=True) - 1).clamp(0, self.batch_size - 1)
                live = (e >= ip[owner]) & (e - ip[owner] < need[owner])
            else:
                vals = table
                live = torch.arange(table.shape[1], device=ip.device)[None, :] < need[:, None]
            flags.append((live & ((vals < 0) | (vals >= self.num_pages))).any())
        return torch.stack(flags)

    def _explain_page_map(self, indptr_name: str, indices_name: str, table: torch.Tensor | None):
        """The checks of check_page_map on the host, in order: raise naming the first bad entry."""
        # The indptr first: ragged and token-pool lengths are its differences.
        if table is None:
            n_idx = self.page_indices.shape[0] if self.page_indices is not None else None
            ip = V.check_indptr_values(indptr_name, self.page_indptr, n_idx, f"len({indices_name})={n_idx}")
        else:
            ip = self.page_indptr.to("cpu", torch.int64)
        lens = self.seq_lens.detach().to("cpu", torch.int64)
        if table is not None:
            V.check_range("seq_lens", lens, 0, table.shape[1] * self.page_size + 1)
        V.check_range("seq_lens", lens, 0, 2 ** 31)
        given = ip[1:] - ip[:-1]
        need = (lens + self.page_size - 1) // self.page_size
        short = torch.nonzero(need > given).flatten()
        if short.numel():
            i = int(short[0])
            V.fail(f"seq_lens[{i}]={int(lens[i])} needs {int(need[i])} pages of {self.page_size} but "
                   f"{indptr_name} gives sequence {i} only {int(given[i])}")
        if self.page_indices is None or not self.batch_size:
            return
        if table is not None:
            cols = torch.arange(table.shape[1])
            V.check_range(indices_name, table, 0, self.num_pages, mask=cols[None, :] < need[:, None])
            return
        live = torch.zeros(self.page_indices.shape[0], dtype=torch.bool)
        pos = torch.repeat_interleave(ip[:-1], need) + (
            torch.arange(int(need.sum())) - torch.repeat_interleave(torch.cumsum(need, 0) - need, need))
        live[pos] = True
        V.check_range(indices_name, self.page_indices, 0, self.num_pages, mask=live)


def _geometry(k, v, lay: Layout, page_size: int | None) -> dict:
    """Named sizes of K and V storage, checked against each other and the layout."""
    V.check_tensor("k_cache", k, dtype=V.KV_DTYPES)
    V.check_tensor("v_cache", v, dtype=V.KV_DTYPES)
    if v.dtype != k.dtype:
        V.fail(f"v_cache must have the dtype of k_cache ({k.dtype}); got {v.dtype}", TypeError)
    if v.device != k.device:
        V.fail(f"v_cache must be on the device of k_cache ({k.device}); got {v.device}")
    gk, gv = lay.sizes(k, "k"), lay.sizes(v, "v")
    if "Dlo" in gk and gk["Dlo"] != vllm_x(k.dtype):
        V.fail(f"k_cache's last dim (x) must be 16 bytes / element size = {vllm_x(k.dtype)} for layout "
               f"'vllm' with {k.dtype}; got {gk['Dlo']}")
    if "Dlo" in gk:
        # The kernels read an x-group as one 16-byte vector: its x dims adjacent, every other
        # stride a whole number of groups.
        st = lay.strides(k, "k")
        if st.dlo != 1 or any(s % st.split for s in (st.page, st.head, st.slot, st.dhi)):
            V.fail(f"k_cache (layout 'vllm') must have unit stride along x and its other strides multiples of "
                   f"x={st.split}; got strides {tuple(k.stride())}")
    for key, what in (("P", "pages"), ("H", "kv_heads"), ("S", "page_size"), ("D", "head_dim")):
        if gk[key] != gv[key]:
            V.fail(f"v_cache must have {what}={gk[key]} like k_cache (layout {lay.name!r}); got {gv[key]} "
                   f"(k shape {list(k.shape)}, v shape {list(v.shape)})")
    if page_size is not None and page_size != gk["S"]:
        V.fail(f"page_size={page_size} does not match the storage's page size {gk['S']} "
               f"(k_cache shape {list(k.shape)}, layout {lay.name!r})")
    return gk
