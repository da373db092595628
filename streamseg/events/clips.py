"""Event clips: the overlay encoded once, kept as packets in a bounded ring, muxed into a file on an event.

The events sink encodes each composited picture with libx264 (a keyframe every ``KEY_SECONDS``, no
B-frames, no encoder delay) and keeps the packets of the last seconds in ``PacketRing``, which always
starts at a keyframe and never holds more than its byte cap. When an event starts, a ``Clip`` opens and
takes the ring's packets from the last keyframe at or before the pre-roll, then every new packet until
the post-roll after the last of its events has passed. Nothing is encoded twice. Clips are fragmented MP4
while written, like recordings (``streamseg.outputs.files.recording``): a killed run leaves them playable; a
clean close rewrites them seekable.
"""

from __future__ import annotations

import collections
import io
import logging
from dataclasses import dataclass
from fractions import Fraction

import av
import numpy as np
from av.container import OutputContainer
from av.packet import Packet
from av.video.stream import VideoStream

from streamseg.errors import SinkError
from streamseg.frames import picture_size
from streamseg.outputs.encoder import configure, encoder_frame
from streamseg.outputs.files.recording import PeriodicSync, faststart, muxer_options
from streamseg.stage_options import EncoderOptions

log = logging.getLogger(__name__)

KEY_SECONDS = 0.5  # keyframe spacing: a clip starts at most this much before the pre-roll asked for


@dataclass(frozen=True)
class Stored:
    time: float  # seconds on the source's timeline
    packet: Packet
    keyframe: bool
    size: int


class PacketRing:
    """The newest packets, starting at a keyframe: those of the last ``keep_seconds``, at most ``max_bytes``."""

    def __init__(self, keep_seconds: float, max_bytes: int):
        self.keep_seconds = keep_seconds
        self.max_bytes = max_bytes
        self.bytes = 0
        self.capped = False  # the byte cap has cut the ring shorter than keep_seconds
        self._items: collections.deque[Stored] = collections.deque()

    def __len__(self) -> int:
        return len(self._items)

    def add(self, item: Stored) -> None:
        if not self._items and not item.keyframe:
            return  # a ring starts at a keyframe
        self._items.append(item)
        self.bytes += item.size
        self._trim(item.time)

    def _trim(self, now: float) -> None:
        keys = [i for i, s in enumerate(self._items) if s.keyframe]
        while len(keys) > 1:
            second = keys[1]
            too_old = self._items[second].time <= now - self.keep_seconds  # the next keyframe is old enough
            too_big = self.bytes > self.max_bytes
            if not (too_old or too_big):
                break
            self.capped = self.capped or (too_big and not too_old)
            for _ in range(second):  # the oldest keyframe's group goes
                self.bytes -= self._items.popleft().size
            keys = [k - second for k in keys[1:]]

    def since(self, time: float) -> list[Stored]:
        """The packets from the last keyframe at or before ``time`` (else the oldest one) to the newest."""
        start = 0
        for i, item in enumerate(self._items):
            if item.time > time + 1e-6:
                break
            if item.keyframe:
                start = i
        return list(self._items)[start:]


class ClipEncoder:
    """Encodes pictures into H.264 packets with the source's timestamps; the stream is every clip's template."""

    def __init__(self, time_base: Fraction, rate: float, options: EncoderOptions):
        self.time_base = time_base
        self.rate = rate
        gop = max(1, int(rate * KEY_SECONDS))
        self.options = options.model_copy(update={"codec": "libx264", "tune": "zerolatency", "gop": gop})
        self._holder: OutputContainer | None = None  # an MP4 in memory: its stream gets global headers
        self.stream: VideoStream | None = None
        self._last_pts: int | None = None

    def encode(self, picture: np.ndarray, pts: int | None) -> list[Packet]:
        """Packets of one composited picture (``Result.composited``: RGB, or I420 planes)."""
        stream = self.stream if self.stream is not None else self._open(*reversed(picture_size(picture)))
        if pts is None or (self._last_pts is not None and pts <= self._last_pts):  # encoders need rising pts
            pts = 0 if self._last_pts is None else self._last_pts + 1
        self._last_pts = pts
        frame = encoder_frame(picture, stream)
        frame.pts, frame.time_base = pts, self.time_base
        try:
            return list(stream.encode(frame))
        except av.FFmpegError as err:
            raise SinkError(f"event clips: cannot encode: {err}") from None

    def _open(self, width: int, height: int) -> VideoStream:
        self._holder = av.open(io.BytesIO(), "w", format="mp4")
        stream = self._holder.add_stream("libx264", rate=Fraction(self.rate).limit_denominator(1001))
        stream.time_base = stream.codec_context.time_base = self.time_base
        configure(stream, self.options, width, height)
        self._holder.start_encoding()  # opens the encoder; its parameters (SPS/PPS) become the stream's
        self.stream = stream
        return stream

    def close(self) -> None:
        if self._holder is not None:
            try:
                self._holder.close()
            except (av.FFmpegError, OSError):
                pass
            self._holder = None


class Clip:
    """One clip file being written: packets go in as they come; ``finish`` makes it seekable."""

    def __init__(self, path: str, template: VideoStream):
        self.path = path
        self.first: float | None = None
        self.last: float | None = None
        self.packets = 0
        try:
            self._container = av.open(path, "w", options=muxer_options(path, template.time_base))
            self._stream = self._container.add_stream_from_template(template)
        except (av.FFmpegError, OSError, ValueError) as err:
            raise SinkError(f"cannot write {path}: {getattr(err, 'strerror', None) or err}") from None
        self._stream.time_base = template.time_base
        self._sync = PeriodicSync(path)

    def add(self, item: Stored) -> None:
        item.packet.stream = self._stream
        try:
            self._container.mux(item.packet)
        except (av.FFmpegError, OSError) as err:
            raise SinkError(f"cannot write {self.path}: {getattr(err, 'strerror', None) or err}") from None
        self.first = item.time if self.first is None else self.first
        self.last = item.time
        self.packets += 1

    def finish(self, seekable: bool = True) -> None:
        try:
            self._container.close()
        except (av.FFmpegError, OSError) as err:
            raise SinkError(f"cannot write {self.path}: {getattr(err, 'strerror', None) or err}") from None
        finally:
            self._sync.stop()
        if seekable and self.packets:
            faststart(self.path)
