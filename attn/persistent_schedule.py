"""The persistent mixed-batch schedule: work items for every request, balanced over programs.

A serving step mixes decode requests (q_len 1, or a few tokens) with prefill / extend chunks.
Every request is cut into items (a query tile x a KV chunk). Decode-like requests use the small
M tile (the GQA heads of one token); prefill requests use the large one. Long KV ranges are cut
into chunks so that no item is much longer than the average program's share. Items are then
assigned to a fixed number of persistent programs by longest-processing-time-first over a
min-heap of program loads, so all programs finish together. Items whose query tile was cut into
several KV chunks write partial rows, merged afterwards.

Pure numpy on the host, at plan time.
"""
from __future__ import annotations

import heapq
from dataclasses import dataclass

import numpy as np

from attn.scheduling import KV_END_OPEN

# Item columns. A split tile's token t, chunk j writes partial row OUT_SLOT + t * STRIDE with
# OUT_SLOT = base + j and STRIDE = chunks: token-major, so each token's partials are contiguous.
REQ, Q_START, KV_START, KV_END, OUT_SLOT, KIND, STRIDE = range(7)
DECODE, PREFILL = 0, 1


@dataclass
class Schedule:
    items: np.ndarray          # int64 [n, 7]: req, q_start, kv_start, kv_end, out_slot, kind, stride
    cost: np.ndarray           # float [n]: estimated cost of each item
    prog_indptr: np.ndarray    # int64 [programs + 1]: program p runs prog_items[prog_indptr[p]:...]
    prog_items: np.ndarray     # int64 [n]: item ids, each exactly once
    merge: np.ndarray          # int64 [m, 4]: request, token in request, first partial row, count
    num_partial_rows: int

    @property
    def num_programs(self) -> int:
        return len(self.prog_indptr) - 1

    def program_loads(self) -> np.ndarray:
        loads = np.zeros(self.num_programs)
        for p in range(self.num_programs):
            loads[p] = self.cost[self.prog_items[self.prog_indptr[p]:self.prog_indptr[p + 1]]].sum()
        return loads

    def imbalance(self) -> float:
        """max / mean of the estimated program loads (1.0 is perfect)."""
        loads = self.program_loads()
        return float(loads.max() / loads.mean()) if loads.size and loads.mean() > 0 else 1.0


def item_cost(kv: np.ndarray, block_m: np.ndarray, block_n: int) -> np.ndarray:
    """Cost in KV blocks touched, scaled by the tile's M (a large tile does more math per block),
    plus a fixed per-item overhead (loading q, the epilogue)."""
    blocks = np.maximum((kv + block_n - 1) // block_n, 0)
    return blocks * (1.0 + block_m / 64.0) + 2.0


def build(q_lens: np.ndarray, kv_lens: np.ndarray, *, num_programs: int, tq_decode: int,
          tq_prefill: int, block_m_decode: int, block_m_prefill: int, block_n: int, causal: bool,
          chunk_target: int | None = None) -> Schedule:
    """Items for every request and their assignment to num_programs persistent programs."""
    q_lens = np.asarray(q_lens, np.int64)
    kv_lens = np.asarray(kv_lens, np.int64)
    # Query tiles, request-major: request b holds ceil(q_len / tq) tiles (none for q_len 0).
    kind_b = np.where(q_lens <= tq_decode, DECODE, PREFILL)
    tq_b = np.where(kind_b == DECODE, tq_decode, tq_prefill).astype(np.int64)
    n_tiles = np.maximum(-(-q_lens // tq_b), 0)
    req = np.repeat(np.arange(len(q_lens), dtype=np.int64), n_tiles)
    if not len(req):
        return Schedule(np.zeros((0, 7), np.int64), np.zeros(0), np.zeros(num_programs + 1, np.int64),
                        np.zeros(0, np.int64), np.zeros((0, 4), np.int64), 0)
    lq, lk, tq, kind = q_lens[req], kv_lens[req], tq_b[req], kind_b[req]
    q0 = (np.arange(len(req)) - np.repeat(np.cumsum(n_tiles) - n_tiles, n_tiles)) * tq
    ntok = np.minimum(tq, lq - q0)
    # Keys the tile's last row sees.
    visible = np.maximum(np.minimum(lk, lk - lq + q0 + ntok) if causal else lk, 0)
    bm = np.where(kind == DECODE, block_m_decode, block_m_prefill)
    tile_cost = item_cost(visible, bm, block_n)
    # Cut long tiles so that one item is at most about one program's fair share.
    if chunk_target is None:
        share = tile_cost.sum() / num_programs
        per_block = 1.0 + bm / 64.0
        chunk_blocks = np.maximum(np.floor(share / per_block), 4).astype(np.int64)
    else:
        chunk_blocks = np.full(len(req), max(chunk_target // block_n, 1), np.int64)
    blocks = np.maximum((visible + block_n - 1) // block_n, 1)
    n_chunks = (blocks + chunk_blocks - 1) // chunk_blocks
    step = chunk_blocks * block_n
    split = n_chunks > 1
    rows = np.where(split, n_chunks * ntok, 0)          # partial rows of each tile
    base = np.cumsum(rows) - rows
    # Items, tile-major: tile t's chunk j reads keys [j * step, (j + 1) * step), the last one to the end.
    t = np.repeat(np.arange(len(req)), n_chunks)
    j = np.arange(len(t)) - np.repeat(np.cumsum(n_chunks) - n_chunks, n_chunks)
    last = j == n_chunks[t] - 1
    kv0 = j * step[t]
    kv1 = (j + 1) * step[t]
    items = np.stack([req[t], q0[t], kv0, np.where(last, KV_END_OPEN, kv1),
                      np.where(split[t], base[t] + j, -1), kind[t], n_chunks[t]], axis=1).astype(np.int64)
    cost = item_cost(np.where(last, visible[t], kv1) - kv0, bm[t], block_n).astype(np.float64)
    # Merge rows: split tile t's token i reads its partials from base + i * n_chunks on.
    s = np.repeat(np.flatnonzero(split), ntok[split])
    i = np.arange(len(s)) - np.repeat(np.cumsum(ntok[split]) - ntok[split], ntok[split])
    merge = np.stack([req[s], q0[s] + i, base[s] + i * n_chunks[s], n_chunks[s]], axis=1).astype(np.int64)
    prog_indptr, prog_items = assign(cost, num_programs)
    return Schedule(items, cost, prog_indptr, prog_items, merge, int(rows.sum()))


def assign(cost: np.ndarray, num_programs: int):
    """Longest processing time first: each item, largest first, to the least loaded program."""
    heap = [(0.0, p) for p in range(num_programs)]
    owner = np.zeros(len(cost), np.int64)
    for i in np.argsort(-cost, kind="stable"):
        load, p = heapq.heappop(heap)
        owner[i] = p
        heapq.heappush(heap, (load + cost[i], p))
    order = np.argsort(owner, kind="stable")
    counts = np.bincount(owner, minlength=num_programs)
    return np.concatenate([[0], np.cumsum(counts)]), order
