"""Per-frame summary rows: index, pts, time, latency, class pixel fractions and regions' coverage; their reader.

Each row is flushed as it is written, so a killed run keeps every row of the frames it wrote.
``read_summary`` reads either form back (``streamseg report``, a batch's class areas).
"""

from __future__ import annotations

import csv
import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from streamseg.errors import ConfigError, SinkError, SourceError
from streamseg.frames import Result

ORIGIN_COLUMNS = ["origin", "age_frames", "age_ms"]  # with origin=True, between latency_ms and the classes


def class_fractions(labels: np.ndarray, num_classes: int) -> np.ndarray:
    counts = np.bincount(labels.ravel(), minlength=num_classes)[:num_classes]
    return counts / max(1, labels.size)


class SummarySink:
    """CSV (``.csv``) or JSON Lines (``.jsonl``/``.json``), one row per frame.

    ``origin`` adds where each frame's labels came from (inferred, or carried from an earlier
    inferred frame by flow or held) and their age in frames and ms (runs with ``--interval`` etc.).
    ``coverage`` adds a column ``REGION/CLASS`` per (region, class) pair: the share of the region's pixels
    (``Result.coverage``; JSON Lines: a ``coverage`` mapping).
    """

    def __init__(
        self,
        path: str | Path,
        classes: tuple[str, ...],
        *,
        origin: bool = False,
        coverage: tuple[tuple[str, str], ...] = (),
    ):
        self.path = Path(path)
        self.origin = origin
        self.coverage = coverage
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
            extra = ORIGIN_COLUMNS if origin else []
            columns = [f"{region}/{name}" for region, name in coverage]
            self._guard(self._csv.writerow, ["index", "pts", "time", "latency_ms", *extra, *classes, *columns])

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
                **({"coverage": result.coverage} if self.coverage and result.coverage is not None else {}),
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
                    *self._coverage_cells(result),
                ],
            )
        self.delivered += 1

    def _coverage_cells(self, result: Result) -> list[str]:
        shares = result.coverage or {}
        cells = []
        for region, name in self.coverage:
            share = shares.get(region, {}).get(name)
            cells.append("" if share is None else f"{share:.6f}")
        return cells

    def close(self, complete: bool = True) -> None:
        try:
            self._file.close()
        except OSError as err:
            raise SinkError(f"cannot write {self.path}: {err.strerror or err}") from None


@dataclass(frozen=True)
class ClassSeries:
    """Per-frame class area fractions of one processed video."""

    index: np.ndarray  # (N,) frame indices
    time: np.ndarray  # (N,) seconds; NaN where the stream gave no time
    classes: tuple[str, ...]
    fractions: np.ndarray  # (N, C)

    @property
    def x(self) -> tuple[np.ndarray, str]:
        if len(self.time) and not np.isnan(self.time).any():
            return self.time, "time (s)"
        return self.index.astype(float), "frame"


def read_summary(path: Path) -> ClassSeries:
    """A summary CSV (``index,pts,time,latency_ms,<class>...``) or JSON Lines file."""
    if not path.exists():
        raise SourceError(f"{path}: not found (give a --summary file or a --labels-out folder)")
    try:
        with open(path, newline="") as file:
            if path.suffix.lower() in (".jsonl", ".json"):
                rows = [json.loads(line) for line in file if line.strip()]
                classes = tuple(dict.fromkeys(c for row in rows for c in row["classes"]))
                fractions = [[row["classes"].get(c, 0.0) for c in classes] for row in rows]
            else:
                reader = csv.reader(file)
                head = next(reader, None)
                if not head or head[:4] != ["index", "pts", "time", "latency_ms"]:
                    raise ConfigError(f"{path}: not a streamseg summary (expected columns index,pts,time,latency_ms)")
                first = 4 + len(ORIGIN_COLUMNS) if head[4:7] == ORIGIN_COLUMNS else 4
                # the classes run up to the regions' coverage columns (REGION/CLASS)
                end = next((i for i in range(first, len(head)) if "/" in head[i]), len(head))
                classes = tuple(head[first:end])
                parsed = list(reader)
                rows = [dict(zip(["index", "pts", "time"], r[:3], strict=False)) for r in parsed]
                fractions = [[float(v) for v in r[first:end]] for r in parsed]
    except ConfigError:
        raise
    except (OSError, UnicodeDecodeError) as err:
        raise SourceError(f"{path}: cannot read: {err}") from None
    except (ValueError, KeyError, TypeError) as err:
        raise ConfigError(f"{path}: not a streamseg summary ({err})") from None
    if not rows:
        raise ConfigError(f"{path}: no frames in this summary")
    times = [np.nan if row["time"] in ("", None) else float(row["time"]) for row in rows]
    return ClassSeries(
        np.array([int(row["index"]) for row in rows]),
        np.array(times),
        classes,
        np.array(fractions, dtype=float).reshape(len(rows), len(classes)),
    )
