"""``OUTDIR/streamseg-batch.jsonl``: one JSON line per finished video, the last line for a video wins.

Only the driver writes it, a whole line at a time, flushed and fsynced, so a crash loses at most the line
being written; a torn last line is skipped on reading. A re-run skips a video whose last line says ``done``
for the same input (size and mtime, or sha256 with ``--verify``), the same model file (sha256) and the same
output-changing options, and whose outputs are all still there, where this run would write them. The file
is data from disk, not trusted: a line whose fields have the wrong shape, or whose outputs lie outside OUTDIR,
means "not done" (the video is redone), never a crash or a false "done".
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
from pathlib import Path
from typing import Any

from streamseg.config import RunConfig
from streamseg.errors import SinkError

log = logging.getLogger(__name__)

MANIFEST_NAME = "streamseg-batch.jsonl"
# RunConfig fields that change what a video's outputs contain (threads, queue sizes and servers don't)
OUTPUT_FIELDS = (
    "backend",
    "precision",
    "winograd",
    "input_size",
    "overlay",
    "alpha",
    "classes",
    "labels_format",
    "max_frames",
)


def file_sha256(path: str | Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as file:
        while chunk := file.read(1 << 20):
            digest.update(chunk)
    return digest.hexdigest()


def input_identity(path: Path, verify: bool) -> dict[str, Any]:
    """What says an input is unchanged: size and mtime, plus its sha256 with ``verify``."""
    stat = path.stat()
    identity: dict[str, Any] = {"size": stat.st_size, "mtime_ns": stat.st_mtime_ns}
    if verify:
        identity["sha256"] = file_sha256(path)
    return identity


def _present_inside(outputs: Any, outdir: Path) -> bool:
    """A line's ``outputs``: a mapping of relative paths, every one inside ``outdir`` and there."""
    if not isinstance(outputs, dict) or not all(isinstance(p, str) and p for p in outputs.values()):
        return False
    root = outdir.resolve()
    for path in outputs.values():
        target = (outdir / path).resolve()
        if not target.is_relative_to(root) or target == root or not target.exists():
            return False
    return True


def same_input(old: dict[str, Any], new: dict[str, Any]) -> bool:
    """Same size, and the same sha256 when ``new`` has one (else the same mtime)."""
    if old.get("size") != new["size"]:
        return False
    if "sha256" in new:
        return old.get("sha256") == new["sha256"]
    return old.get("mtime_ns") == new["mtime_ns"]


def output_options(config: RunConfig, *, labels: bool, summary: bool) -> dict[str, Any]:
    """The options a video's outputs depend on, as JSON values (compared as a whole on re-runs)."""
    options = config.model_dump(include=set(OUTPUT_FIELDS), mode="json")
    options["encoder"] = config.encoder.model_dump(mode="json")
    options["labels"], options["summary"] = labels, summary
    if config.spec is not None:  # an explicit --spec: its classes, palette and normalization change outputs
        text = json.dumps(config.spec.model_dump(mode="json"), sort_keys=True)
        options["spec_sha256"] = hashlib.sha256(text.encode()).hexdigest()
    return options


class Manifest:
    """The batch's record of finished videos; ``latest[key]`` is each video's last line."""

    def __init__(self, outdir: Path):
        self.path = outdir / MANIFEST_NAME
        self.latest: dict[str, dict[str, Any]] = {}
        if self.path.exists():
            self._read()

    def _read(self) -> None:
        with open(self.path, encoding="utf-8", errors="replace") as file:
            for number, line in enumerate(file, 1):
                try:
                    record = json.loads(line)
                    self.latest[record["key"]] = record
                except (ValueError, KeyError, TypeError):
                    if line.strip():
                        log.warning("%s:%d: unreadable line skipped (a run stopped mid-write?)", self.path, number)

    def is_done(
        self,
        key: str,
        identity: dict[str, Any],
        model_sha256: str,
        options: dict[str, Any],
        outdir: Path,
        outputs: dict[str, str] | None = None,
    ) -> bool:
        """Whether ``key``'s last line says done for this input, model and options, with its outputs present
        inside ``outdir`` (and, when given, exactly the ``outputs`` this run would write)."""
        last = self.latest.get(key)
        if not isinstance(last, dict) or last.get("status") != "done":
            return False
        recorded = last.get("outputs")
        if outputs is not None and recorded != outputs:
            return False
        return (
            same_input(last, identity)
            and last.get("model_sha256") == model_sha256
            and last.get("options") == options
            and _present_inside(recorded, outdir)
        )

    def model_sha256(self, model: dict[str, Any]) -> str | None:
        """The hash recorded for this model file at this size and mtime, if any line has one."""
        keys = ("model_path", "model_size", "model_mtime_ns")
        for record in self.latest.values():
            if record.get("model_sha256") and all(record.get(k) == model[k] for k in keys):
                return record["model_sha256"]
        return None

    def append(self, record: dict[str, Any]) -> None:
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            with open(self.path, "a", encoding="utf-8") as file:  # opened per line: a crash leaves nothing open
                file.write(json.dumps(record, sort_keys=True) + "\n")
                file.flush()
                os.fsync(file.fileno())
        except OSError as err:
            raise SinkError(f"cannot write {self.path}: {err.strerror or err}") from None
        self.latest[record["key"]] = record
