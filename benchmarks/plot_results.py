"""Plot a device's consolidated results (benchmarks/results/<device>.json) into one PNG.

    python benchmarks/plot_results.py benchmarks/results/NVIDIA_H100_80GB_HBM3.json
"""
import json
import sys
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402

PANELS = [("decode_gbs", "decode: K+V GB/s (higher is better)"),
          ("prefill_tflops", "causal prefill: TFLOP/s (higher is better)"),
          ("mixed_ms", "mixed batch: ms (lower is better)"),
          ("rotary_pct_of_copy", "rotary, 8192 tokens: % of copy bandwidth")]


def main(path: str) -> Path:
    data = json.loads(Path(path).read_text())
    fig, axes = plt.subplots(2, 2, figsize=(15, 9))
    for ax, (key, title) in zip(axes.flat, PANELS):
        panel = data[key]
        shapes = panel["shapes"]
        series = [(k, v) for k, v in panel.items() if k != "shapes"]
        width = 0.8 / len(series)
        for i, (name, vals) in enumerate(series):
            xs = [j + i * width for j, v in enumerate(vals) if v is not None]
            ys = [v for v in vals if v is not None]
            ax.bar(xs, ys, width, label=name)
        ax.set_xticks([j + 0.4 - width / 2 for j in range(len(shapes))])
        ax.set_xticklabels(shapes, fontsize=8)
        ax.set_title(title, fontsize=10)
        ax.legend(fontsize=7, loc="lower right", framealpha=0.9)
    fig.suptitle(f"attn on {data['device']} ({data['date']}, torch {data['torch']}, triton {data['triton']})")
    fig.tight_layout()
    out = Path(path).with_suffix(".png")
    fig.savefig(out, dpi=110)
    return out


if __name__ == "__main__":
    print(main(sys.argv[1]))
