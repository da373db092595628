"""Video to a file (mp4, mkv, …): input timestamps kept, audio copied, playable after a crash."""

from __future__ import annotations

import logging
from collections.abc import Iterator
from pathlib import Path

import av
from av.audio.stream import AudioStream
from av.container import InputContainer, OutputContainer
from av.packet import Packet
from av.video.stream import VideoStream

from streamseg.errors import SinkError
from streamseg.frames import Result, StreamInfo
from streamseg.outputs.encoder import configure, encoder_frame, pick_codec
from streamseg.outputs.files.recording import PeriodicSync, faststart, is_fragmented_mp4, muxer_options
from streamseg.stage_options import EncoderOptions

log = logging.getLogger(__name__)


class VideoFileSink:
    """Encodes composited pictures with the source's pts and time base.

    The container opens on the first picture, whose size may differ from the
    source's (side-by-side). Audio packets are copied from the source file,
    interleaved as the video advances. The file is muxed so that a kill leaves
    it playable up to its last fragment (``streamseg.outputs.files.recording``); a clean
    close makes it a normal seekable file.

    ``audio_since`` (seconds) skips source audio up to it: a later segment of a longer
    recording, whose previous segment has that audio.
    """

    def __init__(
        self,
        path: str | Path,
        info: StreamInfo,
        options: EncoderOptions = EncoderOptions(),
        *,
        audio_since: float | None = None,
    ):
        self.path = self.name = str(path)
        self.info = info
        self.options = options
        self.frames = 0
        self._audio_since = audio_since
        self._container: OutputContainer | None = None
        self._video: VideoStream | None = None
        self._audio_in: InputContainer | None = None
        self._audio_out: AudioStream | None = None
        self._audio_packets: Iterator[Packet[AudioStream]] | None = None
        self._pending_audio: Packet[AudioStream] | None = None
        self._last_pts: int | None = None
        self._sync: PeriodicSync | None = None
        parent = Path(self.path).parent
        if parent.exists() and not parent.is_dir():
            raise SinkError(f"cannot write {self.path}: {parent} is not a folder")
        if not parent.is_dir():
            raise SinkError(f"output folder does not exist: {parent}")

    @property
    def delivered(self) -> int:
        """Frames encoded into the file."""
        return self.frames

    def _open(self, width: int, height: int) -> tuple[OutputContainer, VideoStream]:
        audio = self._audio_source()
        options = muxer_options(self.path, self.info.time_base, *([audio[1].time_base] if audio else []))
        try:
            container = self._container = av.open(self.path, "w", options=options)
        except (av.FFmpegError, ValueError, OSError) as err:
            if audio is not None:
                audio[0].close()
            raise SinkError(f"cannot write {self.path}: {_reason(err)}") from None
        codec = pick_codec(self.options.codec)
        video = container.add_stream(codec, rate=self.info.rate or 25)
        if not isinstance(video, VideoStream):
            raise SinkError(f"cannot write {self.path}: {codec} is not a video codec")
        self._video = video
        video.time_base = self.info.time_base
        video.codec_context.time_base = self.info.time_base
        configure(video, self.options, width, height)
        if audio is not None:
            self._open_audio(container, *audio)
        self._sync = PeriodicSync(self.path)
        return container, video

    def _audio_source(self) -> tuple[InputContainer, AudioStream] | None:
        """The source file's audio stream, opened for copying, or None."""
        if not self.info.audio_from:
            return None
        self._audio_in = av.open(self.info.audio_from)
        return self._audio_in, self._audio_in.streams.audio[0]

    def _open_audio(self, container: OutputContainer, audio_in: InputContainer, source: AudioStream) -> None:
        try:
            self._audio_out = container.add_stream_from_template(source)
        except (av.FFmpegError, ValueError) as err:  # codec the container can't hold
            log.warning("%s: audio not copied: %s", self.path, err)
            audio_in.close()
            self._audio_in = None
            return
        if self._audio_since and source.time_base:  # a later segment: start near its first frame, not the file's
            audio_in.seek(int(self._audio_since / source.time_base), stream=source, backward=True)
        self._audio_packets = audio_in.demux(source)

    def write(self, result: Result) -> None:
        try:
            if self._container is None or self._video is None:
                height, width = result.size
                container, video = self._open(width, height)
            else:
                container, video = self._container, self._video
            frame = encoder_frame(result.composited, video)
            pts = result.pts
            if pts is None or (self._last_pts is not None and pts <= self._last_pts):  # encoders need rising pts
                pts = 0 if self._last_pts is None else self._last_pts + 1
            frame.pts, frame.time_base = pts, self.info.time_base
            self._last_pts = pts
            for packet in video.encode(frame):
                container.mux(packet)
            self.frames += 1
            if self._audio_packets is not None:
                self._copy_audio(until=float(pts * self.info.time_base))
        except (av.FFmpegError, OSError) as err:
            raise SinkError(f"cannot write {self.path}: {_reason(err)}") from None

    def _copy_audio(self, until: float | None) -> None:
        """Mux source audio packets up to ``until`` seconds (None: all that is left)."""
        if self._container is None or self._audio_out is None or self._audio_packets is None:
            return
        while True:
            packet = self._pending_audio or next(self._audio_packets, None)
            self._pending_audio = None
            if packet is None or packet.dts is None:
                if packet is None:
                    self._audio_packets = None
                    return
                continue
            seconds = None if packet.pts is None else packet.pts * packet.time_base
            if until is not None and seconds is not None and seconds > until:
                self._pending_audio = packet
                return
            if self._audio_since is not None and seconds is not None and seconds <= self._audio_since:
                continue  # the previous segment has it
            packet.stream = self._audio_out
            self._container.mux(packet)

    def close(self, complete: bool = True) -> None:
        """Flush the encoder and finalize the container; ``complete`` copies the rest of the audio."""
        last = None if complete or self._last_pts is None else float(self._last_pts * self.info.time_base)
        self.finish(audio_until=last)

    def finish(self, audio_until: float | None = None, *, seekable: bool = True) -> None:
        """Flush and finalize; source audio is copied up to ``audio_until`` seconds (None: all of it).

        ``seekable`` rewrites a fragmented MP4 as a normal one now (callers may do it later).
        """
        if self._container is None:
            return
        container = self._container
        try:
            for packet in self._video.encode(None) if self._video is not None else ():
                container.mux(packet)
            if self._audio_packets is not None:
                self._copy_audio(until=audio_until)
            container.close()
        except (av.FFmpegError, OSError) as err:
            raise SinkError(f"cannot write {self.path}: {_reason(err)}") from None
        finally:
            self._container = None
            _close_quietly(container)
            if self._sync is not None:
                self._sync.stop()
            if self._audio_in is not None:
                self._audio_in.close()
            # the streams own the codec contexts, whose threads stop only when they are freed (not on close)
            self._video = self._audio_out = self._audio_in = self._audio_packets = self._pending_audio = None
        if seekable and self.frames and is_fragmented_mp4(self.path):
            faststart(self.path)


def _close_quietly(container: OutputContainer) -> None:
    try:
        container.close()
    except (av.FFmpegError, OSError):
        pass


def _reason(err: BaseException) -> str:
    return getattr(err, "strerror", None) or str(err) or type(err).__name__
