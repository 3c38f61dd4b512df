"""Plan/run wrappers: plan() does the host work once per batch composition into preallocated
buffers; run() only launches, so it can be captured in a CUDA graph and replayed."""


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
