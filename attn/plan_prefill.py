"""attn.BatchPrefill: prefill / extend with the host work done once per batch (plan) and a launch
only per call (run), so run() can be captured in a CUDA graph and replayed."""
from __future__ import annotations

import math

import numpy as np
import torch

from attn import platform
from attn.layouts import validation as V
from attn.layouts.kvcache import KVCache
from attn.plans import check_plan_kv, kv_geometry, kv_pool, plan_lengths, prepare_run
from attn.rotary import check_rotary
from attn.scheduling import WorkList, segment_arange
from attn.transforms import as_transform


class BatchPrefill:
    """Attention of a ragged batch of queries over a KV cache, planned once, run many times.

    The constructor sizes every device buffer; plan() takes the batch (lengths, page map, mask,
    options) and fills them: page-map canonicalization to CSR, the work list (query tiles, longest
    first), the custom mask's per-tile block lists; one host sync. run() only launches the Triton
    kernel on the plan's buffers: no sync, no allocation, so a CUDA graph captured around run()
    replays for any batch later planned into the same object, up to the maximum sizes.

    Args:
        max_tokens    most query rows of a batch (total_q)
        max_batch     most sequences of a batch
        device        where the buffers live (default: the current GPU, else the CPU)
        num_q_heads   q heads (needed to shape the tiles; may be given to plan() instead)
        max_kv_pages  most pages a batch's page map lists (default: grown at plan time as needed;
                      give it so that a later, larger plan keeps the buffers a graph captured)
        max_mask_bits most custom-mask entries, sum(q_len * kv_len), likewise
        max_kv_len    longest KV sequence, sizing the custom mask's block lists, likewise

    Example::

        plan = attn.BatchPrefill(max_tokens=8192, max_batch=16, device="cuda", num_q_heads=32)
        plan.plan(q_indptr, kv, causal=True)          # q_indptr int32 [b+1]; kv an attn.KVCache
        out = plan.run(q, kv)                          # q [total_q, 32, d] -> out [total_q, 32, d]

        g = torch.cuda.CUDAGraph()                     # static q / out buffers of max_tokens rows
        with torch.cuda.graph(g):
            plan.run(q_static, kv, out=out_static)
        plan.plan(next_q_indptr, next_kv)              # same KV storage, another batch
        g.replay()
    """

    def __init__(self, max_tokens: int, max_batch: int, device=None, *, num_q_heads: int | None = None,
                 max_kv_pages: int | None = None, max_mask_bits: int | None = None,
                 max_kv_len: int | None = None):
        if not isinstance(max_tokens, int) or max_tokens < 1:
            V.fail(f"max_tokens must be an int >= 1; got {max_tokens!r}")
        if not isinstance(max_batch, int) or max_batch < 1:
            V.fail(f"max_batch must be an int >= 1; got {max_batch!r}")
        self.max_tokens, self.max_batch = max_tokens, max_batch
        self.device = platform.as_device(device)
        self.num_q_heads = num_q_heads
        self.max_kv_len = max_kv_len
        i32 = dict(dtype=torch.int32, device=self.device)
        self._q_indptr = torch.zeros(max_batch + 1, **i32)
        self._page_indptr = torch.zeros(max_batch + 1, **i32)
        self._seq_lens = torch.zeros(max_batch, **i32)
        self._mask_indptr = torch.zeros(max_batch, dtype=torch.int64, device=self.device)
        self._page_indices = torch.zeros(max(max_kv_pages or 1, 1), **i32)
        # The mask packed 8 keys a byte, rows padded to whole bytes (mask_summary.pack_mask): at most
        # max_mask_bits / 8 + one byte a query row.
        mask_bytes = max_mask_bits // 8 + max_tokens if max_mask_bits else 1
        self._mask = torch.zeros(mask_bytes, dtype=torch.uint8, device=self.device)
        self._work = None        # WorkList, sized when the tile shape is known (first plan)
        self._work_hopper = None  # the Hopper kernel's (prefill_hopper), when a plan can use it
        self._blocks = {}         # the custom mask's block lists a kernel: (indptr, ids) buffers
        self._out = self._lse = None
        self._planned = None
        self._captured_cfg = None   # the kernel config a captured graph holds (set by run())
        self._shape = None          # the first plan's batch shape: it picks the tuned bucket for good

    # ------------------------------------------------------------------------------ plan
    def plan(self, q_indptr: torch.Tensor, kv: KVCache, causal: bool = True, sm_scale: float | None = None,
             window_left: int = -1, softcap: float = 0.0, logits_transform=None, custom_mask=None, rotary=None,
             return_lse: bool = False, *, num_q_heads: int | None = None) -> "BatchPrefill":
        """Plan a batch.

        q_indptr     int32/int64 [b+1], b <= max_batch: sequence b's queries are rows
                     q_indptr[b]:q_indptr[b+1] of run()'s q (bottom-right aligned to its KV)
        kv           attn.layouts.KVCache, any layout; its page map and lengths are copied here
                     (run() reads K/V storage from the kv it is given, this page map from the plan)
        causal, sm_scale, window_left, softcap, logits_transform, return_lse: as attn.prefill
        custom_mask  bool [sum(q_len * kv_len)] (FlashInfer's flattened form), packed 8 keys a byte
                     into the plan's buffer; fully masked KV blocks are skipped by the kernel
        rotary       attn.Rotary: q rotated on load at its position (K too with rotate_k)
        num_q_heads  q heads, if not given to the constructor
        Returns self.
        """
        from attn.ops import check_options
        from attn.triton_kernels import prefill as P
        from attn.triton_kernels.attention import tile_shape
        from attn.triton_kernels.mask_summary import block_lists, pack_mask, packed_indptr

        hq = num_q_heads or self.num_q_heads
        if hq is None:
            V.fail("num_q_heads must be given to BatchPrefill(...) or plan(...): it shapes the query tiles")
        b = check_plan_kv(kv, self.device, self.max_batch, "BatchPrefill", hq)
        self.num_q_heads = hq
        check_options(sm_scale, window_left, softcap)
        V.check_index("q_indptr", q_indptr, length=b + 1, device=self.device)
        q_lens, kv_lens, total_q = plan_lengths(q_indptr, kv, self.max_tokens, "BatchPrefill")
        d = kv.head_dim
        group = hq // kv.num_kv_heads
        # Tuned entries are bucketed by batch and mean lengths: the first plan's pick them, so
        # that later plans (and a captured graph) keep one kernel config.
        if self._shape is None:
            self._shape = P.batch_shape(q_lens, kv_lens)
        cfg = P.config_for(platform.for_tensor(kv.k), d, group, kv.page_size, kv.dtype,
                           features=P.features_of(custom_mask=custom_mask, window_left=window_left, softcap=softcap,
                                                  logits_transform=logits_transform, return_lse=return_lse,
                                                  rotary=rotary), layout=kv.layout.family, **self._shape)
        # The warp-specialized Hopper kernel where it runs this batch (run() falls back to the
        # portable one for a q TMA cannot read): its tiles are 128 tokens of one head.
        hopper = P.hopper_kernel(kv, hq, kv.dtype, self.device, custom_mask=custom_mask, window_left=window_left,
                                 softcap=softcap, logits_transform=logits_transform, rotary=rotary)
        cfg = dict(cfg, hopper=hopper is not None)
        if self._captured_cfg is not None and cfg != self._captured_cfg:
            V.fail(f"this BatchPrefill was captured in a CUDA graph with kernel config {self._captured_cfg}; "
                   f"this plan's options need {cfg}: build another BatchPrefill for them")
        _, tq, _ = tile_shape(group, cfg["BLOCK_M"])

        # Work list: sized once for the worst batch of max_tokens / max_batch with this tile shape.
        max_items = self.max_tokens // tq + self.max_batch
        if self._work is None or self._work.max_items < max_items:
            self._grow("the work list")
            self._work = WorkList.empty(max_items, self.device)
        items = P.ordered_items(q_lens, kv_lens, tq, causal, window_left)
        self._work.fill(items)
        if hopper is not None:
            if self._work_hopper is None:
                self._grow("the Hopper kernel's work list")
                self._work_hopper = WorkList.empty(self.max_tokens // hopper.BLOCK_M + self.max_batch, self.device)
            items_hopper = P.ordered_items(q_lens, kv_lens, hopper.BLOCK_M, causal, -1)
            self._work_hopper.fill(items_hopper)

        # Page map, canonical CSR: exactly the pages each sequence's tokens need, in order.
        self._q_indptr[: b + 1].copy_(q_indptr, non_blocking=True)
        self._seq_lens[:b].copy_(kv.seq_lens, non_blocking=True)
        if kv.identity_pages:
            self._page_indptr[: b + 1].copy_(kv.page_indptr, non_blocking=True)
        else:
            need = (kv_lens + kv.page_size - 1) // kv.page_size
            n = int(need.sum())
            if n > self._page_indices.shape[0]:
                self._grow("the page map (max_kv_pages)")
                self._page_indices = torch.zeros(n, dtype=torch.int32, device=self.device)
            if n:
                # Page j of sequence r is kv_indices[kv_indptr[r] + j]: (r, j) from the host lengths,
                # kv_indptr read on the device (no second sync).
                rel = np.stack([np.repeat(np.arange(b), need), segment_arange(need)])
                rel = torch.from_numpy(rel).to(self.device, non_blocking=True)
                self._page_indices[:n].copy_(kv.page_indices[kv.page_indptr.to(torch.int64)[rel[0]] + rel[1]])
            self._page_indptr[: b + 1].copy_(torch.from_numpy(np.concatenate([[0], np.cumsum(need)]).astype(np.int32)))

        blocks = blocks_hopper = None
        if custom_mask is not None:
            P.check_mask(custom_mask, q_lens, kv_lens)
            nbytes = int(packed_indptr(q_lens, kv_lens)[-1])
            if nbytes > self._mask.shape[0]:
                self._grow("the custom mask (max_mask_bits)")
                self._mask = torch.zeros(nbytes, dtype=torch.uint8, device=self.device)
            _, byte_indptr = pack_mask(custom_mask, q_lens, kv_lens, out=self._mask)
            self._mask_indptr[:b].copy_(torch.from_numpy(byte_indptr[:-1].copy()))
            lists = block_lists(items, custom_mask, q_lens, kv_lens, tq, cfg["BLOCK_N"], causal, window_left)
            blocks = self._block_lists("portable", lists, self._work.max_items, cfg["BLOCK_N"])
            if hopper is not None:
                lists = block_lists(items_hopper, custom_mask, q_lens, kv_lens, hopper.BLOCK_M, hopper.BLOCK_N,
                                    causal, -1)
                blocks_hopper = self._block_lists("hopper", lists, self._work_hopper.max_items, hopper.BLOCK_N)
        if rotary is not None:
            check_rotary(rotary, d, self.device, kv_lens)

        shape = (self.max_tokens, hq, d)
        if self._out is None or self._out.shape != shape or self._out.dtype != kv.dtype:
            self._grow("the output buffer")
            self._out = torch.empty(shape, dtype=kv.dtype, device=self.device)
        if return_lse and (self._lse is None or self._lse.shape != shape[:2]):
            self._grow("the lse buffer")
            self._lse = torch.empty(shape[:2], dtype=torch.float32, device=self.device)
        transform = as_transform(logits_transform)
        if transform is not None and transform.triton_fn is None:
            V.fail("logits_transform has no Triton form; pass attn.LogitsTransform(triton_fn, reference_fn)")
        self._planned = dict(
            cfg=cfg, causal=bool(causal), sm_scale=1.0 / math.sqrt(d) if sm_scale is None else float(sm_scale),
            window_left=window_left, softcap=float(softcap),
            transform=transform.triton_fn if transform is not None else None,
            custom_mask=self._mask if custom_mask is not None else None,
            mask_indptr=self._mask_indptr if custom_mask is not None else None, mask_blocks=blocks,
            mask_hopper=None if blocks_hopper is None else (self._mask, self._mask_indptr, *blocks_hopper),
            rotary=rotary, return_lse=bool(return_lse),
            page_map=(self._page_indptr, self._page_indptr if kv.identity_pages else self._page_indices,
                      self._seq_lens),
            geometry=kv_geometry(kv), pool=kv_pool(kv), q_heads=hq, d=d, dtype=kv.dtype, total_q=total_q)
        return self

    def _block_lists(self, kernel: str, lists, max_items: int, block_n: int):
        """A kernel's mask block lists (mask_summary.block_lists) copied into its buffers: at most
        every block of every item, sized once when max_kv_len is known."""
        bi, ids = lists
        indptr, buf = self._blocks.get(kernel, (None, None))
        if indptr is None or buf.shape[0] < ids.shape[0]:
            self._grow("the mask block lists (max_kv_len)")
            bound = max_items * -(-(self.max_kv_len or 0) // block_n)
            indptr = torch.zeros(2 * max_items + 1, dtype=torch.int32, device=self.device)
            buf = torch.zeros(max(ids.shape[0], bound, 1), dtype=torch.int32, device=self.device)
            self._blocks[kernel] = (indptr, buf)
        indptr[: bi.shape[0]].copy_(torch.from_numpy(bi))
        if ids.shape[0]:
            buf[: ids.shape[0]].copy_(torch.from_numpy(ids))
        return indptr, buf

    def _grow(self, what: str):
        """A buffer must be (re)allocated: a captured graph would keep reading the old one."""
        if self._captured_cfg is not None:
            V.fail(f"this batch needs a larger {what} than the BatchPrefill held when its CUDA graph was "
                   "captured; size the constructor's maxima (max_tokens, max_batch, max_kv_pages, "
                   "max_mask_bits, max_kv_len) for the largest batch")

    @property
    def cfg(self) -> dict | None:
        """The kernel config (attn/configs) the last plan() chose."""
        return dict(self._planned["cfg"]) if self._planned else None

    # ------------------------------------------------------------------------------ run
    def run(self, q: torch.Tensor, kv: KVCache, out: torch.Tensor | None = None, lse: torch.Tensor | None = None):
        """Launch the planned batch.

        q    [rows, num_q_heads, head_dim] in kv's dtype, unit stride along head_dim; rows >= the
             planned total_q (a static buffer of max_tokens rows is fine: rows past the batch are
             left alone)
        kv   the KV storage to read (same layout, page size, heads and head_dim as planned; the
             page map and lengths are the plan's)
        out  optional [rows, num_q_heads, head_dim] output; default: a view of the plan's buffer
             (overwritten by the next run)
        lse  optional float32 [rows, num_q_heads] when planned with return_lse
        Returns out (and lse when planned with return_lse). Rows past the batch are not written.
        """
        from attn.triton_kernels.attention import launch
        p = self._planned
        if p is not None and out is None:
            if q.shape[0] > self.max_tokens:
                V.fail(f"q has {q.shape[0]} rows, more than max_tokens={self.max_tokens}: pass out=")
            out = self._out[:q.shape[0]]
        if p is not None and p["return_lse"] and lse is None:
            lse = self._lse[:q.shape[0]]
        out, lse = prepare_run(p, q, kv, p["total_q"] if p else 0, out, lse, "BatchPrefill")
        if torch.cuda.is_available() and torch.cuda.is_current_stream_capturing():
            self._captured_cfg = dict(p["cfg"])
        if p["cfg"]["hopper"]:
            from attn.triton_kernels import prefill_hopper
            if prefill_hopper.q_fits(q):
                prefill_hopper.launch(q, kv, self._q_indptr, self._work_hopper, out, lse, causal=p["causal"],
                                      sm_scale=p["sm_scale"], return_lse=p["return_lse"], page_map=p["page_map"],
                                      mask=p["mask_hopper"])
                return (out, lse) if p["return_lse"] else out
        launch(q, kv, self._q_indptr, self._work, out, lse, p["cfg"], causal=p["causal"], sm_scale=p["sm_scale"],
               window_left=p["window_left"], softcap=p["softcap"], transform=p["transform"],
               custom_mask=p["custom_mask"], mask_indptr=p["mask_indptr"], mask_blocks=p["mask_blocks"],
               rotary=p["rotary"], return_lse=p["return_lse"], page_map=p["page_map"])
        return (out, lse) if p["return_lse"] else out
