"""Per-stage time as a stacked bar per mode and run: where each frame's time goes."""

from __future__ import annotations

import json
import sys
from pathlib import Path

from streamseg.bench.report import REPORTED
from streamseg.errors import MissingExtraError

COLORS = {
    "decode": "#4c72b0",
    "preprocess": "#55a868",
    "infer": "#c44e52",
    "composite": "#8172b2",
    "postprocess": "#8172b2",
    "blend": "#ccb974",
    "output": "#64b5cd",
    "encode": "#64b5cd",
}


def plot_stages(reports: list[dict], path: Path) -> Path:
    """One panel per run, one bar per mode, split into stage medians in ms per frame."""
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        raise MissingExtraError("--plot", "plots") from None  # matplotlib
    heights = [sum(1 for mode in REPORTED if report.get(mode)) for report in reports]
    fig, axes = plt.subplots(
        len(reports),
        1,
        figsize=(9, 0.7 * sum(heights) + 1.2 * len(reports)),
        gridspec_kw={"height_ratios": heights},
        squeeze=False,
    )
    seen = set()
    for ax, report in zip(axes[:, 0], reports):  # one panel per run: each model keeps its own scale
        rows = [
            (f"{mode.replace('_', '-')}\n{report[mode]['fps']:.2f} fps", report[mode]["stages"])
            for mode in REPORTED
            if report.get(mode)
        ]
        for y, (_label, stages) in enumerate(rows):
            left = 0.0
            for stage, s in stages.items():
                ax.barh(
                    y,
                    s["p50_ms"],
                    left=left,
                    color=COLORS.get(stage, "#999999"),
                    label=stage if stage not in seen else None,
                    edgecolor="white",
                    linewidth=0.5,
                )
                seen.add(stage)
                left += s["p50_ms"]
        ax.set_yticks(range(len(rows)), [label for label, _ in rows], fontsize=8)
        ax.invert_yaxis()
        ax.set_title(f"{report['spec']}, input {report['input_size'][0]}x{report['input_size'][1]}", fontsize=9)
    axes[-1, 0].set_xlabel("median ms per frame by stage (pipeline stages overlap in time; the Hub loop's add up)")
    fig.legend(fontsize=8, loc="center right")
    fig.tight_layout(rect=(0, 0, 0.84, 1))
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


if __name__ == "__main__":  # python -m streamseg.bench.plot OUT.png REPORT.json...
    plot_stages([json.loads(Path(p).read_text()) for p in sys.argv[2:]], Path(sys.argv[1]))
