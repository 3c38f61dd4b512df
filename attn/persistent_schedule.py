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
    rows = []
    for b, (lq, lk) in enumerate(zip(q_lens, kv_lens)):
        if lq == 0:
            continue
        kind = DECODE if lq <= tq_decode else PREFILL
        tq = tq_decode if kind == DECODE else tq_prefill
        for q0 in range(0, lq, tq):
            last = min(q0 + tq, lq) - 1
            visible = min(lk, lk - lq + last + 1) if causal else lk     # keys the tile's last row sees
            rows.append((b, q0, max(visible, 0), kind, min(tq, lq - q0)))
    if not rows:
        return Schedule(np.zeros((0, 7), np.int64), np.zeros(0), np.zeros(num_programs + 1, np.int64),
                        np.zeros(0, np.int64), np.zeros((0, 4), np.int64), 0)
    tiles = np.array(rows, np.int64)
    bm = np.where(tiles[:, 3] == DECODE, block_m_decode, block_m_prefill)
    tile_cost = item_cost(tiles[:, 2], bm, block_n)
    # Cut long tiles so that one item is at most about one program's fair share.
    if chunk_target is None:
        share = tile_cost.sum() / num_programs
        per_block = 1.0 + bm / 64.0
        chunk_blocks = np.maximum(np.floor(share / per_block), 4).astype(np.int64)
    else:
        chunk_blocks = np.full(len(tiles), max(chunk_target // block_n, 1), np.int64)
    items, merge, costs, next_slot = [], [], [], 0
    for (b, q0, visible, kind, ntok), cb, m in zip(tiles, chunk_blocks, bm):
        blocks = max((visible + block_n - 1) // block_n, 1)
        n_chunks = int((blocks + cb - 1) // cb)
        step = int(cb) * block_n
        base = next_slot
        for j in range(n_chunks):
            last = j == n_chunks - 1
            items.append((b, q0, j * step, KV_END_OPEN if last else (j + 1) * step,
                          -1 if n_chunks == 1 else base + j, kind, n_chunks))
            costs.append(item_cost(np.array((visible if last else (j + 1) * step) - j * step), m, block_n))
        if n_chunks > 1:
            for t in range(ntok):
                merge.append((b, q0 + t, base + t * n_chunks, n_chunks))   # request, token, first row, count
            next_slot += n_chunks * ntok
    items = np.array(items, np.int64)
    cost = np.array(costs, np.float64)
    prog_indptr, prog_items = assign(cost, num_programs)
    return Schedule(items, cost, prog_indptr, prog_items, np.array(merge, np.int64).reshape(-1, 4), next_slot)


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
