"""The persistent mixed-batch schedule: work items for every request, balanced over programs.

A serving step mixes decode requests (q_len 1, or a few tokens) with prefill / extend chunks.
Every request is cut into items (a query tile x a KV chunk). Decode-like requests use the small
M tile (the GQA heads of one token); prefill requests use the large one. Long KV ranges are cut
into chunks so that no item is much longer than the average program's share. Items are then
assigned to a fixed number of persistent programs by longest-processing-time-first over a
min-heap of program loads, so all programs finish together. Items whose query tile was cut into
several KV chunks write partial rows, merged afterwards.

What a program runs is a unit: an item, or (`units`) an item of one head. The portable kernel
runs every item for all heads at once (a grid axis of kv heads); the Hopper kernel runs a tile of
one head a unit (a decode-kind item's unit packs a kv head's GQA group, a prefill one is a q
head), so an item counts once per head and the heads of one item spread over programs.

An item's cost is a CostModel: a weight per KV block and a fixed cost per item, for each tile kind.
The default weighs a block by its tile's rows; fit() replaces it with the least-squares fit of the
programs' measured busy times (BatchAttention.calibrate), in microseconds.

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


@dataclass(frozen=True)
class CostModel:
    """Cost of an item: blocks x per-block weight + a per-item overhead (loading q, the epilogue),
    each by tile kind. Only ratios matter to the schedule; a fitted model is in microseconds."""
    decode_block: float
    decode_item: float
    prefill_block: float
    prefill_item: float

    @classmethod
    def default(cls, block_m_decode: int, block_m_prefill: int) -> "CostModel":
        """KV blocks touched, scaled by the tile's M (a large tile does more math per block)."""
        return cls(1.0 + block_m_decode / 64.0, 2.0, 1.0 + block_m_prefill / 64.0, 2.0)

    def per_block(self, kind: np.ndarray) -> np.ndarray:
        return np.where(kind == DECODE, self.decode_block, self.prefill_block)

    def cost(self, kind: np.ndarray, blocks: np.ndarray) -> np.ndarray:
        return blocks * self.per_block(kind) + np.where(kind == DECODE, self.decode_item, self.prefill_item)


@dataclass
class Schedule:
    items: np.ndarray          # int64 [n, 7]: req, q_start, kv_start, kv_end, out_slot, kind, stride
    cost: np.ndarray           # float [n]: estimated cost of each item
    blocks: np.ndarray         # int64 [n]: KV blocks each item reads
    prog_indptr: np.ndarray    # int64 [programs + 1]: program p runs prog_items[prog_indptr[p]:...]
    prog_items: np.ndarray     # int64 [u]: unit ids, each exactly once
    merge: np.ndarray          # int64 [m, 4]: request, token in request, first partial row, count
    num_partial_rows: int
    unit_item: np.ndarray      # int64 [u]: each unit's item (item-major: its heads in order)
    unit_head: np.ndarray      # int64 [u]: and head (0 where an item is one unit)

    @property
    def num_programs(self) -> int:
        return len(self.prog_indptr) - 1

    def owner(self) -> np.ndarray:
        """int64 [u]: the program each unit runs on."""
        owner = np.empty(len(self.prog_items), np.int64)
        owner[self.prog_items] = np.repeat(np.arange(self.num_programs), np.diff(self.prog_indptr))
        return owner

    def program_loads(self) -> np.ndarray:
        return np.bincount(self.owner(), weights=self.cost[self.unit_item], minlength=self.num_programs)

    def imbalance(self) -> float:
        """max / mean of the estimated program loads (1.0 is perfect)."""
        loads = self.program_loads()
        return float(loads.max() / loads.mean()) if loads.size and loads.mean() > 0 else 1.0


