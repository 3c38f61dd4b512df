"""Shared test helpers: random KV caches in every layout, poisoning, tolerances, and a float64
attention definition written independently of attn.reference.

    from kvgen import make_kv, rel_err, assert_close, tol, poison, attention_f64

    case = make_kv([0, 1, 37], layout="vllm", page_size=16, kv_heads=2, head_dim=64,
                   dtype=torch.float16, gen=gen)
    case.kv                    # attn.layouts.KVCache over NaN-filled, shuffled pages
    case.k_rows, case.v_rows   # the truth: [total, kv_heads, d] ragged rows, case.indptr [b+1]

Storage is built here by explicit permutes of a logical [pages, page_size, kv_heads, d] tensor,
not through attn.layouts.descriptors, so layout tests check the library against this file.
"""
from __future__ import annotations

import math
import os
import zlib
from dataclasses import dataclass

import torch

import attn
from attn.layouts import KVCache

# ----------------------------------------------------------------------------- RNG

def session_seed() -> int:
    """ATTN_TEST_SEED when set (to replay a failure), else one random seed per session (printed in
    pytest's header by conftest), so inputs are fresh on every run."""
    env = os.environ.get("ATTN_TEST_SEED")
    if env:
        return int(env)
    global _SESSION_SEED
    if _SESSION_SEED is None:
        _SESSION_SEED = int.from_bytes(os.urandom(4), "little")
    return _SESSION_SEED


_SESSION_SEED: int | None = None


def make_gen(name: str = "", seed: int | None = None, device="cpu") -> torch.Generator:
    """A generator seeded from the session seed and a test's name: fresh across runs, distinct per
    test, replayable with ATTN_TEST_SEED."""
    base = session_seed() if seed is None else seed
    g = torch.Generator(device=device)
    g.manual_seed((base * 1_000_003 + zlib.crc32(name.encode())) % (2 ** 63))
    return g


def randn(shape, dtype=torch.float32, device="cpu", gen: torch.Generator | None = None, scale: float = 1.0):
    """Standard normal on the CPU generator (device-independent numbers), then moved and cast."""
    t = torch.randn(shape, generator=gen, dtype=torch.float32) * scale
    return t.to(device=device, dtype=dtype)


# ----------------------------------------------------------------------------- tolerances

TOL = {torch.float64: 1e-10, torch.float32: 1e-5, torch.float16: 1e-3, torch.bfloat16: 1e-2}


def tol(dtype: torch.dtype) -> float:
    """Relative (norm-wise) tolerance of a result stored in dtype (DESIGN.md: Correctness)."""
    return TOL[dtype]


def rel_err(a: torch.Tensor, b: torch.Tensor) -> float:
    """||a - b|| / max(||b||, tiny), in float64. Any NaN in either side, or a NaN/inf mismatch,
    gives inf: NaN never passes. Equal infinities (e.g. lse -inf on both sides) count as equal."""
    a = a.detach().to("cpu", torch.float64)
    b = b.detach().to("cpu", torch.float64)
    if a.shape != b.shape:
        raise AssertionError(f"shape mismatch: {tuple(a.shape)} vs {tuple(b.shape)}")
    if torch.isnan(a).any() or torch.isnan(b).any():
        return math.inf
    inf_a, inf_b = torch.isinf(a), torch.isinf(b)
    if not torch.equal(inf_a, inf_b) or not torch.equal(a[inf_a], b[inf_b]):
        return math.inf
    a, b = a[~inf_a], b[~inf_b]
    if a.numel() == 0:
        return 0.0
    return float(torch.linalg.vector_norm(a - b) / max(float(torch.linalg.vector_norm(b)), 1e-30))


def assert_close(got, want, dtype: torch.dtype | None = None, what: str = "", factor: float = 1.0):
    """rel_err(got, want) <= tol(dtype or got.dtype) * factor, with the case in the message."""
    t = tol(dtype or got.dtype) * factor
    e = rel_err(got, want)
    assert e <= t, f"{what}: rel_err={e:.3g} > tol={t:.1g}"


