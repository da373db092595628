"""Sources: one factory picks the implementation from the input's URI (the scheme table in ``streamseg.uris``)."""

from __future__ import annotations

import functools
import threading
from pathlib import Path

from streamseg.errors import SourceError
from streamseg.frames import StreamInfo
from streamseg.logs import redact
from streamseg.sources.base import Source
from streamseg.sources.file import FileSource
from streamseg.sources.live import LiveSource
from streamseg.stage_options import SourceOptions
from streamseg.uris import local_path, scheme_of

__all__ = ["Source", "SourceOptions", "StreamInfo", "is_live", "open_source"]

# FFmpeg options per scheme of a live input
_CONTAINER_OPTIONS: dict[str, dict[str, str]] = {
    # the RTMP client announces audio and video, so FFmpeg's FLV probing waits its whole 5 s default for an
    # audio stream that may never come; 1 s opens in ~1.3 s instead of ~5.6 s, with a smaller backlog to drop
    "rtmp": {"analyzeduration": "1000000"},
    "rtmps": {"analyzeduration": "1000000"},
    # a big socket FIFO, overruns skipped instead of fatal: a slow reader loses packets, not the stream
    "udp": {"fifo_size": "1000000", "overrun_nonfatal": "1"},
}


def open_source(
    uri: str,
    *,
    max_frames: int | None = None,
    options: SourceOptions = SourceOptions(),
    interrupted: threading.Event | None = None,
    vectors: bool = False,
    planes: bool = False,
) -> Source:
    """Open ``uri`` by its scheme.

    ``rtsp://`` / ``rtsps://`` (``options.transport``), ``udp://`` MPEG-TS, ``http(s)://``
    (HLS playlists and other HTTP streams), ``rtmp://``, ``srt://``, ``/dev/videoN`` (V4L2),
    else a file (a path or ``file:`` URI): decoded as fast as it goes, or paced as a camera with
    ``options.realtime``. ``interrupted``, once set, stops a live source, even while it still waits
    for its first connection. ``vectors``: the decoder exports its motion vectors and each ``Frame``
    carries them (``Frame.vectors``); nothing is asked of the decoder otherwise. ``planes``: each frame
    carries the decoder's own 4:2:0 planes as well (``Frame.planes``), where it decoded them.
    """
    scheme = scheme_of(uri)
    live = functools.partial(
        LiveSource, options=options, max_frames=max_frames, interrupted=interrupted, vectors=vectors, planes=planes
    )
    if scheme.reads == "live":
        extra = _rtsp_options(options) if scheme.name in ("rtsp", "rtsps") else _CONTAINER_OPTIONS.get(scheme.name)
        return live(uri, container_options=extra)
    if scheme.reads == "device":
        return live(uri, format="v4l2")
    if scheme.reads != "file":
        raise SourceError(f"input {redact(uri)}: no source reads {scheme.name}{scheme.prefix} URIs")
    path = local_path(uri)
    if options.realtime and Path(path).is_file():
        return live(path, paced=True)
    return FileSource(
        path,
        max_frames=max_frames,
        max_pixels=options.max_pixels,
        decode_threads=options.decode_threads,
        vectors=vectors,
        planes=planes,
    )


def is_live(uri: str, options: SourceOptions = SourceOptions()) -> bool:
    """Whether ``open_source`` reads ``uri`` as a live input (drop-oldest) rather than a file (lossless)."""
    scheme = scheme_of(uri)
    if scheme.reads in ("live", "device"):
        return True
    return options.realtime and scheme.reads == "file" and Path(local_path(uri)).is_file()


def _rtsp_options(options: SourceOptions) -> dict[str, str]:
    return {
        "rtsp_transport": options.transport,
        "timeout": str(int(options.read_timeout * 1_000_000)),  # socket I/O timeout, in microseconds
        # keep probing buffers (fflags=nobuffer can drop the first IDR) but hold no frames for reordering
        "max_delay": "100000",
        "reorder_queue_size": "0",
    }
