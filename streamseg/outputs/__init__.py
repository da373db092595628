"""Outputs: where results go, by kind.

- ``files``: video files, segmented recordings, per-frame summaries (``read_summary`` reads them back);
- ``streams``: RTSP, RTMP, UDP and HLS outputs and their encoder set-up;
- ``labels``: label maps as PNG files or one npz;
- ``messages``: ZeroMQ, MQTT, Kafka, MCAP and Foxglove, for programs downstream;
- ``servers``: Prometheus /metrics and /health, the live preview page;
- ``naming`` and ``paths``: each source's output names, and the check that no output overwrites an input.

A video output's class comes from its URI's scheme (``streamseg.uris``). Outputs never import the run's
config or the pipeline: they are given what they need.
"""

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
from streamseg.uris import local_path, output_kind

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


class Sink(Protocol):
    def write(self, result: Result) -> None: ...

    def close(self, complete: bool = True) -> None:
        """Flush and finalize; ``complete`` is False when the run was stopped early."""
        ...


def open_video_sink(uri: str, info: StreamInfo, options: EncoderOptions, live: SourceOptions = SourceOptions()) -> Sink:
    """A video output for ``uri``: ``rtsp://`` push, ``udp://`` MPEG-TS, ``rtmp://``, ``hls:DIR``, else a file
    (a path or ``file:`` URI).

    Stream outputs use ``live.transport`` and reconnect with ``live``'s backoff and give-up limit.
    With ``options.segment_seconds`` a file output is a segmented recording (``uri`` a strftime pattern).
    """
    writes = output_kind(uri)
    if writes in ("stream", "hls"):
        backoff = Backoff(live.reconnect_delay, live.reconnect_max_delay, live.reconnect_give_up)
        return StreamSink(uri, info, options, transport=live.transport, backoff=backoff)
    path = local_path(uri)
    if options.segment_seconds is not None:
        keep = None if options.keep_gigabytes is None else int(options.keep_gigabytes * 1e9)
        return SegmentedVideoSink(path, info, options, segment_seconds=options.segment_seconds, keep_bytes=keep)
    return VideoFileSink(path, info, options)
