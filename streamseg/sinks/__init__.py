"""Sinks: where results go. One factory picks the implementation from the URI."""

from __future__ import annotations

from typing import Protocol

from streamseg.frames import Result
from streamseg.sinks.encoder import EncoderOptions
from streamseg.sinks.labels import NpzLabelSink, PngLabelSink
from streamseg.sinks.summary import SummarySink
from streamseg.sinks.video_file import VideoFileSink
from streamseg.sources.base import StreamInfo

__all__ = ["EncoderOptions", "NpzLabelSink", "PngLabelSink", "Sink", "SummarySink", "open_video_sink"]


class Sink(Protocol):
    def write(self, result: Result) -> None: ...

    def close(self, complete: bool = True) -> None:
        """Flush and finalize; ``complete`` is False when the run was stopped early."""
        ...


def open_video_sink(uri: str, info: StreamInfo, options: EncoderOptions) -> Sink:
    """A video output for ``uri``: a file path today; stream schemes join here."""
    return VideoFileSink(uri, info, options)