def fit(sched: Schedule, busy: np.ndarray, prior: CostModel) -> CostModel:
    """The CostModel that best explains measured busy times (float [programs] or [programs, kv
    heads], microseconds): least squares of each program's time on its decode / prefill blocks and
    items, pulled lightly towards `prior` (scaled to the measurement) so that a batch with one
    tile kind, or programs that all hold the same mix, still gives a usable model."""
    busy = np.asarray(busy, np.float64).reshape(sched.num_programs, -1).mean(axis=1)
    owner, kind, blocks = sched.owner(), sched.items[sched.unit_item, KIND], sched.blocks[sched.unit_item]
    # Columns: decode blocks, decode units, prefill blocks, prefill units of each program.
    a = np.stack([np.bincount(owner, weights=np.where(kind == k, w, 0.0), minlength=sched.num_programs)
                  for k in (DECODE, PREFILL) for w in (blocks, 1.0)], axis=1)
    w0 = np.array([prior.decode_block, prior.decode_item, prior.prefill_block, prior.prefill_item])
    predicted = (a @ w0).sum()
    w0 = w0 * (busy.sum() / predicted if predicted > 0 else 1.0)
    # Ridge on unit-norm columns: block sums are ~100x item counts, and an unused column (no
    # decode items) has norm 0 and keeps the prior's weight.
    norm = np.linalg.norm(a, axis=0)
    norm = np.where(norm > 0, norm, 1.0)
    an = a / norm
    lam = 1e-3
    w = np.linalg.solve(an.T @ an + lam * np.eye(4), an.T @ busy + lam * w0 * norm) / norm
    # Costs are positive: a negative weight is noise in a column the batch barely exercises.
    w = np.where(w > 0, w, w0 * 1e-3)
    return CostModel(*map(float, w))


def build(q_lens: np.ndarray, kv_lens: np.ndarray, *, num_programs: int, tq_decode: int,
          tq_prefill: int, block_m_decode: int, block_m_prefill: int, block_n: int, causal: bool,
          chunk_target: int | None = None, model: CostModel | None = None,
          units: tuple[int, int] = (1, 1)) -> Schedule:
    """Items for every request and their assignment to num_programs persistent programs (costs
    from `model`, by default CostModel.default), as units: `units` = (decode, prefill) units an
    item of each kind (heads run apart; 1: all heads at once)."""
    model = model or CostModel.default(block_m_decode, block_m_prefill)
    q_lens = np.asarray(q_lens, np.int64)
    kv_lens = np.asarray(kv_lens, np.int64)
    # Query tiles, request-major: request b holds ceil(q_len / tq) tiles (none for q_len 0).
    kind_b = np.where(q_lens <= tq_decode, DECODE, PREFILL)
    tq_b = np.where(kind_b == DECODE, tq_decode, tq_prefill).astype(np.int64)
    n_tiles = np.maximum(-(-q_lens // tq_b), 0)
    req = np.repeat(np.arange(len(q_lens), dtype=np.int64), n_tiles)
    if not len(req):
        none = np.zeros(0, np.int64)
        return Schedule(np.zeros((0, 7), np.int64), np.zeros(0), none, np.zeros(num_programs + 1, np.int64),
                        none, np.zeros((0, 4), np.int64), 0, none, none)
    lq, lk, tq, kind = q_lens[req], kv_lens[req], tq_b[req], kind_b[req]
    q0 = (np.arange(len(req)) - np.repeat(np.cumsum(n_tiles) - n_tiles, n_tiles)) * tq
    ntok = np.minimum(tq, lq - q0)
    # Keys the tile's last row sees.
    visible = np.maximum(np.minimum(lk, lk - lq + q0 + ntok) if causal else lk, 0)
    tile_blocks = np.maximum((visible + block_n - 1) // block_n, 0)
    blocks = np.maximum(tile_blocks, 1)
    per_item = np.where(kind_b == DECODE, units[0], units[1]).astype(np.int64)
    # Cut long tiles so that one item is at most about one program's fair share.
    if chunk_target is None:
        share = (model.cost(kind, tile_blocks) * per_item[req]).sum() / num_programs
        chunk_blocks = np.maximum(np.floor(share / model.per_block(kind)), 4).astype(np.int64)
    else:
        chunk_blocks = np.full(len(req), max(chunk_target // block_n, 1), np.int64)
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
    item_blocks = np.maximum((np.where(last, visible[t], kv1) - kv0 + block_n - 1) // block_n, 0)
    cost = model.cost(kind[t], item_blocks).astype(np.float64)
    # Merge rows: split tile t's token i reads its partials from base + i * n_chunks on.
    s = np.repeat(np.flatnonzero(split), ntok[split])
    i = np.arange(len(s)) - np.repeat(np.cumsum(ntok[split]) - ntok[split], ntok[split])
    merge = np.stack([req[s], q0[s] + i, base[s] + i * n_chunks[s], n_chunks[s]], axis=1).astype(np.int64)
    n_units = per_item[items[:, REQ]]
    unit_item = np.repeat(np.arange(len(items)), n_units)
    unit_head = np.arange(len(unit_item)) - np.repeat(np.cumsum(n_units) - n_units, n_units)
    prog_indptr, prog_items = assign(cost[unit_item], num_programs)
    return Schedule(items, cost, item_blocks, prog_indptr, prog_items, merge, int(rows.sum()), unit_item, unit_head)


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
