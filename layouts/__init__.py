"""KV layouts (installed as attn.layouts): the KVCache descriptor, named layouts, page maps,
conversions, cache writes and input validation.

| layout   | K storage                                   | V storage                        |
|----------|---------------------------------------------|----------------------------------|
| "NHD"    | [pages, page_size, kv_heads, d]             | same                             |
| "HND"    | [pages, kv_heads, page_size, d]             | same                             |
| "vllm"   | [pages, kv_heads, d/x, page_size, x]        | [pages, kv_heads, d, page_size]  |
| "ragged" | [tokens, kv_heads, d] + indptr (page size 1) | same                            |
"""
from .convert import convert, gather, to_dense, token_index
from .descriptors import HND, LAYOUTS, NHD, PAGED_LAYOUTS, RAGGED, VLLM, Layout, Strides, get_layout, vllm_x
from .kv_write import write_kv
from .kvcache import KVCache
from .page_map import csr_to_page_table, last_page_len_from_seq_lens, page_table_to_csr, seq_lens_from_last_page_len
from .validation import get_validation, set_validation

__all__ = [
    "KVCache", "Layout", "Strides", "LAYOUTS", "PAGED_LAYOUTS", "NHD", "HND", "VLLM", "RAGGED",
    "get_layout", "vllm_x", "convert", "gather", "to_dense", "token_index", "write_kv",
    "page_table_to_csr", "csr_to_page_table", "seq_lens_from_last_page_len",
    "last_page_len_from_seq_lens", "set_validation", "get_validation",
]
