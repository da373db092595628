"""Topic names and message times shared by the downstream sinks."""

from __future__ import annotations

import re
import time
from pathlib import PurePosixPath
from typing import Any

from streamseg.frames import Result
from streamseg.logs import redact

_NOT_NAME = re.compile(r"[^A-Za-z0-9_]+")


def topic_name(source: str) -> str:
    """A ROS-valid topic token for a source: ``/data/car-detection.mp4`` -> ``car_detection``.

    The last path part of the (credential-free) URI, without its extension; letters, digits and
    underscores only, never starting with a digit (ROS 2 name rules).
    """
    text = redact(source).split("?", 1)[0].rstrip("/")
    text = text.split("://", 1)[-1].replace("***@", "")
    last = PurePosixPath(text).name or text
    stem = last.rsplit(".", 1)[0] if "." in last[1:] else last
    name = _NOT_NAME.sub("_", stem).strip("_").lower() or "source"
    return f"s_{name}" if name[0].isdigit() else name


class SourceTopics:
    """One unique topic token per source, handed out in the order sources appear."""

    def __init__(self) -> None:
        self._names: dict[str, str] = {}

    def __call__(self, source: str) -> str:
        name = self._names.get(source)
        if name is None:
            base = name = topic_name(source)
            taken = set(self._names.values())
            n = 2
            while name in taken:
                name, n = f"{base}_{n}", n + 1
            self._names[source] = name
        return name

    def __contains__(self, source: str) -> bool:
        return source in self._names


def stamp_ns(result: Result, live: bool) -> int:
    """When the frame was, in nanoseconds: media time for files, capture time (Unix) for live sources.

    A file frame without a timestamp falls back to its capture time too; every channel of one frame
    carries the same stamp.
    """
    if not live and result.pts is not None and result.time_base is not None:
        return max(0, round(result.pts * result.time_base * 1_000_000_000))
    return round(result.capture_time * 1_000_000_000)


def event_stamp_ns(message: dict[str, Any], live: bool) -> int:
    """When an event started or ended, in nanoseconds, on the clock ``stamp_ns`` uses for frames."""
    seconds = message["start"] if message["kind"] == "start" else message["end"]
    return round(1_000_000_000 * (time.time() if live else max(0.0, seconds)))


def coverage_document(result: Result) -> dict[str, Any]:
    """A frame's region coverage as the ``coverage`` channel carries it (JSON)."""
    return {"source": redact(result.source), "index": result.index, "time": result.time, "coverage": result.coverage}
