"""The end-of-batch per-video table, and ``--report FILE.csv|.json``."""

from __future__ import annotations

import csv
import json
from dataclasses import asdict
from pathlib import Path

from streamseg.batch.driver import BatchResult, Outcome
from streamseg.errors import ConfigError, SinkError

COLUMNS = ("key", "status", "frames", "expected_frames", "fps", "wall_s", "attempts", "error", "input")


def format_table(outcomes: list[Outcome], width: int = 40) -> str:
    lines = [f"  {'video':<{width}} {'status':<8}{'frames':>8}{'fps':>8}{'wall s':>9}  error"]
    for o in outcomes:
        name = o.key if len(o.key) <= width else "…" + o.key[-(width - 1) :]
        lines.append(f"  {name:<{width}} {o.status:<8}{o.frames:>8}{o.fps:>8.1f}{o.wall_s:>9.1f}  {o.error or ''}")
    return "\n".join(lines)


def summary_line(result: BatchResult) -> str:
    succeeded, skipped = result.count("done"), result.count("skipped")
    failed, partial = result.count("failed"), result.count("partial")
    left = result.count("left", "aborted")
    text = (
        f"streamseg: batch: {succeeded} succeeded, {skipped} skipped, {failed} failed, {partial} partial"
        f"{f', {left} left' if left else ''} (of {len(result.outcomes)}) in {result.wall_s:.1f} s"
    )
    if result.frames and result.wall_s > 0:
        text += f", {result.frames} frames, {result.frames / result.wall_s:.1f} frames/s"
    return text


def write_report(path: Path, outcomes: list[Outcome]) -> None:
    """One row per video; CSV or JSON by the extension."""
    rows = [{k: asdict(o)[k] for k in COLUMNS} for o in outcomes]
    suffix = path.suffix.lower()
    if suffix not in (".csv", ".json"):
        raise ConfigError(f"--report {path}: expected a .csv or .json file")
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        with open(path, "w", newline="") as file:
            if suffix == ".json":
                json.dump(rows, file, indent=1)
            else:
                writer = csv.DictWriter(file, COLUMNS)
                writer.writeheader()
                writer.writerows(rows)
    except OSError as err:
        raise SinkError(f"cannot write {path}: {err.strerror or err}") from None
