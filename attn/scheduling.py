"""Host-side scheduling: turning a batch into work items for triton_kernels/attention.py.

An item is (request, first query token, KV range [kv_start, kv_end), output slot). out_slot < 0:
the item owns its rows and writes out/lse directly; out_slot >= 0: it writes partial rows
out_slot + (token - q_start) that a merge combines (split-KV). Everything is built with numpy
on the host, once per batch composition (plan time), and copied into preallocated device
buffers, so a captured launch replays for any batch within the planned maximum.
"""
from __future__ import annotations

import heapq
from dataclasses import dataclass

import numpy as np
import torch

KV_END_OPEN = 2 ** 31 - 1   # "to the end of the sequence": the kernel clamps to seq_len


@dataclass
class WorkList:
    req: torch.Tensor         # int32 [max_items]
    q_start: torch.Tensor     # int32 [max_items]
    kv_start: torch.Tensor    # int32 [max_items]
    kv_end: torch.Tensor      # int32 [max_items]
    out_slot: torch.Tensor    # int32 [max_items]
    num_items: torch.Tensor   # int32 [1]: items in use; the grid is max_items wide
    max_items: int

    @classmethod
    def empty(cls, max_items: int, device) -> "WorkList":
        z = lambda: torch.zeros(max(max_items, 1), dtype=torch.int32, device=device)  # noqa: E731
        return cls(z(), z(), z(), z(), z(), torch.zeros(1, dtype=torch.int32, device=device), max(max_items, 1))

    def fill(self, items: np.ndarray) -> None:
        """items int [n, 5] (req, q_start, kv_start, kv_end, out_slot) into the buffers (async H2D)."""
        n = items.shape[0]
        if n > self.max_items:
            raise ValueError(f"the batch needs {n} work items but the plan was sized for {self.max_items}; "
                             "raise the plan's maximum (max_batch / max_tokens)")
        host = torch.from_numpy(np.ascontiguousarray(items.T.astype(np.int32)))
        for buf, row in zip((self.req, self.q_start, self.kv_start, self.kv_end, self.out_slot), host):
            buf[:n].copy_(row, non_blocking=True)
        self.num_items.fill_(n)

    @classmethod
    def build(cls, items: np.ndarray, device) -> "WorkList":
        wl = cls.empty(items.shape[0], device)
        wl.fill(items)
        return wl


def segment_arange(counts: np.ndarray) -> np.ndarray:
    """0..counts[i]-1 for each i, concatenated ([2, 3] -> [0, 1, 0, 1, 2])."""
    return np.arange(int(counts.sum())) - np.repeat(np.cumsum(counts) - counts, counts)


def prefill_items(q_lens: np.ndarray, tq: int) -> np.ndarray:
    """One item per query tile of TQ tokens, whole KV (causal/window bounds are the kernel's)."""
    tiles = (q_lens + tq - 1) // tq
    req = np.repeat(np.arange(len(q_lens)), tiles)
    q_start = segment_arange(tiles) * tq
    n = len(req)
    return np.stack([req, q_start, np.zeros(n, np.int64), np.full(n, KV_END_OPEN), np.full(n, -1)], 1)


