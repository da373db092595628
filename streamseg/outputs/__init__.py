"""Sinks: where results go. One factory picks the implementation from the URI."""

from __future__ import annotations

from typing import Protocol

from streamseg.backoff import Backoff
from streamseg.frames import Result, StreamInfo
from streamseg.outputs.delivery import check_delivered, delivery_counts, output_links, undelivered
from streamseg.outputs.files.segmented import SegmentedVideoSink
from streamseg.outputs.files.summary import SummarySink
from streamseg.outputs.files.video_file import VideoFileSink
from streamseg.outputs.labels import NpzLabelSink, PngLabelSink
from streamseg.outputs.paths import check_output_paths, check_run_outputs
from streamseg.outputs.streams.stream import StreamSink
from streamseg.stage_options import EncoderOptions, SourceOptions

__all__ = [
    "EncoderOptions",
    "NpzLabelSink",
    "PngLabelSink",
    "SegmentedVideoSink",
    "Sink",
    "StreamSink",
    "SummarySink",
    "check_delivered",
    "check_output_paths",
    "check_run_outputs",
    "delivery_counts",
    "open_video_sink",
    "output_links",
    "undelivered",
]

STREAM_SCHEMES = ("rtsp://", "rtsps://", "udp://", "rtmp://", "rtmps://", "hls:")


class Sink(Protocol):
    def write(self, result: Result) -> None: ...

    def close(self, complete: bool = True) -> None:
        """Flush and finalize; ``complete`` is False when the run was stopped early."""
        ...


def open_video_sink(uri: str, info: StreamInfo, options: EncoderOptions, live: SourceOptions = SourceOptions()) -> Sink:
    """A video output for ``uri``: ``rtsp://`` push, ``udp://`` MPEG-TS, ``rtmp://``, ``hls:DIR``, else a file.

    Stream outputs use ``live.transport`` and reconnect with ``live``'s backoff and give-up limit.
    With ``options.segment_seconds`` a file output is a segmented recording (``uri`` a strftime pattern).
    """
    if uri.lower().startswith(STREAM_SCHEMES):
        backoff = Backoff(live.reconnect_delay, live.reconnect_max_delay, live.reconnect_give_up)
        return StreamSink(uri, info, options, transport=live.transport, backoff=backoff)
    if options.segment_seconds is not None:
        keep = None if options.keep_gigabytes is None else int(options.keep_gigabytes * 1e9)
        return SegmentedVideoSink(uri, info, options, segment_seconds=options.segment_seconds, keep_bytes=keep)
    return VideoFileSink(uri, info, options)
