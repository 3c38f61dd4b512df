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
