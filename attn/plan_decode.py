"""attn.BatchDecode: batch decode over a paged KV cache, planned once per batch composition and
launched without host work, so one CUDA graph serves every later batch of the same maximum size.

plan() (host): reads the sequence lengths (one device->host copy, or none with seq_lens_host),
chooses per-sequence split counts, builds the work items, and copies items, merge offsets and the
page map into buffers this object owns. run() (device only): the attention kernel over the items,
then the segmented merge of split sequences. Both kernels' grids are sized by the planned maximum
(max_batch, and max_batch + the most extra split items), and programs past the live count exit,
so a graph captured once replays correctly after any re-plan that fits.
"""
from __future__ import annotations

import math

import numpy as np
import torch

from attn import platform
from attn.layouts import validation as V
from attn.layouts.kvcache import KVCache
from attn.plans import check_plan_kv, copy_page_map, kv_geometry, kv_pool, prepare_run
from attn.scheduling import WorkList, decode_items, guided_decode_items


class BatchDecode:
    """Batch decode (one query token per sequence) with split-KV, for repeated steps and CUDA graphs.

    Constructor (sizes every buffer; nothing is allocated on the hot path):
        max_batch     most sequences a plan may hold
        max_splits    most KV chunks per sequence (None: chosen per batch from the device's
                      multiprocessor count; the work list then has max_batch + extra items, extra
                      derived from the device at the first plan)
        max_pages     most page-table entries a plan may hold (len(kv_indices), or rows x row
                      stride of a padded page table). None: sized by the first plan and grown by
                      later ones, which a captured graph cannot follow (an error says so)
        device        where the buffers live (default: the current GPU, else the CPU)
        copy_page_map True: plan() copies the page map into owned buffers, so a graph replays
                      with the page map of the latest plan whatever tensors the caller passes.
                      False: kernels read kv's page-map tensors in place (no graphs across
                      page maps held in different tensors)
        kernel_config overrides of the kernel configuration (BLOCK_N, num_warps, num_stages,
                      cache_modifier, programs_per_sm, min_chunk_blocks, fit_wave,
                      longest_first, guided, occupancy): tuning only

    plan(kv, q_heads, ...) once per batch composition:
        kv            attn.layouts.KVCache, b <= max_batch sequences, any layout (NHD, HND, vllm,
                      ragged, token pool). Its k/v storage must be the tensors run() gets.
        q_heads       query heads (a multiple of kv.num_kv_heads)
        sm_scale, window_left, softcap, logits_transform, rotary, return_lse as attn.decode
        num_splits    KV chunks per sequence (None: balanced, from the batch and the device)
        seq_lens_host the lengths on the host (int [b]), to skip plan()'s one device sync

    run(q, kv, out=None, lse=None):
        q    [b', q_heads, head_dim], b' >= the planned b (rows past b are not computed), kv's dtype
        kv   the KVCache with the storage of the plan (its page map is the plan's copy)
        out  optional [b', q_heads, head_dim] output; lse optional float32 [b', q_heads]
        Returns out (, lse). A sequence of length 0 gets out 0 and lse -inf.

    Options given to plan() are baked into a captured graph: re-plan with other lengths and page
    maps freely, but not other sm_scale / window / softcap / heads.

    Example (a server's decode step with one graph)::

        dec = attn.BatchDecode(max_batch=64, max_pages=64 * 512)
        dec.plan(kv, q_heads=32)                 # first batch composition
        out = torch.empty_like(q)
        dec.run(q, kv, out=out)                  # warm-up (compiles)
        g = torch.cuda.CUDAGraph()
        with torch.cuda.graph(g):
            dec.run(q, kv, out=out)
        # every step: write the new q in place, update the cache, then
        dec.plan(kv_next, q_heads=32)            # new lengths / page map, same storage
        g.replay()                               # out holds this step's attention
    """

    def __init__(self, max_batch: int, *, max_splits: int | None = None, max_pages: int | None = None,
                 device=None, copy_page_map: bool = True, kernel_config: dict | None = None):
        if not isinstance(max_batch, int) or max_batch < 1:
            V.fail(f"max_batch must be an int >= 1; got {max_batch!r}")
        if max_splits is not None and (not isinstance(max_splits, int) or max_splits < 1):
            V.fail(f"max_splits must be an int >= 1 or None; got {max_splits!r}")
        if max_pages is not None and (not isinstance(max_pages, int) or max_pages < 0):
            V.fail(f"max_pages must be an int >= 0 or None; got {max_pages!r}")
        self.device = platform.as_device(device)
        self.max_batch = max_batch
        self.max_splits = max_splits
        self.copy_page_map = copy_page_map
        self.kernel_config = dict(kernel_config or {})
        self._exact = False              # the functional decode sizes everything to its one batch
        dev = self.device
        self.q_indptr = torch.arange(max_batch + 1, dtype=torch.int32, device=dev)   # one query a row
        self.merge_indptr = torch.zeros(max_batch + 1, dtype=torch.int32, device=dev)
        self.num_rows = torch.zeros(1, dtype=torch.int32, device=dev)
        self.page_indptr = torch.zeros(max_batch + 1, dtype=torch.int32, device=dev) if copy_page_map else None
        self.seq_lens = torch.zeros(max_batch, dtype=torch.int32, device=dev) if copy_page_map else None
        self.page_indices = (torch.zeros(max(max_pages, 1), dtype=torch.int32, device=dev)
                             if copy_page_map and max_pages is not None else None)
        self._fixed_pages = max_pages is not None
        self.work: WorkList | None = None
        self.part_o = self.part_lse = None
        self.cfg: dict | None = None
        self._key = None
        self._feats = frozenset()
        self._captured = False
        self._planned = None
        self._occupancy_fitted = False

    # ------------------------------------------------------------------------------ plan
    def plan(self, kv: KVCache, q_heads: int, *, sm_scale: float | None = None, window_left: int = -1,
             softcap: float = 0.0, logits_transform=None, rotary=None, return_lse: bool = False,
             num_splits: int | None = None, seq_lens_host=None) -> "BatchDecode":
        from attn.ops import check_options
        from attn.transforms import as_transform
        from attn.triton_kernels.decode import choose_splits, config_for, features_of
        from attn.rotary import check_rotary
        b = check_plan_kv(kv, self.device, self.max_batch, "BatchDecode", q_heads)
        check_options(sm_scale, window_left, softcap)
        if num_splits is not None and (not isinstance(num_splits, int) or num_splits < 1):
            V.fail(f"num_splits must be an int >= 1 or None; got {num_splits!r}")
        if num_splits is not None and self.max_splits is not None and num_splits > self.max_splits:
            V.fail(f"num_splits={num_splits} exceeds this BatchDecode's max_splits={self.max_splits}")
        transform = as_transform(logits_transform)
        fn = None
        if transform is not None:
            fn = transform.triton_fn
            if fn is None:
                V.fail("logits_transform has no 'triton' form: pass a @triton.jit function or "
                       "attn.LogitsTransform(triton_fn, reference_fn)")
        d = kv.head_dim

        if seq_lens_host is not None:
            lens = np.asarray(torch.as_tensor(seq_lens_host).to("cpu", torch.int64))
            if lens.shape != (b,):
                V.fail(f"seq_lens_host must have shape [{b}]; got {list(lens.shape)}")
            if (lens < 0).any() or (V.values_enabled("full") and not np.array_equal(lens, kv.seq_lens.cpu().numpy())):
                V.fail(f"seq_lens_host must equal kv.seq_lens {kv.seq_lens.tolist()}; got {lens.tolist()}")
        else:
            lens = kv.seq_lens.to("cpu", torch.int64).numpy()
        if rotary is not None:
            check_rotary(rotary, d, self.device, lens)
        # The kernel configuration is fixed at the first plan: a captured graph holds its binary,
        # and the items' block alignment must match it on every later plan.
        # Tuned entries are bucketed by batch and mean length too: the first plan's pick them.
        shape = dict(batch=b, kv_len=max(1, int(lens.sum()) // max(b, 1)))
        key = (q_heads, kv.num_kv_heads, d, kv.page_size, kv.dtype, kv.layout.name)
        # Feature branches can narrow the config (attn.triton_kernels.decode.choose_config); a
        # captured graph keeps the binary (and options) it was captured with.
        feats = features_of(window_left=window_left, softcap=softcap, logits_transform=fn, return_lse=return_lse,
                            rotary=rotary)
        if self.cfg is None:
            self.cfg = config_for(self.device, kv, q_heads, feats, **shape)
            self.cfg.update(self.kernel_config)
            self._occupancy_fitted = False
            self._key, self._feats, self._shape = key, feats, shape
        elif key != self._key and self._captured:
            V.fail(f"this BatchDecode was planned and captured for (q_heads, kv_heads, head_dim, page_size, "
                   f"dtype, layout)={self._key}; got {key}: build a new BatchDecode for another model")
        elif key != self._key or (feats != self._feats and not self._captured):
            # Other features alone: the first plan's shape still picks the tuned bucket.
            self.cfg = config_for(self.device, kv, q_heads, feats, **(shape if key != self._key else self._shape))
            self.cfg.update(self.kernel_config)
            self._occupancy_fitted = False
            if key != self._key:
                self._shape = shape
            self._key, self._feats = key, feats
        cfg = self.cfg
        block_n = cfg["BLOCK_N"]

        begin = None
        if window_left >= 0:
            begin = np.maximum(lens - 1 - window_left, 0)
        num_sms = platform.for_tensor(kv.k).num_sms
        kvh = kv.num_kv_heads
        span = lens if begin is None else lens - begin
        guided = cfg.get("guided") if num_splits is None and self.max_splits is None else None
        if guided and (span.size == 0 or span.max() <= 2 * span.mean()):
            # Lengths this even are balanced by equal chunks already; guided ones only add items
            # (b=32 x 2048 over the H200's token pool: 1.04x slower).
            guided = None
        if guided:
            items, merge_indptr = guided_decode_items(lens, block_n, guided_slots(cfg, num_sms, kvh),
                                                      int(cfg.get("min_chunk_blocks", 4)), float(guided), begin)
        else:
            splits = choose_splits(span, kvh, num_sms, cfg, num_splits, self.max_splits)
            items, merge_indptr = decode_items(lens, splits, block_n, begin,
                                               longest_first=bool(cfg.get("longest_first")))
        n_items = items.shape[0]

        # Sizes fixed by the first plan (or by max_splits): the grids of a captured graph.
        if self.work is None:
            if self._exact:
                max_items = n_items
            elif self.max_splits is not None:
                max_items = self.max_batch * self.max_splits
            elif cfg.get("guided") and num_splits is None:
                # Sized for guided chunks even when this plan's lengths take equal ones: a later
                # plan (a captured graph) may need them.
                slots = guided_slots(cfg, num_sms, kvh)
                max_items = 2 * self.max_batch + math.ceil(slots * (2 + math.log(1 / float(cfg["guided"]))))
            else:
                extra = math.ceil(cfg.get("programs_per_sm", 4) * num_sms / kvh)
                max_items = self.max_batch + max(extra, 1)
            self.work = WorkList.empty(max_items, self.device)
        if n_items > self.work.max_items:
            V.fail(f"this batch needs {n_items} work items but the BatchDecode was sized for {self.work.max_items}"
                   + (f" (num_splits={num_splits} x {b} sequences)" if num_splits else "")
                   + "; construct it with a larger max_splits")
        rows = self.work.max_items if not self._exact else max(int(merge_indptr[-1]), 1)
        need_parts = (rows, q_heads, d)
        if self.part_o is None or tuple(self.part_o.shape) != need_parts:
            if self._captured:
                V.fail(f"the split-KV workspace {tuple(self.part_o.shape)} was captured in a graph; "
                       f"this plan needs {need_parts}")
            self.part_o = torch.empty(need_parts, dtype=torch.float32, device=self.device)
            self.part_lse = torch.empty(need_parts[:2], dtype=torch.float32, device=self.device)

        self.work.fill(items)
        mi = np.full(self.max_batch + 1, merge_indptr[-1], dtype=np.int32)
        mi[:b + 1] = merge_indptr
        self.merge_indptr.copy_(torch.from_numpy(mi), non_blocking=True)
        self.num_rows.fill_(b)
        # None: the kernel reads run()'s kv page map in place.
        page_map = None
        if self.copy_page_map:
            self.page_indices, page_map = copy_page_map(
                kv, b, self.page_indptr, self.seq_lens, self.page_indices,
                can_grow=not (self._captured or self._fixed_pages), captured=self._captured, owner="BatchDecode")

        self._planned = dict(
            b=b, q_heads=q_heads, kv_heads=kvh, d=d, dtype=kv.dtype, geometry=kv_geometry(kv), pool=kv_pool(kv), page_map=page_map,
            split=bool(merge_indptr[-1]),
            sm_scale=1.0 / math.sqrt(d) if sm_scale is None else float(sm_scale), window_left=window_left,
            softcap=float(softcap), transform=fn, rotary=rotary, return_lse=return_lse)
        return self

    # ------------------------------------------------------------------------------ run
    def run(self, q: torch.Tensor, kv: KVCache, out: torch.Tensor | None = None, lse: torch.Tensor | None = None,
            *, _prog_times=None):
        from attn.triton_kernels.merge import merge_segments
        p = self._planned
        out, lse = prepare_run(p, q, kv, p["b"] if p else 0, out, lse, "BatchDecode")
        if torch.cuda.is_available() and torch.cuda.is_current_stream_capturing():
            self._captured = True
        if self.cfg.get("occupancy") and "maxnreg" not in self.cfg and q.device.type == "cuda" \
                and not self._occupancy_fitted:
            # Once, at the first run (before any capture): the register ceiling that fits the
            # config's programs an SM, where the compiler's own count does not.
            from attn.triton_kernels.decode import fit_occupancy
            self.cfg.update(fit_occupancy(self.cfg, self._launch(q, kv, out, lse, compile_only=True),
                                          platform.for_tensor(q)))
            self._occupancy_fitted = True
        self._launch(q, kv, out, lse, prog_times=_prog_times)
        if self._has_parts():
            merge_segments(self.part_o, self.part_lse, self.merge_indptr, self.num_rows, out,
                           lse if p["return_lse"] else None, max_rows=p["b"] if self._exact else self.max_batch)
        return (out, lse) if p["return_lse"] else out

    def _has_parts(self) -> bool:
        """Whether the launch writes partials for the merge: a split plan, and always under a
        graph or a reusable plan (a later plan may split)."""
        return self._planned["split"] or self._captured or not self._exact

    def _launch(self, q, kv, out, lse, **kw):
        """The attention launch of run() (compile_only=True: its binary, nothing launched)."""
        from attn.triton_kernels.attention import launch
        p = self._planned
        has_parts = self._has_parts()
        extra = {"rotary": p["rotary"]} if p["rotary"] is not None else {}
        return launch(q, kv, self.q_indptr, self.work, out, lse, self.cfg, causal=False, sm_scale=p["sm_scale"],
                      window_left=p["window_left"], softcap=p["softcap"], transform=p["transform"],
                      return_lse=p["return_lse"], part_o=self.part_o if has_parts else None,
                      part_lse=self.part_lse if has_parts else None, page_map=p["page_map"], **extra, **kw)

    # ------------------------------------------------------------------------------ inspection
    def measure(self, q: torch.Tensor, kv: KVCache) -> np.ndarray:
        """Run once with a clock read at each program's start and end (a separately compiled
        variant; plain runs carry no timer) and return the live programs' timeline, float
        [programs, 5]: start and end in microseconds from the first start, the multiprocessor
        (-1 on AMD), the work item and the kv head. attn.timeline.summary() reads it. GPU only:
        the interpreter has no device clock."""
        if self._planned is None:
            V.fail("BatchDecode.measure(): call plan() first")
        if self.device.type != "cuda":
            V.fail(f"BatchDecode.measure() needs a GPU; this one lives on {self.device}")
        from attn.triton_kernels.attention import tile_shape
        kvh = kv.num_kv_heads
        head_blocks = tile_shape(self._planned["q_heads"] // kvh, self.cfg["BLOCK_M"])[2]
        per_item = kvh * head_blocks
        times = torch.zeros(self.work.max_items * per_item, 3, dtype=torch.int64, device=self.device)
        self.run(q, kv, _prog_times=times)
        t = times.cpu().numpy()[: int(self.work.num_items.item()) * per_item].astype(np.float64)
        pid = np.arange(len(t))
        t0 = t[:, 0].min() if len(t) else 0.0
        return np.stack([(t[:, 0] - t0) / 1e3, (t[:, 1] - t0) / 1e3, t[:, 2], pid // per_item,
                         (pid % per_item) // head_blocks], 1)


def guided_slots(cfg: dict, num_sms: int, kv_heads: int) -> int:
    """Work items that run at once under the config's programs_per_sm (each is kv_heads programs):
    the divisor of guided self-scheduling's chunks."""
    return max(math.ceil(cfg.get("programs_per_sm", 4) * num_sms / kv_heads), 1)
