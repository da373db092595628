"""What every source offers the pipeline: stream facts and an iterator of frames."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Protocol

from streamseg.frames import Frame, StreamInfo


class Source(Protocol):
    info: StreamInfo

    def frames(self) -> Iterator[Frame]: ...

    def close(self) -> None: ...
