"""Segmented video to a file (mp4, mkv, …): input timestamps kept, audio copied."""

from __future__ import annotations

import logging
from pathlib import Path

import av

from streamseg.errors import SinkError
from streamseg.frames import Result
from streamseg.sinks.encoder import EncoderOptions, configure, pick_codec
from streamseg.sources.base import StreamInfo

log = logging.getLogger(__name__)


class VideoFileSink:
    """Encodes composited pictures with the source's pts and time base.

    The container opens on the first picture, whose size may differ from the
    source's (side-by-side). Audio packets are copied from the source file,
    interleaved as the video advances.
    """

    def __init__(self, path: str | Path, info: StreamInfo, options: EncoderOptions = EncoderOptions()):
        self.path = str(path)
        self.info = info
        self.options = options
        self.frames = 0
        self._container = None
        self._video = None
        self._audio_in = None
        self._audio_packets = None
        self._pending_audio = None
        self._last_pts = None
        parent = Path(self.path).parent
        if not parent.is_dir():
            raise SinkError(f"output folder does not exist: {parent}")

    def _open(self, width: int, height: int) -> None:
        try:
            self._container = av.open(self.path, "w")
        except (av.FFmpegError, ValueError) as err:
            raise SinkError(f"cannot write {self.path}: {err}") from None
        codec = pick_codec(self.options.codec)
        self._video = self._container.add_stream(codec, rate=self.info.rate or 25)
        self._video.time_base = self.info.time_base
        self._video.codec_context.time_base = self.info.time_base
        configure(self._video, self.options, width, height)
        if self.info.audio_from:
            self._open_audio(self.info.audio_from)

    def _open_audio(self, path: str) -> None:
        self._audio_in = av.open(path)
        source = self._audio_in.streams.audio[0]
        try:
            self._audio_out = self._container.add_stream_from_template(source)
        except (av.FFmpegError, ValueError) as err:  # codec the container can't hold
            log.warning("%s: audio not copied: %s", self.path, err)
            self._audio_in.close()
            self._audio_in = None
            return
        self._audio_packets = self._audio_in.demux(source)

    def write(self, result: Result) -> None:
        picture = result.picture
        if self._container is None:
            self._open(picture.shape[1], picture.shape[0])
        frame = av.VideoFrame.from_ndarray(picture, format="rgb24")
        pts = result.pts
        if self._last_pts is not None and pts <= self._last_pts:  # encoders need rising pts
            pts = self._last_pts + 1
        frame.pts, frame.time_base = pts, self.info.time_base
        self._last_pts = pts
        for packet in self._video.encode(frame):
            self._container.mux(packet)
        self.frames += 1
        if self._audio_packets is not None:
            self._copy_audio(until=float(pts * self.info.time_base))

    def _copy_audio(self, until: float | None) -> None:
        """Mux source audio packets up to ``until`` seconds (None: all that is left)."""
        while True:
            packet = self._pending_audio or next(self._audio_packets, None)
            self._pending_audio = None
            if packet is None or packet.dts is None:
                if packet is None:
                    self._audio_packets = None
                    return
                continue
            if until is not None and packet.pts is not None and packet.pts * packet.time_base > until:
                self._pending_audio = packet
                return
            packet.stream = self._audio_out
            self._container.mux(packet)

    def close(self, complete: bool = True) -> None:
        """Flush the encoder and finalize the container; ``complete`` copies the rest of the audio."""
        if self._container is None:
            return
        try:
            for packet in self._video.encode(None):
                self._container.mux(packet)
            if self._audio_packets is not None:
                last = None if complete else float(self._last_pts * self.info.time_base)
                self._copy_audio(until=last)
        finally:
            self._container.close()
            if self._audio_in is not None:
                self._audio_in.close()
            self._container = None
