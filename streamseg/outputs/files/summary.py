"""Per-frame summary rows: index, pts, time, latency and class pixel fractions.

Each row is flushed as it is written, so a killed run keeps every row of the frames it wrote.
"""

from __future__ import annotations

import csv
import json
from pathlib import Path

import numpy as np

from streamseg.errors import SinkError
from streamseg.frames import Result


def class_fractions(labels: np.ndarray, num_classes: int) -> np.ndarray:
    counts = np.bincount(labels.ravel(), minlength=num_classes)[:num_classes]
    return counts / max(1, labels.size)


class SummarySink:
    """CSV (``.csv``) or JSON Lines (``.jsonl``/``.json``), one row per frame.

    ``origin`` adds where each frame's labels came from (inferred, or carried from an earlier
    inferred frame by flow or held) and their age in frames and ms (runs with ``--interval`` etc.).
    """

    def __init__(self, path: str | Path, classes: tuple[str, ...], *, origin: bool = False):
        self.path = Path(path)
        self.origin = origin
        self.name = str(self.path)
        self.delivered = 0
        self.classes = classes
        self.json = self.path.suffix.lower() in (".json", ".jsonl")
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            self._file = open(self.path, "w", newline="")
        except OSError as err:
            raise SinkError(f"cannot write {self.path}: {err.strerror or err}") from None
        if not self.json:
            self._csv = csv.writer(self._file)
            extra = ["origin", "age_frames", "age_ms"] if origin else []
            self._guard(self._csv.writerow, ["index", "pts", "time", "latency_ms", *extra, *classes])

    def _guard(self, write, *args) -> None:
        """Write and flush; a failure names the file."""
        try:
            write(*args)
            self._file.flush()
        except OSError as err:
            raise SinkError(f"cannot write {self.path}: {err.strerror or err}") from None

    def write(self, result: Result) -> None:
        fractions = class_fractions(result.labels, len(self.classes))
        time = result.time
        if self.json:
            row = {
                "index": result.index, "pts": result.pts, "time": time,
                "latency_ms": round(result.latency * 1000, 2),
                **({"origin": result.origin, "age_frames": result.age_frames, "age_ms": round(result.age_ms, 1)}
                   if self.origin else {}),
                "classes": {c: round(float(f), 6) for c, f in zip(self.classes, fractions) if f > 0},
            }  # fmt: skip
            self._guard(self._file.write, json.dumps(row) + "\n")
        else:
            extra = [result.origin, result.age_frames, f"{result.age_ms:.1f}"] if self.origin else []
            self._guard(
                self._csv.writerow,
                [
                    result.index,
                    result.pts,
                    "" if time is None else f"{time:.6f}",
                    f"{result.latency * 1000:.2f}",
                    *extra,
                    *(f"{f:.6f}" for f in fractions),
                ],
            )
        self.delivered += 1

    def close(self, complete: bool = True) -> None:
        try:
            self._file.close()
        except OSError as err:
            raise SinkError(f"cannot write {self.path}: {err.strerror or err}") from None
