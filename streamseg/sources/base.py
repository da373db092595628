"""What every source offers the pipeline: stream facts and an iterator of frames."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from fractions import Fraction
from typing import Protocol

from streamseg.frames import Frame


@dataclass(frozen=True, slots=True)
class StreamInfo:
    name: str  # for logs: credentials already removed
    width: int
    height: int
    time_base: Fraction
    rate: Fraction | None  # nominal frame rate, when known
    frames: int | None  # frame count, when the container says
    live: bool
    audio_from: str | None = None  # a file whose audio sinks may copy


class Source(Protocol):
    info: StreamInfo

    def frames(self) -> Iterator[Frame]: ...

    def close(self) -> None: ...
