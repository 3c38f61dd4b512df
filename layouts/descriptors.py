"""KV layouts as data: how (page, kv_head, slot, dim) maps to an element offset.

Every kernel takes, for K and for V separately, five strides and a split factor X:

    offset(page, head, slot, d) = page*s_page + head*s_head + slot*s_slot
                                  + (d // X)*s_dhi + (d % X)*s_dlo

X is 1 for every layout but vLLM's K, whose head dim is split into head_dim/x groups of x
elements (x = 16 bytes / element size) so that one thread's 16-byte load covers x dims of one
token. With X == 1 the second term vanishes at compile time. Adding a layout means adding a
descriptor here, not a kernel.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import NamedTuple

import torch


class Strides(NamedTuple):
    page: int
    head: int
    slot: int
    dhi: int
    dlo: int
    split: int      # X: dims per innermost group; 1 when the head dim is not split

    def offset(self, page, head, slot, d):
        return (page * self.page + head * self.head + slot * self.slot
                + (d // self.split) * self.dhi + (d % self.split) * self.dlo)


def vllm_x(dtype: torch.dtype) -> int:
    """vLLM's split factor: dims per 16 bytes."""
    return 16 // torch.empty((), dtype=dtype).element_size()


@dataclass(frozen=True)
class Layout:
    """A named KV layout. `dims` names the axes of K and of V storage, outermost first:
    P pages, H kv heads, S slots in a page, D head dim, Dhi/Dlo the split head dim."""
    name: str
    k_dims: tuple[str, ...]
    v_dims: tuple[str, ...]
    paged: bool = True          # False: [tokens, heads, dim] rows addressed through an indptr

    def dims(self, which: str) -> tuple[str, ...]:
        return self.k_dims if which == "k" else self.v_dims

    @property
    def family(self) -> str:
        """The tuned-config family (attn.configs' "layout" key): "rows" where a token's head dim
        is contiguous in K and V (NHD, HND, ragged: the kernel loads their tiles alike, only the
        strides differ), else the layout's name (vLLM's split K and slot-major V load differently
        and want configs of their own)."""
        return "rows" if self.k_dims[-1] == "D" and self.v_dims[-1] == "D" else self.name

    # --- reading a storage tensor -------------------------------------------------------
    def sizes(self, t: torch.Tensor, which: str) -> dict[str, int]:
        """Named sizes of a storage tensor: P, H, S, D (with D = Dhi*Dlo for split layouts)."""
        dims = self.dims(which)
        if t.dim() != len(dims):
            raise ValueError(
                f"{which}_cache must have {len(dims)} dims for layout {self.name!r} "
                f"[{', '.join(_DIM_NAMES[d] for d in dims)}]; got shape {tuple(t.shape)}")
        named = dict(zip(dims, t.shape))
        if "Dhi" in named:
            named["D"] = named["Dhi"] * named["Dlo"]
        named.setdefault("S", 1)
        return named

    def strides(self, t: torch.Tensor, which: str) -> Strides:
        dims = self.dims(which)
        st = dict(zip(dims, t.stride()))
        if "Dhi" in st:
            return Strides(st["P"], st["H"], st.get("S", 0), st["Dhi"], st["Dlo"], t.shape[dims.index("Dlo")])
        return Strides(st["P"], st["H"], st.get("S", 0), st["D"], 0, 1)

    # --- making a storage tensor --------------------------------------------------------
    def shape(self, which: str, num_pages: int, page_size: int, kv_heads: int, head_dim: int,
              dtype: torch.dtype) -> tuple[int, ...]:
        x = vllm_x(dtype)
        size = {"P": num_pages, "H": kv_heads, "S": page_size, "D": head_dim,
                "Dhi": head_dim // x, "Dlo": x}
        if "Dhi" in self.dims(which) and head_dim % x:
            raise ValueError(f"head_dim must be a multiple of x={x} for layout {self.name!r}; got {head_dim}")
        return tuple(size[d] for d in self.dims(which))

    def to_nhd(self, t: torch.Tensor, which: str) -> torch.Tensor:
        """A [pages, page_size, heads, dim] view of the storage (a copy for vLLM's split K)."""
        dims = list(self.dims(which))
        if "S" not in dims:                      # ragged: one token per "page"
            t, dims = t.unsqueeze(1), ["P", "S"] + dims[1:]
        if "Dhi" in dims:
            order = [dims.index(d) for d in ("P", "S", "H", "Dhi", "Dlo")]
            p, s, h, dhi, dlo = (t.shape[i] for i in order)
            return t.permute(order).reshape(p, s, h, dhi * dlo)
        return t.permute([dims.index(d) for d in ("P", "S", "H", "D")])


_DIM_NAMES = {"P": "pages", "H": "kv_heads", "S": "page_size", "D": "head_dim",
              "Dhi": "head_dim/x", "Dlo": "x", }

NHD = Layout("NHD", ("P", "S", "H", "D"), ("P", "S", "H", "D"))
HND = Layout("HND", ("P", "H", "S", "D"), ("P", "H", "S", "D"))
VLLM = Layout("vllm", ("P", "H", "Dhi", "S", "Dlo"), ("P", "H", "D", "S"))
RAGGED = Layout("ragged", ("P", "H", "D"), ("P", "H", "D"), paged=False)

LAYOUTS = {lay.name: lay for lay in (NHD, HND, VLLM, RAGGED)}
PAGED_LAYOUTS = ("NHD", "HND", "vllm")


def get_layout(layout: str | Layout) -> Layout:
    if isinstance(layout, Layout):
        return layout
    try:
        return LAYOUTS[layout]
    except KeyError:
        raise ValueError(f"layout must be one of {sorted(LAYOUTS)}; got {layout!r}") from None
