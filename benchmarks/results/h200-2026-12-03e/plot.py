"""The seventh session's decode plot: main's % of copy bandwidth per shape and layout (call D's
plain-merge column), and the two merge experiments' time ratios against it (calls C and D)."""
import sys
from pathlib import Path
import matplotlib
matplotlib.use("Agg")
import matplotlib.pyplot as plt

here = Path(__file__).parent


def rows(name):
    out = []
    for line in (here / name).read_text().splitlines():
        c = [x.strip() for x in line.strip("|").split("|")]
        if len(c) == 8 and c[0].startswith("b="):
            out.append((c[0], c[1].split()[0], float(c[5].rstrip("%")), float(c[6])))
    return out


pdl, fused = rows("pdl_merge_callD.md"), rows("fused_merge_callC.md")
shapes = list(dict.fromkeys(r[0] for r in pdl))
layouts = list(dict.fromkeys(r[1] for r in pdl))
fig, (a, b) = plt.subplots(1, 2, figsize=(13, 4.5))
w = 0.8 / len(layouts)
for i, lay in enumerate(layouts):
    xs = [shapes.index(r[0]) + i * w for r in pdl if r[1] == lay]
    a.bar(xs, [r[2] for r in pdl if r[1] == lay], w, label=lay)
    b.plot(range(len(shapes)), [r[3] for r in fused if r[1] == lay], "o-", label=f"fused merge, {lay}")
    b.plot(range(len(shapes)), [r[3] for r in pdl if r[1] == lay], "x--", label=f"PDL merge, {lay}")
a.axhline(85, color="k", lw=0.8, ls=":")
a.set_xticks([i + 0.3 for i in range(len(shapes))], shapes, rotation=20, fontsize=8)
a.set_ylabel("% of device copy bandwidth")
a.set_ylim(60, 102)
a.set_title("attn decode on H200 (main, merge launch)")
a.legend(fontsize=8)
b.axhline(1.0, color="k", lw=0.8)
b.set_xticks(range(len(shapes)), shapes, rotation=20, fontsize=8)
b.set_ylabel("time / main's time (>1: slower)")
b.set_title("merge experiments, same runs")
b.legend(fontsize=6, ncol=2)
fig.tight_layout()
fig.savefig(here / "NVIDIA_H200_decode.png", dpi=110)
print("wrote", here / "NVIDIA_H200_decode.png", file=sys.stderr)