def decode_items(kv_lens: np.ndarray, splits: np.ndarray, block_n: int, kv_begin: np.ndarray | None = None,
                 longest_first: bool = False):
    """Split-KV items for decode (one query per request). Request b's KV [kv_begin[b], kv_len[b])
    (kv_begin: 0, or where a sliding window starts, rounded down to a block) is cut into splits[b]
    chunks of whole BLOCK_N blocks; every kv_start is a multiple of BLOCK_N (the kernel's loads
    rely on it). Returns (items, merge_indptr [b+1] over partial rows, where requests with one
    chunk have none and write out directly). longest_first: items ordered by chunk length, longest
    first (programs start in item order, so the short chunks fill the last wave's gaps); partial
    rows stay where the merge expects them."""
    begin = np.zeros_like(kv_lens) if kv_begin is None else (np.asarray(kv_begin) // block_n) * block_n
    blocks = np.maximum((kv_lens - begin + block_n - 1) // block_n, 1)
    splits = np.clip(splits, 1, blocks)
    per = (blocks + splits - 1) // splits                 # blocks per chunk
    splits = (blocks + per - 1) // per                    # drop empty trailing chunks
    req = np.repeat(np.arange(len(kv_lens)), splits)
    j = segment_arange(splits)
    kv_start = np.repeat(begin, splits) + j * np.repeat(per, splits) * block_n
    kv_end = np.minimum(kv_start + np.repeat(per, splits) * block_n, np.repeat(kv_lens, splits))
    parts = np.where(splits > 1, splits, 0)
    merge_indptr = np.concatenate([[0], np.cumsum(parts)])
    out_slot = np.where(np.repeat(splits, splits) > 1, np.repeat(merge_indptr[:-1], splits) + j, -1)
    items = np.stack([req, np.zeros_like(req), kv_start, kv_end, out_slot], 1)
    if longest_first:
        items = items[np.argsort(kv_start - kv_end, kind="stable")]
    return items, merge_indptr


def guided_decode_items(kv_lens: np.ndarray, block_n: int, slots: int, min_blocks: int, floor: float,
                        kv_begin: np.ndarray | None = None):
    """Split-KV items of decreasing length (guided self-scheduling), in launch order. Each chunk
    is 1/slots of the work not yet handed out, cut from the request with the most left, never
    below `floor` times the first chunk (nor min_blocks blocks); so the programs that start last,
    when the first ones finish, are the shortest, and the launch ends in a short tail rather than
    in one chunk's time. Returns (items, merge_indptr) as decode_items; at most
    2 len(kv_lens) + slots * (2 + ln(1 / floor)) items."""
    begin = np.zeros_like(kv_lens) if kv_begin is None else (np.asarray(kv_begin) // block_n) * block_n
    blocks = np.maximum((kv_lens - begin + block_n - 1) // block_n, 1).astype(np.int64)
    left = int(blocks.sum())
    smallest = max(min_blocks, int(floor * left / max(slots, 1)), 1)
    heap = [(-int(n), r) for r, n in enumerate(blocks)]
    heapq.heapify(heap)
    taken = np.zeros_like(blocks)
    chunks = []                                          # (request, first block, blocks)
    while heap:
        neg, r = heapq.heappop(heap)
        size = max(-(-left // slots), smallest)
        rest = -neg
        take = min(size, rest)
        if 0 < rest - take < smallest:                   # no sliver left behind: two halves
            take = -(-rest // 2)
        chunks.append((r, int(taken[r]), take))
        taken[r] += take
        left -= take
        if take < rest:
            heapq.heappush(heap, (take - rest, r))
    c = np.array(chunks, np.int64).reshape(-1, 3)
    req, first, size = c[:, 0], c[:, 1], c[:, 2]
    splits = np.bincount(req, minlength=len(kv_lens))
    parts = np.where(splits > 1, splits, 0)
    merge_indptr = np.concatenate([[0], np.cumsum(parts)])
    # A request's chunks come out in KV order, so its j-th item is its j-th partial row.
    j = np.empty(len(req), np.int64)
    j[np.argsort(req, kind="stable")] = segment_arange(splits)
    kv_start = begin[req] + first * block_n
    kv_end = np.minimum(kv_start + size * block_n, np.asarray(kv_lens)[req])
    out_slot = np.where(splits[req] > 1, merge_indptr[:-1][req] + j, -1)
    items = np.stack([req, np.zeros_like(req), kv_start, kv_end, out_slot], 1)
    # Launch order longest first, by tokens: the cuts come out nearly so (a halved remainder may
    # follow a shorter chunk, and last blocks are partial).
    return items[np.argsort(kv_start - kv_end, kind="stable")], merge_indptr
