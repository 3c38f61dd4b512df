"""Plan/run wrappers: plan() does the host work once per batch composition into preallocated
buffers; run() only launches, so it can be captured in a CUDA graph and replayed."""


def check_plan_kv(kv, device, max_batch: int, owner: str, q_heads) -> int:
    """The checks every plan() makes of its KVCache and head count; returns the batch size."""
    from attn.layouts import validation as V
    from attn.layouts.kvcache import KVCache
    if not isinstance(kv, KVCache):
        V.fail(f"kv must be an attn.layouts.KVCache; got {type(kv).__name__}", TypeError)
    if kv.device != device:
        V.fail(f"kv must be on the plan's device {device}; got {kv.device}")
    if kv.batch_size > max_batch:
        V.fail(f"kv holds {kv.batch_size} sequences but this {owner} was sized for max_batch={max_batch}")
    if not isinstance(q_heads, int):
        V.fail(f"q_heads must be an int; got {q_heads!r}", TypeError)
    V.check_gqa(q_heads, kv.num_kv_heads)
    V.check_head_dim("head_dim", kv.head_dim)
    return kv.batch_size


def copy_page_map(kv, b: int, page_indptr, seq_lens, page_indices, *, can_grow: bool, captured: bool, owner: str):
    """kv's page map into a plan's own buffers (device copies, no sync), so a captured graph replays
    with the latest plan's page map. page_indices (None: not yet allocated) is reallocated when kv
    lists more entries and can_grow. Returns (page_indices buffer, the kernel's page_map triple)."""
    import torch

    from attn.layouts import validation as V
    ip, idx, lens = kv.page_map()
    page_indptr[:b + 1].copy_(ip[:b + 1], non_blocking=True)
    seq_lens[:b].copy_(lens[:b], non_blocking=True)
    if kv.identity_pages:
        return page_indices, (page_indptr, page_indptr, seq_lens)
    n = idx.shape[0]
    if page_indices is None or n > page_indices.shape[0]:
        if not can_grow:
            have = 0 if page_indices is None else page_indices.shape[0]
            V.fail(f"the page map has {n} entries but this {owner} holds {have}"
                   + (" and was captured in a graph" if captured else "") + "; construct it with a larger max_pages")
        page_indices = torch.zeros(max(n, 1), dtype=torch.int32, device=page_indptr.device)
    page_indices[:n].copy_(idx, non_blocking=True)
    return page_indices, (page_indptr, page_indices, seq_lens)


def plan_lengths(q_indptr, kv, max_tokens: int, owner: str):
    """The host lengths every ragged-q plan() needs, in one device->host copy, checked against the
    plan's max_tokens and bottom-right alignment: returns (q_lens, kv_lens, total_q)."""
    import numpy as np

    from attn.layouts import validation as V
    from attn.triton_kernels.prefill import host_lengths
    q_lens, kv_lens = host_lengths(q_indptr, kv)
    total_q = int(q_lens.sum())
    if total_q > max_tokens:
        V.fail(f"the batch has {total_q} query tokens but this {owner} was sized for max_tokens={max_tokens}")
    longer = np.nonzero(q_lens > kv_lens)[0]
    if longer.size:
        i = int(longer[0])
        V.fail(f"sequence {i} has q_len={int(q_lens[i])} > kv_len={int(kv_lens[i])}: queries are bottom-right "
               "aligned to the KV and must be among its tokens")
    return q_lens, kv_lens, total_q


def kv_geometry(kv) -> tuple:
    """What a plan bakes in of its KVCache, beyond the page map: run()'s kv must match it."""
    return (kv.layout.name, kv.page_size, kv.num_kv_heads, kv.head_dim, kv.dtype, kv.identity_pages)


def kv_pool(kv) -> tuple:
    """What run()'s kv is checked against: the planned device and sequences (the plan's items name
    them), and at least the planned pages (the plan's page map indexes them)."""
    return (kv.device, kv.batch_size, kv.num_pages)


def prepare_run(planned: dict | None, q, kv, rows: int, out, lse, owner: str):
    """The checks every run() makes of q and kv against its plan (skipped with validation "off"),
    and the outputs (allocated when not given): returns (out, lse or None)."""
    import torch

    from attn.layouts import validation as V
    if planned is None:
        V.fail(f"{owner}.run() before plan()", RuntimeError)
    if V.enabled():
        geo = kv_geometry(kv)
        if geo != planned["geometry"]:
            V.fail(f"kv must match the planned cache (layout, page_size, kv_heads, head_dim, dtype, ragged) "
                   f"{planned['geometry']}; got {geo}")
        (dev, batch, pages), (kv_dev, kv_batch, kv_pages) = planned["pool"], kv_pool(kv)
        if kv_dev != dev or q.device != dev:
            V.fail(f"q and kv must be on the planned device {dev}; got q on {q.device}, kv on {kv_dev}")
        if kv_batch != batch or kv_pages < pages:
            V.fail(f"kv must hold the planned {batch} sequences in at least the planned {pages} pages; "
                   f"got {kv_batch} sequences, {kv_pages} pages")
        if lse is not None and not planned["return_lse"]:
            V.fail("lse was given but the plan was made with return_lse=False: plan with return_lse=True")
        want = (planned["q_heads"], planned["d"])
        if q.dim() != 3 or q.shape[0] < rows or tuple(q.shape[1:]) != want:
            V.fail(f"q must be [>= {rows}, {want[0]}, {want[1]}] as planned; got {list(q.shape)}")
        if q.dtype != planned["dtype"]:
            V.fail(f"q must have the planned dtype {planned['dtype']}; got {q.dtype}", TypeError)
        if q.stride(-1) != 1:
            V.fail(f"q must have unit stride along head_dim; got strides {q.stride()}")
        if out is not None:
            V.check_tensor("out", out, dim=3, dtype=q.dtype, device=q.device, shape=(None, *want))
            if out.shape[0] < rows or out.stride(-1) != 1:
                V.fail(f"out must be [>= {rows}, {want[0]}, {want[1]}] with unit stride along head_dim; got shape "
                       f"{list(out.shape)}, strides {out.stride()}")
        if lse is not None:
            V.check_tensor("lse", lse, dtype=torch.float32, device=q.device, shape=(None, want[0]))
            if lse.shape[0] < rows or not lse.is_contiguous():
                V.fail(f"lse must be a contiguous [>= {rows}, {want[0]}] float32 tensor; got shape {list(lse.shape)}, "
                       f"strides {lse.stride()}")
    if out is None:
        out = torch.empty_like(q)
    if planned["return_lse"] and lse is None:
        lse = torch.empty(q.shape[:2], dtype=torch.float32, device=q.device)
    return out, lse


def __getattr__(name):
    if name == "BatchDecode":
        from attn.plan_decode import BatchDecode
        return BatchDecode
    if name == "BatchPrefill":
        from attn.plan_prefill import BatchPrefill
        return BatchPrefill
    if name == "BatchAttention":
        from attn.plan_attention import BatchAttention
        return BatchAttention
    raise AttributeError(f"module 'attn.plans' has no attribute {name!r}")