def poison(t: torch.Tensor) -> torch.Tensor:
    """Fill t with NaN (integers with -1) in place, so an element a kernel forgets to write fails."""
    if t.is_floating_point():
        t.fill_(float("nan"))
    else:
        t.fill_(-1)
    return t


def empty_poisoned(shape, dtype, device="cpu") -> torch.Tensor:
    return poison(torch.empty(shape, dtype=dtype, device=device))


# ----------------------------------------------------------------------------- KV caches

FORMS = ("NHD", "HND", "vllm", "ragged", "token_pool")
PAGED = ("NHD", "HND", "vllm")


def vllm_x(dtype: torch.dtype) -> int:
    return 16 // torch.tensor([], dtype=dtype).element_size()


def logical_to_storage(pages: torch.Tensor, layout: str, which: str) -> torch.Tensor:
    """pages [P, S, H, D] -> new storage of `layout` (contiguous), by explicit permutes."""
    p, s, h, d = pages.shape
    if layout == "NHD":
        return pages.clone(memory_format=torch.contiguous_format)
    if layout == "HND":
        return pages.permute(0, 2, 1, 3).clone(memory_format=torch.contiguous_format)
    if layout == "vllm":
        if which == "v":                                      # [P, H, D, S]
            return pages.permute(0, 2, 3, 1).clone(memory_format=torch.contiguous_format)
        x = vllm_x(pages.dtype)                               # [P, H, D/x, S, x]
        return pages.reshape(p, s, h, d // x, x).permute(0, 2, 3, 1, 4).clone(memory_format=torch.contiguous_format)
    raise ValueError(layout)


def storage_to_logical(store: torch.Tensor, layout: str, which: str) -> torch.Tensor:
    """The inverse of logical_to_storage: storage -> [P, S, H, D] (a copy)."""
    if layout == "NHD":
        return store.clone()
    if layout == "HND":
        return store.permute(0, 2, 1, 3).clone(memory_format=torch.contiguous_format)
    if layout == "vllm":
        if which == "v":
            return store.permute(0, 3, 1, 2).clone(memory_format=torch.contiguous_format)
        p, h, dhi, s, x = store.shape
        return store.permute(0, 3, 1, 2, 4).reshape(p, s, h, dhi * x).clone()
    if layout in ("ragged", "token_pool"):
        return store.unsqueeze(1).clone()
    raise ValueError(layout)


@dataclass
class KVCase:
    """A generated cache and its truth."""
    kv: KVCache
    form: str                   # "NHD", "HND", "vllm", "ragged", "token_pool"
    page_size: int
    lens: list[int]
    k_rows: torch.Tensor        # [total, kv_heads, d] live tokens, sequences in order
    v_rows: torch.Tensor
    indptr: torch.Tensor        # int64 [b+1] into k_rows / v_rows
    page_indptr: torch.Tensor   # CSR page map as given to the constructor (paged / token_pool)
    page_indices: torch.Tensor | None
    page_table: torch.Tensor | None   # padded table, when form was built with page_table=True
    num_pages: int

    @property
    def batch(self) -> int:
        return len(self.lens)

    def rows(self, b: int):
        s, e = int(self.indptr[b]), int(self.indptr[b + 1])
        return self.k_rows[s:e], self.v_rows[s:e]

    def describe(self) -> str:
        return (f"{self.form} page_size={self.page_size} lens={self.lens} kv_heads={self.kv.num_kv_heads} "
                f"d={self.kv.head_dim} {self.kv.dtype}" + (" page_table" if self.page_table is not None else ""))


def make_kv(lens, layout: str = "NHD", page_size: int = 16, kv_heads: int = 2, head_dim: int = 64,
            dtype: torch.dtype = torch.float32, device="cpu", gen: torch.Generator | None = None, *,
            extra_pages: int = 3, shuffle: bool = True, page_table: bool = False, last_page_len: bool = False,
            index_dtype: torch.dtype = torch.int32, fill=float("nan"), k_rows=None, v_rows=None) -> KVCase:
    """A random KV cache holding sequences of the given lengths (0 and 1 allowed).

    layout       "NHD", "HND", "vllm" (paged), "ragged" (rows + indptr), "token_pool" (rows picked
                 by kv_indices: a paged cache of page size 1)
    page_size    paged layouts only (ragged and token_pool are page size 1)
    extra_pages  pages (rows for token_pool / ragged) that no sequence owns
    shuffle      pages assigned in a random permutation; else in order
    page_table   build through KVCache.from_page_table: a padded table whose padding holds
                 out-of-range garbage, as a column slice of a wider tensor (row stride > width)
    last_page_len  give KVCache.paged kv_last_page_len instead of seq_lens
    fill         value of every slot no live token occupies (NaN by default)
    k_rows, v_rows  the live tokens [sum(lens), kv_heads, d] (random when None)
    """
    gen = gen if gen is not None else make_gen("make_kv")
    lens = [int(n) for n in lens]
    b, total = len(lens), sum(lens)
    if k_rows is None:
        k_rows = randn((total, kv_heads, head_dim), dtype, "cpu", gen)
    if v_rows is None:
        v_rows = randn((total, kv_heads, head_dim), dtype, "cpu", gen)
    k_rows, v_rows = k_rows.to("cpu", dtype), v_rows.to("cpu", dtype)
    indptr = torch.tensor([0] + lens, dtype=torch.int64).cumsum(0)
    lens_t = torch.tensor(lens, dtype=index_dtype)

    def dev(t):
        return t.to(device)

    if layout == "ragged":
        rows_total = total + extra_pages
        k = torch.full((rows_total, kv_heads, head_dim), fill, dtype=dtype)
        v = torch.full((rows_total, kv_heads, head_dim), fill, dtype=dtype)
        k[:total], v[:total] = k_rows, v_rows
        kv = KVCache.ragged(dev(k), dev(v), dev(indptr.to(index_dtype)))
        return KVCase(kv, layout, 1, lens, k_rows, v_rows, indptr, indptr.to(index_dtype), None, None, rows_total)

    if layout == "token_pool":
        pool = total + extra_pages
        perm = torch.randperm(pool, generator=gen) if shuffle else torch.arange(pool)
        idx = perm[:total]
        k = torch.full((pool, kv_heads, head_dim), fill, dtype=dtype)
        v = torch.full((pool, kv_heads, head_dim), fill, dtype=dtype)
        k[idx], v[idx] = k_rows, v_rows
        ip, ind = indptr.to(index_dtype), idx.to(index_dtype)
        kv = KVCache.token_pool(dev(k), dev(v), dev(ip), dev(ind))
        return KVCase(kv, layout, 1, lens, k_rows, v_rows, indptr, ip, ind, None, pool)

    if layout not in PAGED:
        raise ValueError(f"layout must be one of {FORMS}; got {layout!r}")
    n_pages_seq = [(n + page_size - 1) // page_size for n in lens]
    need = sum(n_pages_seq)
    num_pages = need + extra_pages
    perm = torch.randperm(num_pages, generator=gen) if shuffle else torch.arange(num_pages)
    page_ip = [0]
    for n in n_pages_seq:
        page_ip.append(page_ip[-1] + n)
    seq = torch.repeat_interleave(torch.arange(b), torch.tensor(lens, dtype=torch.int64))
    t = torch.arange(total) - indptr[:-1][seq]
    page = perm[torch.tensor(page_ip, dtype=torch.int64)[seq] + t // page_size]
    stores = []
    for rows, which in ((k_rows, "k"), (v_rows, "v")):
        logical = torch.full((num_pages, page_size, kv_heads, head_dim), fill, dtype=dtype)
        logical[page, t % page_size] = rows
        stores.append(logical_to_storage(logical, layout, which))
    k_store, v_store = stores
    page_indptr = torch.tensor(page_ip, dtype=index_dtype)
    page_indices = perm[:need].to(index_dtype)
    table = None
    if page_table:
        max_pages = max(n_pages_seq + [1]) + 1                # one column of padding at least
        wide = torch.randint(num_pages + 5, 2 ** 30, (b, max_pages + 2), generator=gen).to(index_dtype)
        for b_ in range(b):
            wide[b_, :n_pages_seq[b_]] = page_indices[page_ip[b_]:page_ip[b_ + 1]]
        table = dev(wide)[:, :max_pages]                     # row stride max_pages + 2: not contiguous
        kv = KVCache.from_page_table(dev(k_store), dev(v_store), table, dev(lens_t), layout=layout)
    elif last_page_len:
        lpl = torch.tensor([0 if n == 0 else n - (n - 1) // page_size * page_size for n in lens], dtype=index_dtype)
        kv = KVCache.paged(dev(k_store), dev(v_store), dev(page_indptr), dev(page_indices),
                           kv_last_page_len=dev(lpl), layout=layout)
    else:
        kv = KVCache.paged(dev(k_store), dev(v_store), dev(page_indptr), dev(page_indices), dev(lens_t),
                           layout=layout)
    return KVCase(kv, layout, page_size, lens, k_rows, v_rows, indptr, page_indptr, page_indices, table, num_pages)


def read_tokens(kv: KVCache, form: str, page_ip, page_idx, lens):
    """Live tokens of a cache read back through this file's own permutes (not the library's):
    (k_rows, v_rows) [total, kv_heads, d] on the CPU."""
    k_log = storage_to_logical(kv.k.cpu(), form, "k")
    v_log = storage_to_logical(kv.v.cpu(), form, "v")
    ks, vs = [], []
    ps = k_log.shape[1]
    for b, n in enumerate(lens):
        for t in range(n):
            if form == "ragged":
                page, slot = int(page_ip[b]) + t, 0
            else:
                page, slot = int(page_idx[int(page_ip[b]) + t // ps]), t % ps
            ks.append(k_log[page, slot])
            vs.append(v_log[page, slot])
    shape = (0, k_log.shape[2], k_log.shape[3])
    return (torch.stack(ks) if ks else torch.empty(shape, dtype=kv.dtype),
            torch.stack(vs) if vs else torch.empty(shape, dtype=kv.dtype))


def random_lens(gen: torch.Generator, batch: int, max_len: int, *, with_edges: bool = True) -> list[int]:
    """batch lengths in [0, max_len]; with_edges puts a 0 and a 1 among them when batch allows."""
    lens = torch.randint(0, max_len + 1, (batch,), generator=gen).tolist()
    if with_edges and batch >= 3:
        lens[0], lens[1] = 0, 1
    return lens


def ragged_q(q_lens, q_heads: int, head_dim: int, dtype=torch.float32, device="cpu", gen=None):
    """(q [total_q, q_heads, d], q_indptr int32 [b+1])."""
    q_indptr = torch.tensor([0] + list(q_lens), dtype=torch.int64).cumsum(0)
    q = randn((int(q_indptr[-1]), q_heads, head_dim), dtype, device, gen)
    return q, q_indptr.to(device=device, dtype=torch.int32)


def flat_custom_mask(q_lens, kv_lens, gen, p: float = 0.7) -> torch.Tensor:
    """FlashInfer's flattened per-request boolean mask: sum(q_len * kv_len) entries, row-major."""
    n = sum(int(a) * int(b) for a, b in zip(q_lens, kv_lens))
    return torch.rand(n, generator=gen) < p


# ----------------------------------------------------------------------------- float64 definition

def attention_f64(q, q_indptr, k_rows, v_rows, kv_indptr, *, causal=True, sm_scale=None, window_left=-1,
                  softcap=0.0, logits_transform=None, custom_mask=None):
    """Attention by its definition in float64, over a padded batch (not per sequence like attn's
    reference): q [total_q, Hq, d] ragged by q_indptr; K/V ragged rows by kv_indptr.

    GQA by viewing q heads as [kv_heads, group]; queries bottom-right aligned (query i of b at
    position kv_len - q_len + i); masks built on the padded grid. Returns (out [total_q, Hq, d]
    float64, lse [total_q, Hq] float64, natural log, -inf and out 0 where no key is seen)."""
    qi = [int(x) for x in q_indptr.cpu()]
    ki = [int(x) for x in kv_indptr.cpu()]
    b = len(qi) - 1
    hq, d = q.shape[1], q.shape[2]
    hk = k_rows.shape[1]
    g = hq // hk
    scale = 1.0 / math.sqrt(d) if sm_scale is None else sm_scale
    q_lens = [qi[i + 1] - qi[i] for i in range(b)]
    k_lens = [ki[i + 1] - ki[i] for i in range(b)]
    lq, lk = max(q_lens + [1]), max(k_lens + [1])
    Q = torch.zeros(b, lq, hk, g, d, dtype=torch.float64)
    K = torch.zeros(b, lk, hk, d, dtype=torch.float64)
    Vp = torch.zeros(b, lk, hk, d, dtype=torch.float64)
    allowed = torch.zeros(b, lq, lk, dtype=torch.bool)
    qpos = torch.zeros(b, lq, dtype=torch.int64)
    off = 0
    for i in range(b):
        Q[i, :q_lens[i]] = q[qi[i]:qi[i + 1]].cpu().double().view(q_lens[i], hk, g, d)
        K[i, :k_lens[i]] = k_rows[ki[i]:ki[i + 1]].cpu().double()
        Vp[i, :k_lens[i]] = v_rows[ki[i]:ki[i + 1]].cpu().double()
        qpos[i] = torch.arange(lq) + (k_lens[i] - q_lens[i])
        allowed[i, :q_lens[i], :k_lens[i]] = True
        if custom_mask is not None:
            n = q_lens[i] * k_lens[i]
            allowed[i, :q_lens[i], :k_lens[i]] &= custom_mask[off:off + n].cpu().view(q_lens[i], k_lens[i])
            off += n
    kpos = torch.arange(lk)
    if causal:
        allowed &= kpos[None, None, :] <= qpos[:, :, None]
    if window_left >= 0:
        allowed &= kpos[None, None, :] >= qpos[:, :, None] - window_left
    # scores [b, hk, g, lq, lk]
    s = torch.einsum("bqhgd,bkhd->bhgqk", Q, K) * scale
    if softcap > 0:
        s = torch.tanh(s / softcap) * softcap
    if logits_transform is not None:
        batch_idx = torch.arange(b).view(b, 1, 1, 1, 1)
        head = (torch.arange(hk).view(1, hk, 1, 1, 1) * g + torch.arange(g).view(1, 1, g, 1, 1))
        s = logits_transform(s, batch_idx, head, qpos.view(b, 1, 1, lq, 1), kpos.view(1, 1, 1, 1, lk))
    s = s.masked_fill(~allowed[:, None, None], -math.inf)
    lse = torch.logsumexp(s, dim=-1)                          # -inf on fully masked rows
    p = torch.exp(s - lse.unsqueeze(-1).masked_fill(torch.isinf(lse).unsqueeze(-1), 0.0))
    p = p.masked_fill(~allowed[:, None, None], 0.0)
    o = torch.einsum("bhgqk,bkhd->bqhgd", p, Vp)              # [b, lq, hk, g, d]
    out = torch.cat([o[i, :q_lens[i]].reshape(q_lens[i], hq, d) for i in range(b)]) if b else \
        torch.zeros(0, hq, d, dtype=torch.float64)
    lse_r = torch.cat([lse[i, :, :, :q_lens[i]].reshape(hq, q_lens[i]).T for i in range(b)]) if b else \
        torch.zeros(0, hq, dtype=torch.float64)
    return out, lse_r
