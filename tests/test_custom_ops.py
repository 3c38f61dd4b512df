"""attn's operations as torch.library custom ops: torch.compile sees one node per operation."""
import torch

import attn
import attn.custom_ops  # noqa: F401
from attn.layouts import KVCache, convert


def _cache():
    lens = torch.tensor([5, 9], dtype=torch.int32)
    k = torch.randn(14, 2, 64)
    ip = torch.zeros(3, dtype=torch.int32)
    ip[1:] = torch.cumsum(lens, 0)
    return convert(KVCache.ragged(k, torch.randn_like(k), ip), "HND", page_size=4), ip


def _compiled_ops(fn, *args):
    """Run fn under torch.compile and return the call targets of the captured graph."""
    seen = []

    def backend(gm, example_inputs):
        seen.extend(str(n.target) for n in gm.graph.nodes if n.op == "call_function")
        return gm.forward

    torch._dynamo.reset()
    out = torch.compile(fn, backend=backend)(*args)
    return out, seen


def test_prefill_is_one_node_under_compile():
    kv, ip = _cache()
    q = torch.randn(14, 4, 64)
    out, seen = _compiled_ops(lambda q: attn.prefill(q, kv, ip, causal=True), q)
    assert any("attn.prefill" in s for s in seen), seen
    torch.testing.assert_close(out, attn.prefill(q, kv, ip, causal=True))


def test_decode_is_one_node_under_compile():
    kv, _ = _cache()
    q = torch.randn(2, 4, 64)
    out, seen = _compiled_ops(lambda q: attn.decode(q, kv), q)
    assert any("attn.decode" in s for s in seen), seen
    torch.testing.assert_close(out, attn.decode(q, kv))


def test_opcheck_prefill_and_merge():
    kv, ip = _cache()
    q = torch.randn(14, 4, 64)
    torch.library.opcheck(torch.ops.attn.prefill, (q, kv.k, kv.v, "HND", kv.page_indptr, kv.page_indices, kv.seq_lens,
                                                   ip, True, 0.125, -1, 0.0, "", None, None, "neox", 0, False, "torch"))
    outs, lses = torch.randn(3, 4, 2, 8), torch.randn(3, 4, 2)
    torch.library.opcheck(torch.ops.attn.merge_states, (outs, lses, "torch"))
