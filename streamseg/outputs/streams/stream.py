"""Segmented video published live: RTSP push, UDP MPEG-TS, RTMP, HLS folder.

Timestamps come from each frame's capture time (1/90000), so they stay
monotonic through source reconnects and dropped frames. A sink whose server
goes away logs one line, drops frames while it waits, and reconnects with
backoff; it never stops the pipeline.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass, field
from fractions import Fraction
from pathlib import Path

import av
from av.container import OutputContainer
from av.video.stream import VideoStream

from streamseg.backoff import Backoff
from streamseg.errors import SinkError
from streamseg.frames import Result, StreamInfo
from streamseg.logs import redact
from streamseg.outputs.encoder import configure, encoder_frame, pick_codec
from streamseg.outputs.files.checked_files import open_checked
from streamseg.outputs.streams.nodelay import disable_nagle, socket_fds
from streamseg.stage_options import EncoderOptions
from streamseg.uris import scheme_of

log = logging.getLogger(__name__)

TIME_BASE = Fraction(1, 90000)
HLS_PLAYLIST = "index.m3u8"


@dataclass(frozen=True)
class Target:
    """Where and how to mux: the URL or path FFmpeg opens, its format and muxer options."""

    url: str
    format: str
    options: dict[str, str] = field(default_factory=dict)


def target_for(uri: str, transport: str = "tcp") -> Target:
    """The muxer set-up for a stream output URI (``rtsp://``, ``udp://``, ``rtmp://``, ``hls:DIR``)."""
    scheme = scheme_of(uri).name
    if scheme in ("rtsp", "rtsps"):
        return Target(uri, "rtsp", {"rtsp_transport": transport})
    if scheme == "udp":
        url = uri if "pkt_size=" in uri else uri + ("&" if "?" in uri else "?") + "pkt_size=1316"
        return Target(url, "mpegts", {"flush_packets": "1"})
    if scheme in ("rtmp", "rtmps"):
        return Target(uri, "flv", {"flvflags": "no_duration_filesize"})
    if scheme == "hls":
        folder = Path(uri[len("hls:") :])
        if not str(folder):
            raise SinkError("hls: needs a folder, e.g. hls:out/stream")
        return Target(
            str(folder / HLS_PLAYLIST),
            "hls",
            {
                "hls_time": "1",  # seconds per segment (cut at keyframes: the GOP is 1 s by default)
                "hls_list_size": "6",
                "hls_flags": "delete_segments+independent_segments+temp_file",
                "hls_segment_filename": str(folder / "segment_%05d.ts"),
            },
        )
    raise SinkError(f"not a stream output: {redact(uri)}")


class StreamSink:
    """Encodes composited pictures to a live target, reconnecting when the target fails."""

    def __init__(
        self,
        uri: str,
        info: StreamInfo,
        options: EncoderOptions = EncoderOptions(),
        *,
        transport: str = "tcp",
        backoff: Backoff | None = None,
        open_timeout: float = 5.0,
    ):
        self.name = redact(uri)
        self.target = target_for(uri, transport)
        self.info = info
        if options.tune is None:
            options = options.model_copy(update={"tune": "zerolatency"})
        if options.gop is None:  # a keyframe a second: readers join and HLS segments cut quickly
            options = options.model_copy(update={"gop": max(1, round(info.rate or 25))})
        self.options = options
        self.frames = 0
        self.dropped = 0  # frames that arrived while the target was down
        self.reconnects = 0
        self._backoff = backoff or Backoff()
        self._timeout = open_timeout
        self._container: OutputContainer | None = None
        self._video: VideoStream | None = None
        self._retry_at = 0.0
        self._failed = False  # lost at least once: the next open is a reconnect
        self._start: float | None = None
        self._last_pts = -1
        if self.target.format == "hls":
            try:
                Path(self.target.url).parent.mkdir(parents=True, exist_ok=True)
            except OSError as err:
                raise SinkError(f"cannot create {Path(self.target.url).parent}: {err.strerror or err}") from None

    @property
    def delivered(self) -> int:
        """Frames sent to the target (not those dropped while it was down)."""
        return self.frames

    def _open(self, width: int, height: int) -> tuple[OutputContainer, VideoStream]:
        target = self.target
        sockets_before = socket_fds()
        # HLS writes files of its own, whose write errors FFmpeg does not report: open them here, checked
        io_open = open_checked if target.format == "hls" else None
        container = av.open(
            target.url, "w", format=target.format, options=target.options, timeout=self._timeout, io_open=io_open
        )
        try:
            codec = pick_codec(self.options.codec)
            video = container.add_stream(codec, rate=self.info.rate or 25)
            if not isinstance(video, VideoStream):
                raise SinkError(f"{self.name}: {codec} is not a video codec")
            video.time_base = TIME_BASE
            video.codec_context.time_base = TIME_BASE
            configure(video, self.options, width, height)
            if video.codec_context.name == "libx264":
                # one slice per frame: zerolatency's sliced threads split frames into slices that some
                # relays and readers then hand out as separate packets (decoded as half-grey frames)
                video.options = {**video.options, "x264-params": "sliced-threads=0:threads=1"}
            container.start_encoding()  # connects and sends the header now, so a refusal shows here
            disable_nagle(socket_fds() - sockets_before)  # a frame is many small writes: send each at once
        except BaseException:
            _close_quietly(container)
            raise
        self._container, self._video = container, video
        return container, video

    def write(self, result: Result) -> None:
        if self._container is None or self._video is None:
            height, width = result.size
            opened = self._connect(width, height)
            if opened is None:
                self.dropped += 1
                return
            container, video = opened
        else:
            container, video = self._container, self._video
        if self._start is None:
            self._start = result.capture_time
        pts = max(round((result.capture_time - self._start) * 90000), self._last_pts + 1)
        self._last_pts = pts
        frame = encoder_frame(result.composited, video)
        frame.pts, frame.time_base = pts, TIME_BASE
        try:
            for packet in video.encode(frame):
                container.mux(packet)
        except SinkError:  # a local file (HLS) that cannot be written: no reconnect helps
            raise
        except (av.FFmpegError, OSError) as err:
            self._lose(err)
            self.dropped += 1
            return
        self.frames += 1

    def _connect(self, width: int, height: int) -> tuple[OutputContainer, VideoStream] | None:
        """Open the target unless a retry is not due yet; one log line per failure. None: not open."""
        if time.monotonic() < self._retry_at:
            return None
        try:
            opened = self._open(width, height)
        except SinkError:
            raise
        except (av.FFmpegError, OSError) as err:
            self._lose(err)
            return None
        if self._failed:
            self.reconnects += 1
            log.warning("%s: output reconnected (%d so far)", self.name, self.reconnects)
        self._backoff.reset()
        return opened

    def _lose(self, err: BaseException) -> None:
        _close_quietly(self._container)
        self._container = self._video = None
        self._failed = True
        delay = self._backoff.next()
        if delay is None:
            raise SinkError(f"{self.name}: gave up after {self._backoff.failures} attempts: {_reason(err)}")
        self._retry_at = time.monotonic() + delay
        log.warning("%s: output failed (%s); retrying in %.1f s", self.name, _reason(err), delay)

    def close(self, complete: bool = True) -> None:
        """Flush the encoder and end the stream (HLS: the playlist gets its end tag)."""
        if self._container is None:
            return
        try:
            for packet in self._video.encode(None) if self._video is not None else ():
                self._container.mux(packet)
        except SinkError:
            raise
        except (av.FFmpegError, OSError) as err:
            log.warning("%s: output not flushed: %s", self.name, _reason(err))
        finally:
            container, self._container, self._video = self._container, None, None
            _close_quietly(container, keep=SinkError)  # the last HLS segment is written here: its failure counts


def _close_quietly(container: OutputContainer | None, keep: type[BaseException] | tuple = ()) -> None:
    """Close, ignoring a connection's errors; those of type ``keep`` still raise."""
    if container is not None:
        try:
            container.close()
        except keep:
            raise
        except (av.FFmpegError, OSError):
            pass


def _reason(err: BaseException) -> str:
    return redact(getattr(err, "strerror", None) or str(err) or type(err).__name__)
