"""Plan-time summary of a custom mask: per work item (request x query tile), the KV blocks it must
visit, split into partly visible blocks (the kernel loads the mask per element) and fully visible
ones (no mask work); fully masked blocks are left out, so the kernel's time scales with the live
blocks. Causal and window bounds are folded in, so a block is "full" only when every (row, key)
pair of it is allowed and inside the sequence.

Computed with torch on the mask's device (one host copy of the per-block flags at the end), then
laid out with numpy.
"""
from __future__ import annotations

import numpy as np
import torch

from attn.scheduling import segment_arange


def block_flags(custom_mask: torch.Tensor, q_lens: np.ndarray, kv_lens: np.ndarray, tq: int, block_n: int,
                causal: bool, window_left: int):
    """(live, full, offsets): per request b, its [tiles_b, blocks_b] flags flattened at offsets[b]
    in two host bool arrays. tiles_b = ceil(q_len / tq), blocks_b = ceil(kv_len / block_n)."""
    tiles = (q_lens + tq - 1) // tq
    blocks = (kv_lens + block_n - 1) // block_n
    sizes = tiles * blocks
    offsets = np.concatenate([[0], np.cumsum(sizes)]).astype(np.int64)
    dev = custom_mask.device
    live_parts, full_parts = [], []
    bit = 0
    for b in range(len(q_lens)):
        lq, lk = int(q_lens[b]), int(kv_lens[b])
        if sizes[b] == 0:
            bit += lq * lk
            continue
        allowed = custom_mask[bit: bit + lq * lk].view(lq, lk)
        bit += lq * lk
        q_pos = torch.arange(lk - lq, lk, device=dev)[:, None]
        kv_pos = torch.arange(lk, device=dev)[None, :]
        if causal:
            allowed = allowed & (kv_pos <= q_pos)
        if window_left >= 0:
            allowed = allowed & (kv_pos >= q_pos - window_left)
        t, nb = int(tiles[b]), int(blocks[b])
        # Rows past q_len do not exist (they allow everything for "full", nothing for "live");
        # keys past kv_len are outside the sequence (never "full": their loads must be masked).
        grid = torch.zeros(t * tq, nb * block_n, dtype=torch.bool, device=dev)
        grid[:lq, :lk] = allowed
        live = grid.view(t, tq, nb, block_n).any(3).any(1)
        grid[lq:, :lk] = True
        full = grid.view(t, tq, nb, block_n).all(3).all(1)
        live_parts.append(live.flatten())
        full_parts.append(full.flatten())
    if not live_parts:
        return np.zeros(0, bool), np.zeros(0, bool), offsets
    flags = torch.stack([torch.cat(live_parts), torch.cat(full_parts)]).cpu().numpy()
    return flags[0], flags[1], offsets


