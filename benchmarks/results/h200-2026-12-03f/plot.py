"""The eighth session's decode plot: main's % of copy bandwidth per shape and layout beside
cuDNN's dense decode (dec_main.md, one `attn bench --op decode --peers` run), and the mixed
batch's split experiments as time ratios to the tuned plan (longest_first_pps.md, vllm_mixed.md)."""
import re
import sys
from pathlib import Path

import matplotlib
matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402

here = Path(__file__).parent


def bench_rows(name):
    """(shape, layout, % of copy, cuDNN GB/s or None) from an `attn bench` table."""
    out = []
    for line in (here / name).read_text().splitlines():
        c = [x.strip() for x in line.strip("|").split("|")]
        if len(c) >= 6 and c[0].startswith("b="):
            shape, layout = c[0].rsplit(" ", 2)[0], c[0].rsplit(" ", 2)[1]
            cudnn = re.search(r"sdpa-cudnn (\d+)", c[5])
            out.append((shape, layout, float(c[3].rstrip("%")), float(c[2].split()[0]),
                        float(cudnn.group(1)) if cudnn else None))
    return out


def ab_rows(name):
    """(layout, variant, items, ratio to tuned) from split_ab.py's table."""
    out = []
    for line in (here / name).read_text().splitlines():
        c = [x.strip() for x in line.strip("|").split("|")]
        if len(c) == 7 and c[0].startswith("mixed"):
            out.append((c[0].split()[1], c[1], int(c[2]), float(c[5])))
    return out


dec = bench_rows("dec_main.md")
shapes = list(dict.fromkeys(r[0] for r in dec))
layouts = list(dict.fromkeys(r[1] for r in dec))
fig, (a, b) = plt.subplots(1, 2, figsize=(13, 4.8))
w = 0.8 / (len(layouts) + 1)
for i, lay in enumerate(layouts):
    xs = [shapes.index(r[0]) + i * w for r in dec if r[1] == lay]
    a.bar(xs, [r[2] for r in dec if r[1] == lay], w, label=f"attn {lay}")
ref = {r[0]: r[4] / r[3] * r[2] for r in dec if r[4] is not None}        # cuDNN's GB/s as % of copy
a.bar([shapes.index(s) + len(layouts) * w for s in ref], list(ref.values()), w, color="k", alpha=0.5,
      label="cuDNN dense (SDPA)")
a.axhline(85, color="k", lw=0.8, ls=":")
a.set_xticks([i + 0.4 for i in range(len(shapes))], shapes, rotation=20, fontsize=8)
a.set_ylabel("% of device copy bandwidth")
a.set_ylim(60, 105)
a.set_title("attn decode on H200 (main, one run)")
a.legend(fontsize=7, ncol=2)

ab = ab_rows("longest_first_pps.md") + [("vllm (2nd call)", v, n, r) for _, v, n, r in ab_rows("vllm_mixed.md")]
for lay in dict.fromkeys(r[0] for r in ab):
    pts = [r for r in ab if r[0] == lay]
    b.plot([r[2] for r in pts], [r[3] for r in pts], "o", label=lay)
b.axhline(1.0, color="k", lw=0.8)
b.set_xlabel("work items (chunks) of the mixed batch")
b.set_ylabel("time / tuned plan's time (>1: slower)")
b.set_title("mixed batch: split variants, same runs")
b.legend(fontsize=7)
fig.tight_layout()
fig.savefig(here / "NVIDIA_H200_decode.png", dpi=110)
print("wrote", here / "NVIDIA_H200_decode.png", file=sys.stderr)
