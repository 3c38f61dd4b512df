"""attn.BatchAttention: a mixed batch (decode requests and prefill / extend chunks) in ONE
persistent launch, so one CUDA graph serves every batch composition within the planned maximum.

plan() (host): cuts every request into work items (attn/persistent_schedule.py: small M tiles for
decode-like requests, large ones for prefill, long KV ranges in chunks), assigns them to a fixed
number of programs longest-first so they finish together, and copies items, the assignment, the
merge offsets and the page map into buffers this object owns. run() (device only): the attention
kernel in its persistent form (each program loops over its items; triton_kernels/attention.py,
or on sm_90 the warp-specialized triton_kernels/prefill_hopper.py, a head of an item at a time),
then the segmented merge of tiles whose KV was split.
"""
from __future__ import annotations

import math

import numpy as np
import torch

from attn import persistent_schedule, platform
from attn.layouts import validation as V
from attn.layouts.kvcache import KVCache
from attn.plans import check_plan_kv, copy_page_map, kv_geometry, kv_pool, plan_lengths, prepare_run
from attn.scheduling import WorkList


class BatchAttention:
    """Mixed prefill + decode attention in one persistent launch.

    Constructor (sizes every buffer):
        max_tokens        most query tokens a plan may hold (sum of q_len)
        max_batch         most requests a plan may hold
        max_pages         most page-map entries (len(kv_indices)); None: grown by plans until
                          a graph is captured
        max_partial_rows  most partial rows of split tiles (None: grown until captured)
        num_programs      persistent programs (None: one wave; the portable kernel's are per kv
                          head, SMs x resident / kv_heads, the Hopper kernel's one an SM)
        chunk_kv          KV tokens per chunk of a long tile (None: about one program's fair share)
        cost_model        persistent_schedule.CostModel that weighs items (None: KV blocks by
                          tile rows); calibrate() fits one to measured program times
        kernel_config     the portable kernel's config overrides (BLOCK_M, num_warps...; given,
                          the Hopper kernel is not used)
        device            where the buffers live (default: the current GPU, else the CPU)

    plan(q_indptr, kv, q_heads, causal=True, sm_scale=None, window_left=-1, softcap=0.0,
         logits_transform=None, return_lse=False) once per batch composition:
        q_indptr   int [b+1]: request b's queries are rows q_indptr[b]:q_indptr[b+1] of q,
                   bottom-right aligned to its KV (decode: q_len 1; extend: q_len < kv_len)
        kv         attn.layouts.KVCache with b requests, any layout

    run(q, kv, out=None, lse=None): q [total_q, q_heads, head_dim] -> out (, lse [total_q, q_heads]).

    describe() prints the schedule: items per program and the estimated load imbalance.
    measure(q, kv) reads each program's busy time (GPU); calibrate(q, kv) fits the cost model to
    it and plans again (keep cost_model for later plans and other instances).

    Example::

        ba = attn.BatchAttention(max_tokens=8192, max_batch=256)
        ba.plan(q_indptr, kv, q_heads=32)        # 64 decode requests + 4 prefill chunks
        out = ba.run(q, kv)
    """

    def __init__(self, max_tokens: int, max_batch: int, *, max_pages: int | None = None,
                 max_partial_rows: int | None = None, num_programs: int | None = None, device=None,
                 kernel_config: dict | None = None, chunk_kv: int | None = None,
                 cost_model: persistent_schedule.CostModel | None = None):
        for name, v in (("max_tokens", max_tokens), ("max_batch", max_batch)):
            if not isinstance(v, int) or v < 1:
                V.fail(f"{name} must be an int >= 1; got {v!r}")
        self.device = platform.as_device(device)
        self.max_tokens, self.max_batch = max_tokens, max_batch
        self.max_pages, self.max_partial_rows = max_pages, max_partial_rows
        self.programs_requested = num_programs
        self.num_programs = num_programs
        self.chunk_kv = chunk_kv
        if cost_model is not None and not isinstance(cost_model, persistent_schedule.CostModel):
            V.fail(f"cost_model must be an attn.persistent_schedule.CostModel or None; got {type(cost_model).__name__}")
        self.cost_model = cost_model
        self.kernel_config = dict(kernel_config or {})
        dev = self.device
        z = lambda n: torch.zeros(max(n, 1), dtype=torch.int32, device=dev)  # noqa: E731
        self.q_indptr = z(max_batch + 1)
        self.page_indptr, self.seq_lens = z(max_batch + 1), z(max_batch)
        self.page_indices = z(max_pages) if max_pages is not None else None
        self.merge_indptr = z(max_tokens + 1)
        self.merge_rows = z(max_tokens)
        self.num_rows = z(1)
        self.work = self.prog_indptr = self.prog_items = self.item_kind = self.item_stride = None
        self.part_o = self.part_lse = None
        self.cfg = None
        self.schedule = None
        self.measured = None
        self._captured = False
        self._planned = None
        self._plan_args = None
        self.ragged_rows = None

    # ------------------------------------------------------------------------------ plan
    def plan(self, q_indptr, kv: KVCache, q_heads: int, *, causal: bool = True, sm_scale: float | None = None,
             window_left: int = -1, softcap: float = 0.0, logits_transform=None, return_lse: bool = False):
        from attn.ops import check_options
        from attn.transforms import as_transform
        from attn.triton_kernels import prefill as P
        from attn.triton_kernels.attention import tile_shape
        b = check_plan_kv(kv, self.device, self.max_batch, "BatchAttention", q_heads)
        V.check_index("q_indptr", q_indptr, length=b + 1, device=self.device)
        check_options(sm_scale, window_left, softcap)
        transform = as_transform(logits_transform)
        if transform is not None and transform.triton_fn is None:
            V.fail("logits_transform has no 'triton' form: pass attn.LogitsTransform(triton_fn, reference_fn)")
        q_lens, kv_lens, total_q = plan_lengths(q_indptr, kv, self.max_tokens, "BatchAttention")

        group = q_heads // kv.num_kv_heads
        plat = platform.for_tensor(kv.k)
        # The merge's grid: rows of programs walking the merge list, fixed per device so that a
        # captured graph replays it whatever the list's length.
        self.merge_grid_rows = 4 * plat.num_sms
        # sm_90: the warp-specialized kernel (prefill_hopper) runs the schedule a tile of one head
        # at a time; a decode-kind tile packs a kv head's GQA group (so up to 128 q heads a kv head).
        hopper = None if self.kernel_config or group > 128 else P.hopper_kernel(
            kv, q_heads, kv.dtype, self.device, window_left=window_left, softcap=softcap,
            logits_transform=logits_transform)
        if hopper is not None:
            cfg = dict(hopper=True, BLOCK_M=hopper.BLOCK_M, BLOCK_N=hopper.BLOCK_N)
            # wgmma's M is 64 rows a warpgroup: a decode tile's rows cost as much up to 64.
            self.block_m_decode = 64
            tq_d, tq_p, units = hopper.BLOCK_M // group, hopper.BLOCK_M, (kv.num_kv_heads, q_heads)
            programs = plat.num_sms                        # one 12-warp program fills an SM
            block_n = hopper.BLOCK_N
        else:
            cfg = P.config_for(plat, kv.head_dim, group, kv.page_size, kv.dtype,
                               features=P.features_of(window_left=window_left, softcap=softcap,
                                                      logits_transform=logits_transform, return_lse=return_lse,
                                                      persistent=True), layout=kv.layout.family)
            cfg.update(self.kernel_config)
            # The small tile holds one decode token's GQA group: at least the MMA's 16 rows.
            self.block_m_decode = max(16, 1 << (group - 1).bit_length())
            if group > self.block_m_decode or group > cfg["BLOCK_M"]:
                V.fail(f"BatchAttention packs a GQA group into one tile; group {group} exceeds BLOCK_M")
            _, tq_d, _ = tile_shape(group, self.block_m_decode)
            _, tq_p, _ = tile_shape(group, cfg["BLOCK_M"])
            units = (1, 1)
            # One wave of resident programs a kv head: a program of 8 warps holds a multiprocessor's
            # registers (the large tile: ~250 registers a thread on sm_90), 4 warps leave room for
            # two. More programs than fit would run as a second wave and undo the balance.
            programs = max(1, plat.num_sms * max(1, 8 // cfg.get("num_warps", 4)) // kv.num_kv_heads)
            # KV chunks start on a block boundary of both tiles (powers of two: the larger divides)
            block_n = max(cfg["BLOCK_N"], cfg.get("block_n_decode", 0))
        if self.cfg is not None and cfg != self.cfg and self._captured:
            V.fail(f"this BatchAttention was captured in a CUDA graph with kernel config {self.cfg}; this plan "
                   f"(head_dim, dtype, page size or options) needs {cfg}: build another BatchAttention")
        self.cfg = cfg
        self.num_programs = self.programs_requested or programs
        sched = persistent_schedule.build(
            q_lens, kv_lens, num_programs=self.num_programs, tq_decode=tq_d, tq_prefill=tq_p,
            block_m_decode=self.block_m_decode, block_m_prefill=cfg["BLOCK_M"], block_n=block_n,
            causal=causal, chunk_target=self.chunk_kv, model=self.cost_model, units=units)
        self.schedule = sched
        self._plan_args = (q_indptr, kv, q_heads, dict(causal=causal, sm_scale=sm_scale, window_left=window_left,
                                                       softcap=softcap, logits_transform=logits_transform,
                                                       return_lse=return_lse))
        self.measured = None
        page_map = self._fill(sched, q_indptr, kv, q_lens, q_heads, b, total_q)
        self._planned = dict(
            b=b, total_q=total_q, q_heads=q_heads, d=kv.head_dim, dtype=kv.dtype, causal=causal,
            sm_scale=1.0 / math.sqrt(kv.head_dim) if sm_scale is None else float(sm_scale),
            window_left=window_left, softcap=float(softcap), transform=transform.triton_fn if transform else None,
            return_lse=return_lse, geometry=kv_geometry(kv), pool=kv_pool(kv),
            page_map=page_map)
        return self

    def _fill(self, sched, q_indptr, kv, q_lens, q_heads, b, total_q):
        n, units = len(sched.items), len(sched.unit_item)
        # Enough for the automatic chunking (about one chunk per program's share, plus the tiles);
        # a fixed chunk_kv makes the count grow with the KV lengths, so the buffers grow with it
        # until a graph is captured. The Hopper kernel's units are an item's heads.
        max_items = max(n, 2 * self.max_batch + self.max_tokens // 8 + 4 * self.num_programs)
        max_units = max(units, max_items * (q_heads if self.cfg.get("hopper") else 1))
        if self.work is not None and (n > self.work.max_items or units > self.prog_items.shape[0]
                                      or self.prog_indptr.shape[0] != self.num_programs + 1):
            if self._captured:
                V.fail(f"this batch needs {n} work items ({units} units on {self.num_programs} programs) but the "
                       f"BatchAttention holds {self.work.max_items} ({self.prog_items.shape[0]} on "
                       f"{self.prog_indptr.shape[0] - 1}) and was captured in a graph (chunk_kv={self.chunk_kv}); "
                       "plan the largest batch before capture, or leave chunk_kv at None")
            self.work = None
        if self.work is None:
            self.work = WorkList.empty(max_items, self.device)
            self.item_kind = torch.zeros(self.work.max_items, dtype=torch.int32, device=self.device)
            self.item_stride = torch.zeros(self.work.max_items, dtype=torch.int32, device=self.device)
            self.prog_items = torch.zeros(max_units, dtype=torch.int32, device=self.device)
            self.prog_indptr = torch.zeros(self.num_programs + 1, dtype=torch.int32, device=self.device)
        it = sched.items
        self.work.fill(it[:, :5])
        self.item_kind[:n].copy_(torch.from_numpy(it[:, persistent_schedule.KIND].astype(np.int32)), non_blocking=True)
        self.item_stride[:n].copy_(torch.from_numpy(it[:, persistent_schedule.STRIDE].astype(np.int32)),
                                   non_blocking=True)
        # The Hopper kernel's tile id: item * q_heads + head (a kv head for a decode-kind item).
        ids = sched.unit_item[sched.prog_items] * q_heads + sched.unit_head[sched.prog_items] \
            if self.cfg.get("hopper") else sched.prog_items
        self.prog_items[:units].copy_(torch.from_numpy(ids.astype(np.int32)), non_blocking=True)
        self.prog_indptr.copy_(torch.from_numpy(sched.prog_indptr.astype(np.int32)), non_blocking=True)
        # The merge list: one entry per query row whose tile was split, in row order (split tiles'
        # partial rows are laid out in that order, so entry i's parts start where i-1's end).
        # A list rather than every row: the merge then costs the split rows only, not max_tokens.
        q_ip = np.concatenate([[0], np.cumsum(q_lens)]).astype(np.int64)
        m = sched.merge[np.argsort(q_ip[sched.merge[:, 0]] + sched.merge[:, 1], kind="stable")] \
            if len(sched.merge) else sched.merge
        merge_rows = np.zeros(self.max_tokens, np.int32)
        merge_rows[:len(m)] = q_ip[m[:, 0]] + m[:, 1]
        mi = np.zeros(self.max_tokens + 1, np.int64)          # entries past num_rows are never read
        mi[1:len(m) + 1] = np.cumsum(m[:, 3])
        self.merge_rows.copy_(torch.from_numpy(merge_rows), non_blocking=True)
        self.merge_indptr.copy_(torch.from_numpy(mi.astype(np.int32)), non_blocking=True)
        self.num_rows.fill_(len(m))
        base = sched.num_partial_rows
        rows = max(base, 1)
        if self.part_o is None or self.part_o.shape[0] < rows or self.part_o.shape[1:] != (q_heads, kv.head_dim):
            if self._captured or self.max_partial_rows is not None:
                have = 0 if self.part_o is None else self.part_o.shape[0]
                limit = self.max_partial_rows if self.max_partial_rows is not None else have
                if rows > limit or self._captured:
                    V.fail(f"this batch needs {rows} partial rows but the BatchAttention holds {have}"
                           + (" and was captured in a graph" if self._captured else "")
                           + "; construct it with a larger max_partial_rows")
                rows = limit
            self.part_o = torch.empty(rows, q_heads, kv.head_dim, dtype=torch.float32, device=self.device)
            self.part_lse = torch.empty(rows, q_heads, dtype=torch.float32, device=self.device)
        # The page map and q_indptr into owned buffers: a replayed graph reads the latest plan's.
        self.q_indptr[:b + 1].copy_(q_indptr, non_blocking=True)
        self.page_indices, page_map = copy_page_map(
            kv, b, self.page_indptr, self.seq_lens, self.page_indices,
            can_grow=not (self._captured or self.max_pages is not None), captured=self._captured,
            owner="BatchAttention")
        if kv.identity_pages and not self.cfg.get("hopper"):
            # A ragged cache runs as a token pool over the same rows (a page map listing every row
            # in order; launch() then compiles the page-map binary): the persistent loop without a
            # page map spilled 56-88 bytes and needed 270 KB of shared memory on sm_90 at d128
            # (compile matrix, Triton 3.9).
            if self.ragged_rows is None or self.ragged_rows.shape[0] < kv.num_pages:
                if self._captured:
                    V.fail(f"this ragged cache has {kv.num_pages} rows but the BatchAttention captured in a graph "
                           f"maps {self.ragged_rows.shape[0]}: plan the largest cache before capture")
                self.ragged_rows = torch.arange(kv.num_pages, dtype=torch.int32, device=self.device)
            page_map = (page_map[0], self.ragged_rows, page_map[2])
        return page_map

    # ------------------------------------------------------------------------------ run
    def run(self, q: torch.Tensor, kv: KVCache, out: torch.Tensor | None = None, lse: torch.Tensor | None = None,
            *, _prog_times=None):
        from attn.triton_kernels.attention import launch
        from attn.triton_kernels.merge import merge_segments
        p = self._planned
        out, lse = prepare_run(p, q, kv, p["total_q"] if p else 0, out, lse, "BatchAttention")
        if torch.cuda.is_available() and torch.cuda.is_current_stream_capturing():
            self._captured = True
        if self.cfg.get("hopper"):
            from attn.triton_kernels import prefill_hopper
            # TMA reads q as rows of heads x head_dim: a view TMA cannot read is copied, each run.
            q_in = q if prefill_hopper.q_fits(q) else q.contiguous()
            prefill_hopper.launch(q_in, kv, self.q_indptr, self.work, out, lse, causal=p["causal"],
                                  sm_scale=p["sm_scale"], return_lse=p["return_lse"], page_map=p["page_map"],
                                  batch=(self.prog_indptr, self.prog_items, self.item_kind, self.item_stride,
                                         self.part_o, self.part_lse, self.num_programs), prog_times=_prog_times)
        else:
            launch(q, kv, self.q_indptr, self.work, out, lse, self.cfg, causal=p["causal"], sm_scale=p["sm_scale"],
                   window_left=p["window_left"], softcap=p["softcap"], transform=p["transform"],
                   return_lse=p["return_lse"], part_o=self.part_o, part_lse=self.part_lse,
                   persistent=(self.prog_indptr, self.prog_items, self.item_kind, self.item_stride,
                               self.num_programs, self.block_m_decode), page_map=p["page_map"], prog_times=_prog_times)
        merge_segments(self.part_o, self.part_lse, self.merge_indptr, self.num_rows, out,
                       lse if p["return_lse"] else None, max_rows=self.max_tokens, rows=self.merge_rows,
                       grid_rows=self.merge_grid_rows)
        return (out, lse) if p["return_lse"] else out

    # ------------------------------------------------------------------------------ inspection
    def measure(self, q: torch.Tensor, kv: KVCache) -> np.ndarray:
        """Run once with a clock read at each program's start and end (a separately compiled
        variant; plain runs carry no timer) and return the programs' busy times in microseconds,
        float [num_programs, kv_heads] (the Hopper kernel's: [num_programs, 1]); describe() then
        reports the measured imbalance beside the estimate. GPU only: the interpreter has no device clock."""
        if self._planned is None:
            V.fail("BatchAttention.measure(): call plan() first")
        if self.device.type != "cuda":
            V.fail(f"BatchAttention.measure() needs a GPU; this one lives on {self.device}")
        # The portable kernel's grid has a kv-head axis; the Hopper kernel's programs run every head.
        heads = 1 if self.cfg.get("hopper") else kv.num_kv_heads
        times = torch.zeros(self.num_programs * heads, 3, dtype=torch.int64, device=self.device)
        self.run(q, kv, _prog_times=times)
        t = times.cpu().numpy()
        self.measured = ((t[:, 1] - t[:, 0]) / 1e3).reshape(self.num_programs, heads)
        return self.measured

    def calibrate(self, q: torch.Tensor, kv: KVCache) -> persistent_schedule.CostModel:
        """Fit the cost model to this batch's measured program times (measure(), after one warm
        run) and plan the same batch again with it; later plans keep it. Returns the model, in
        microseconds, to pass as cost_model= elsewhere. GPU only, like measure()."""
        if self._plan_args is None:
            V.fail("BatchAttention.calibrate(): call plan() first")
        self.run(q, kv)                                     # compile and warm outside the clock
        busy = self.measure(q, kv)
        prior = self.cost_model or persistent_schedule.CostModel.default(self.block_m_decode, self.cfg["BLOCK_M"])
        self.cost_model = persistent_schedule.fit(self.schedule, busy, prior)
        q_indptr, kv_planned, q_heads, options = self._plan_args
        self.plan(q_indptr, kv_planned, q_heads, **options)
        return self.cost_model

    def describe(self) -> str:
        """The schedule of the last plan: items and estimated load per program, imbalance."""
        s = self.schedule
        if s is None:
            return "BatchAttention: not planned"
        loads = s.program_loads()
        counts = np.diff(s.prog_indptr)
        kinds = np.bincount(s.items[:, persistent_schedule.KIND], minlength=2) if len(s.items) else [0, 0]
        unit = "cost_model units, us when fitted" if self.cost_model is not None else "KV blocks x tile weight"
        where = (f"the Hopper kernel's {s.num_programs} programs, a head a unit ({len(s.unit_item)} units)"
                 if self.cfg.get("hopper") else f"{s.num_programs} programs per kv head")
        lines = [f"BatchAttention: {len(s.items)} items ({kinds[0]} decode-tile, {kinds[1]} prefill-tile) on "
                 f"{where}; {len(s.merge)} query rows merged from {s.num_partial_rows} partial rows",
                 f"units per program: min {counts.min()} / mean {counts.mean():.1f} / max {counts.max()}",
                 f"estimated load per program ({unit}): min {loads.min():.0f} / mean "
                 f"{loads.mean():.0f} / max {loads.max():.0f}; imbalance (max/mean) {s.imbalance():.3f}"]
        if self.measured is not None:
            m = self.measured
            lines.append(f"measured busy time per program (us): min {m.min():.1f} / mean {m.mean():.1f} / max "
                         f"{m.max():.1f}; imbalance (max/mean) {m.max() / m.mean():.3f}")
        return "\n".join(lines)
