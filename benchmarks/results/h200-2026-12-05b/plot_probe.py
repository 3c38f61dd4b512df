"""Bar chart of call 1's probe (callB/hopper_prefill_probe log): TFLOP/s per shape and kernel.
`python benchmarks/results/h200-2026-12-05b/plot_probe.py` writes prefill_probe.png beside it."""
import re
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402

here = Path(__file__).parent
rows = [line for line in (here / "callB" / "hopper_probe.log").read_text().splitlines() if line.startswith("b=")]
names = {"attn": "portable", "v1 128/2": "Hopper v1", "ws 128/2": "Hopper persistent",
         "ws 128/2/ov": "persistent + overlap", "flash": "SDPA flash", "cudnn": "SDPA cuDNN"}
shapes, series = [], {v: [] for v in names.values()}
for line in rows:
    shape, rest = line.split(":", 1)
    shapes.append(shape.replace("b=", "").replace(" n=", " x "))
    for key, label in names.items():
        m = re.search(rf"(?:^|\| ){re.escape(key)} (\d+)", rest.strip())
        series[label].append(int(m.group(1)) if m else 0)
fig, ax = plt.subplots(figsize=(9, 4))
width = 0.13
for i, (label, vals) in enumerate(series.items()):
    ax.bar([x + (i - 2.5) * width for x in range(len(shapes))], vals, width, label=label)
ax.set_xticks(range(len(shapes)), shapes)
ax.set_ylabel("TFLOP/s (causal)")
ax.set_title("Prefill, bf16, 32 q / 8 kv heads, d 128, causal, H200 (2026-12-05, one run)")
ax.legend(fontsize=8, ncol=3)
fig.tight_layout()
fig.savefig(here / "prefill_probe.png", dpi=110)