def block_lists(items: np.ndarray, custom_mask: torch.Tensor, q_lens: np.ndarray, kv_lens: np.ndarray, tq: int,
                block_n: int, causal: bool, window_left: int):
    """For prefill items (rows (req, q_start, ...), q_start a multiple of tq): (blk_indptr int32
    [2 n + 1], blk_ids int32 [m]). Item i visits partly visible blocks blk_ids[blk_indptr[2i] :
    blk_indptr[2i+1]] and fully visible ones blk_ids[blk_indptr[2i+1] : blk_indptr[2i+2]]."""
    live, full, offsets = block_flags(custom_mask, q_lens, kv_lens, tq, block_n, causal, window_left)
    n = items.shape[0]
    req = items[:, 0].astype(np.int64)
    tile = items[:, 1].astype(np.int64) // tq
    nb = ((kv_lens + block_n - 1) // block_n).astype(np.int64)[req]
    start = offsets[req] + tile * nb
    item_of = np.repeat(np.arange(n), nb)
    blk = segment_arange(nb)
    flat = np.repeat(start, nb) + blk
    is_live, is_full = live[flat], full[flat]
    cat = np.where(is_full, 1, np.where(is_live, 0, 2))
    keep = cat < 2
    item_of, blk, cat = item_of[keep], blk[keep], cat[keep]
    order = np.lexsort((blk, cat, item_of))               # by item, then partly before fully visible
    counts = np.zeros((n, 2), np.int64)
    np.add.at(counts, (item_of, cat), 1)
    blk_indptr = np.concatenate([[0], np.cumsum(counts.reshape(-1))]).astype(np.int32)
    return blk_indptr, blk[order].astype(np.int32)


def packed_row_bytes(kv_lens: np.ndarray) -> np.ndarray:
    """Bytes per query row of each request's packed mask: ceil(kv_len / 8)."""
    return (np.asarray(kv_lens, np.int64) + 7) // 8


def packed_indptr(q_lens: np.ndarray, kv_lens: np.ndarray) -> np.ndarray:
    """int64 [b + 1]: request b's packed rows are bytes [indptr[b], indptr[b + 1])."""
    sizes = np.asarray(q_lens, np.int64) * packed_row_bytes(kv_lens)
    return np.concatenate([[0], np.cumsum(sizes)]).astype(np.int64)


def pack_mask(custom_mask: torch.Tensor, q_lens: np.ndarray, kv_lens: np.ndarray, out: torch.Tensor | None = None):
    """FlashInfer's flattened bool mask -> uint8 rows of 8 keys a byte (key j of a row is bit j % 8
    of byte j // 8, little-endian), each row padded to whole bytes. The kernel reads a block's bits
    as BLOCK_N // 8 bytes a row: a [BLOCK_M, BLOCK_N] tile of byte loads made 128x64 tiles spill.
    out: a uint8 buffer of at least packed_indptr(...)[-1] bytes to fill (else a new tensor)."""
    indptr = packed_indptr(q_lens, kv_lens)
    dev = custom_mask.device
    packed = torch.empty(max(int(indptr[-1]), 1), dtype=torch.uint8, device=dev) if out is None else out
    weights = (1 << torch.arange(8, device=dev, dtype=torch.int32)).to(torch.uint8)
    bit = 0
    for b, (lq, lk) in enumerate(zip(np.asarray(q_lens).tolist(), np.asarray(kv_lens).tolist())):
        lq, lk = int(lq), int(lk)
        if lq * lk == 0:
            continue
        nbytes = (lk + 7) // 8
        rows = torch.zeros(lq, nbytes * 8, dtype=torch.uint8, device=dev)
        rows[:, :lk] = custom_mask[bit: bit + lq * lk].view(lq, lk)
        bit += lq * lk
        # Bits are 0/1 and the weights distinct powers of two: the sum is the byte, no carries.
        packed[int(indptr[b]): int(indptr[b + 1])] = (rows.view(lq, nbytes, 8) * weights).sum(2, dtype=torch.uint8).view(-1)
    return packed, indptr


def mask_inputs(custom_mask: torch.Tensor, items: np.ndarray, q_lens: np.ndarray, kv_lens: np.ndarray, tq: int,
                block_n: int, causal: bool, window_left: int):
    """An eager launch's custom-mask arguments on the mask's device: (packed mask, each request's
    first byte int64 [b], blk_indptr, blk_ids) for work items `items` of tq-token tiles. blk_ids
    keeps one trailing 0, so that a batch with no live block still passes a valid pointer. (A plan
    fills the same into preallocated buffers instead: BatchPrefill.plan.)"""
    dev = custom_mask.device
    packed, byte_indptr = pack_mask(custom_mask, q_lens, kv_lens)
    bi, ids = block_lists(items, custom_mask, q_lens, kv_lens, tq, block_n, causal, window_left)
    return (packed, torch.from_numpy(byte_indptr[:-1].copy()).to(dev), torch.from_numpy(bi).to(dev),
            torch.from_numpy(np.append(ids, 0).astype(np.int32)).to(dev))
