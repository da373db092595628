"""Class area fractions of a whole batch: each video's mean, from the summaries the batch wrote."""

from __future__ import annotations

import csv
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from streamseg.batch.manifest import Manifest
from streamseg.errors import ConfigError, MissingExtraError, SinkError
from streamseg.outputs.files.summary import read_summary


@dataclass(frozen=True)
class BatchClasses:
    videos: tuple[str, ...]
    frames: tuple[int, ...]
    classes: tuple[str, ...]
    means: np.ndarray  # (videos, classes): each video's mean area fraction per class

    @property
    def overall(self) -> np.ndarray:
        """Mean over all frames of the batch (videos weighted by their frame counts)."""
        weights = np.asarray(self.frames, dtype=float)
        return weights @ self.means / max(1.0, weights.sum())


def read_batch(outdir: Path) -> BatchClasses:
    """Every finished video's summary (``--summary`` or ``--labels-out``), averaged over its frames."""
    records = [r for r in Manifest(outdir).latest.values() if r.get("status") in ("done", "partial")]
    rows = []
    for record in sorted(records, key=lambda r: r["key"]):
        outputs = record.get("outputs") or {}
        summary = outputs.get("summary") or (outputs["labels"] + "/summary.csv" if outputs.get("labels") else None)
        if summary and (outdir / summary).exists():
            rows.append((record["key"], read_summary(outdir / summary)))
    if not rows:
        raise ConfigError(f"{outdir}: no finished video has a summary (run the batch with --summary or --labels-out)")
    classes = tuple(dict.fromkeys(c for _, series in rows for c in series.classes))
    means = np.zeros((len(rows), len(classes)))
    for n, (_, series) in enumerate(rows):
        for i, name in enumerate(series.classes):
            means[n, classes.index(name)] = series.fractions[:, i].mean()
    return BatchClasses(tuple(k for k, _ in rows), tuple(len(s.index) for _, s in rows), classes, means)


def write_batch_csv(path: Path, batch: BatchClasses, columns: list[int]) -> None:
    try:
        with open(path, "w", newline="") as file:
            writer = csv.writer(file)
            writer.writerow(["video", "frames", *(batch.classes[i] for i in columns)])
            for video, frames, means in zip(batch.videos, batch.frames, batch.means):
                writer.writerow([video, frames, *(f"{means[i]:.6f}" for i in columns)])
    except OSError as err:
        raise SinkError(f"cannot write {path}: {err.strerror or err}") from None


def plot_batch(path: Path, batch: BatchClasses, shown: list[int]) -> None:
    """One horizontal bar per video, split by the ``shown`` classes' mean areas; the rest is 'other'."""
    try:
        from matplotlib.figure import Figure
    except ImportError:
        raise MissingExtraError("streamseg report", "plots") from None
    figure = Figure(figsize=(10, 1.5 + 0.3 * len(batch.videos)), layout="constrained")
    axes = figure.add_subplot()
    rows = np.arange(len(batch.videos))
    left = np.zeros(len(batch.videos))
    for n, i in enumerate(shown):
        axes.barh(rows, batch.means[:, i], left=left, color=f"C{n % 10}", label=batch.classes[i])
        left += batch.means[:, i]
    if (1.0 - left).max() > 1e-6:
        axes.barh(rows, np.clip(1.0 - left, 0, 1), left=left, color="0.8", label="other")
    axes.set(
        yticks=rows,
        yticklabels=batch.videos,
        xlim=(0, 1),
        xlabel="mean area fraction",
        title=f"class area per video ({len(batch.videos)} videos, {sum(batch.frames)} frames)",
    )
    axes.invert_yaxis()
    axes.legend(loc="upper left", bbox_to_anchor=(1.01, 1.0), fontsize="small")
    try:
        figure.savefig(path, dpi=100)
    except OSError as err:
        raise SinkError(f"cannot write {path}: {err.strerror or err}") from None
