"""Sources: one factory picks the implementation from the input's URI."""

from __future__ import annotations

from streamseg.sources.base import Source, StreamInfo
from streamseg.sources.file import FileSource

__all__ = ["Source", "StreamInfo", "open_source"]


def open_source(uri: str, *, max_frames: int | None = None) -> Source:
    """Open ``uri``: a file path today; live schemes join here."""
    return FileSource(uri, max_frames=max_frames)
