"""The ninth session's plot: the fused rotary cache write (8192 tokens, page 16) before and after
its new NVIDIA tiles, % of copy bandwidth, from sweep_tile_call4.md (before / write_tile 4096,
same run) and sweep_vllm_call6.md (vLLM's k programs; the launcher's 8 x 1 row).

    python benchmarks/results/h200-2026-12-04/plot.py     # writes NVIDIA_H200_rotary_write.png here"""
from pathlib import Path

import matplotlib
matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402

here = Path(__file__).parent


def table(name):
    rows = []
    for line in (here / name).read_text().splitlines():
        c = [x.strip() for x in line.strip().strip("|").split("|")]
        if len(c) >= 5 and c[-2].endswith("%"):
            rows.append((c, float(c[-2].rstrip("%"))))
    return rows


tile = table("sweep_tile_call4.md")
vllm = table("sweep_vllm_call6.md")
layouts = ["HND", "NHD", "vllm"]
before = [next(p for c, p in tile if c[0] == "8192" and c[1] == lay and c[2].startswith("before")) for lay in layouts]
now = [next(p for c, p in tile if c[0] == "8192" and c[1] == lay and c[2].startswith("now (")) for lay in layouts]
now[2] = next(p for c, p in vllm if "launcher" in c[0])           # vLLM: 8 slots x 1 head (call 6)
fig, (a, b) = plt.subplots(1, 2, figsize=(11, 4))
x = range(len(layouts))
a.bar([i - 0.2 for i in x], before, 0.4, label="before (tile 8192)")
a.bar([i + 0.2 for i in x], now, 0.4, label="now (tile 4096; vLLM k 8x1)")
a.axhline(85, color="k", ls="--", lw=1, label="issue 5's 85%")
a.set_xticks(list(x), layouts)
a.set_ylabel("% of copy bandwidth")
a.set_ylim(60, 95)
a.set_title("apply_and_write_kv, 8192 tokens, page 16")
a.legend(loc="lower right", fontsize=8)
names = [c[0].replace(" (launcher)", "*") for c, _ in vllm]
b.bar(range(len(vllm)), [p for _, p in vllm])
b.axhline(85, color="k", ls="--", lw=1)
b.set_xticks(range(len(vllm)), names, rotation=30, fontsize=8)
b.set_ylim(30, 95)
b.set_title("vLLM layout: k program (slots x heads); * the launcher's")
fig.tight_layout()
fig.savefig(here / "NVIDIA_H200_rotary_write.png", dpi=110)
print("wrote", here / "NVIDIA_H200_rotary_write.png")
