"""Video files, decoded with PyAV: every frame, in order, with its timestamp."""

from __future__ import annotations

import logging
import time
from collections.abc import Iterator
from fractions import Fraction
from pathlib import Path
from typing import Any

import av
import numpy as np

from streamseg.cores import codec_threads
from streamseg.errors import SourceError
from streamseg.frames import Frame, StreamInfo, Yuv420Planes
from streamseg.sources.limits import check_frame, check_stream, guard_stream
from streamseg.sources.vectors import export_vectors, frame_vectors
from streamseg.stage_options import MAX_PIXELS

log = logging.getLogger(__name__)

FULL_RANGE = 2  # AVCOL_RANGE_JPEG: 0..255 luma, which a video-range encoder input would misread


def to_rgb(frame: av.VideoFrame) -> np.ndarray:
    """RGB uint8 (H, W, 3) from any pixel format, upright per the display matrix.

    One swscale thread: its default, a slice thread per core, woke two threads a frame for a conversion
    that took 0.09 ms of CPU on one (640x360), and spent 0.14-0.18 ms of the process's CPU doing it.
    """
    image = frame.to_ndarray(format="rgb24", threads=1)
    turns = round((frame.rotation or 0) / 90) % 4  # counterclockwise quarter turns
    return np.ascontiguousarray(np.rot90(image, turns)) if turns else image


def to_planes(frame: av.VideoFrame) -> Yuv420Planes | None:
    """The decoder's own planes, where they are what an H.264 encoder takes as they are: video-range 4:2:0
    (``yuv420p``, not full-range ``yuvj420p``) at an even size, upright. None otherwise.

    Views, not copies (a copy cost 0.1-0.2 ms a frame at 640x360 in a run): each keeps the decoded frame's
    buffer alive while the frame travels.
    """
    if frame.format.name != "yuv420p" or frame.width % 2 or frame.height % 2:
        return None
    if round((frame.rotation or 0) / 90) % 4 or frame.color_range == FULL_RANGE:
        return None
    return Yuv420Planes(*(_plane_view(plane) for plane in frame.planes))


def _plane_view(plane: av.video.plane.VideoPlane) -> np.ndarray:
    rows = np.frombuffer(memoryview(plane), np.uint8).reshape(plane.height, plane.line_size)  # lines may be padded
    view = rows[:, : plane.width]
    view.flags.writeable = False  # the decoder's memory
    return view


class DecodedFile:
    """What the file sources share once a file is open and its first frame decoded: its description and frames.

    A subclass opens ``_container`` and ``_stream``, starts ``_decoded``, decodes ``_first`` (converted:
    ``_first_image``), and says how a decoded frame becomes an image (``_convert``) and which errors
    its decoder raises (``decode_errors``). Pictures over ``max_pixels`` fail it (``streamseg.sources.limits``):
    the subclass checks the stream's header before the first decode, this class every decoded frame.
    """

    live = False
    decode_errors: tuple[type[BaseException], ...] = (av.FFmpegError,)
    decoder = ""  # where it decodes, for messages: " on the GPU"
    vectors = False  # the decoder exports motion vectors, and each Frame carries them
    planes = False  # each Frame carries the decoder's own 4:2:0 planes, where it has them (``to_planes``)
    path: str
    max_frames: int | None
    max_pixels: int
    info: StreamInfo
    _container: av.container.InputContainer
    _stream: av.video.stream.VideoStream
    _decoded: Iterator[av.VideoFrame]
    _first: av.VideoFrame
    _first_image: Any

    def _convert(self, frame: av.VideoFrame) -> Any:
        raise NotImplementedError

    def _next_decoded(self) -> av.VideoFrame | None:
        try:
            frame = next(self._decoded)
        except StopIteration:
            return None
        except self.decode_errors as err:
            check_stream(self._stream, self.path, self.max_pixels)  # FFmpeg's own guard refused a huge picture
            raise SourceError(f"cannot decode {self.path}{self.decoder}: {decode_reason(err)}") from None
        check_frame(frame, self.path, self.max_pixels)
        return frame

    def _describe(self) -> StreamInfo:
        stream = self._stream
        height, width = self._first_image.shape[:2]
        return StreamInfo(
            name=self.path,
            width=width,
            height=height,
            time_base=stream.time_base or Fraction(1, 90000),
            rate=stream.average_rate or stream.guessed_rate,
            frames=stream.frames or None,
            live=False,
            audio_from=self.path if self._container.streams.audio else None,
        )

    def frames(self) -> Iterator[Frame]:
        tb = self.info.time_base
        rate = self.info.rate
        step = max(1, round(1 / (rate * tb))) if rate else 1
        index, last_pts = 0, None
        decoded: av.VideoFrame | None = self._first
        image = self._first_image
        while decoded is not None:
            pts = decoded.pts
            if pts is None:  # some streams omit pts: continue the nominal cadence
                pts = 0 if last_pts is None else last_pts + step
            last_pts = pts
            vectors = frame_vectors(decoded) if self.vectors else None
            planes = to_planes(decoded) if self.planes else None
            yield Frame(self.info.name, index, image, pts, tb, time.time(), vectors, planes)
            index += 1
            if self.max_frames is not None and index >= self.max_frames:
                return
            try:
                decoded = next(self._decoded, None)
            except self.decode_errors as err:  # truncated or corrupt: keep what decoded
                check_stream(self._stream, self.path, self.max_pixels)  # unless FFmpeg's guard refused a picture
                log.warning("%s: stopped after %d frames: %s", self.path, index, decode_reason(err))
                return
            if decoded is None:
                break
            check_frame(decoded, self.path, self.max_pixels)
            image = self._convert(decoded)
        expected = self.info.frames
        if expected and index < expected:
            log.warning("%s: ended after %d of %d frames (truncated?)", self.path, index, expected)

    def close(self) -> None:
        self._container.close()
        # the stream owns the codec context, whose threads FFmpeg stops only when it is freed, not on close:
        # drop it now, or a closed source that stays referenced (a lane's record) keeps them
        self._decoded = iter(())
        vars(self).pop("_first", None)
        vars(self).pop("_stream", None)


class FileSource(DecodedFile):
    """Decodes the first video stream of a file; audio is left for sinks to copy.

    The first frame is decoded on open, so a file that is not a video fails
    here, and the upright frame size (after any rotation) is known up front.
    With ``vectors`` the decoder exports its motion vectors and each frame carries them.
    """

    def __init__(
        self,
        path: str | Path,
        *,
        max_frames: int | None = None,
        max_pixels: int = MAX_PIXELS,
        decode_threads: int | None = None,
        vectors: bool = False,
        planes: bool = False,
    ):
        self.path = str(path)
        self.vectors = vectors
        self.planes = planes
        self.max_frames = max_frames
        self.max_pixels = max_pixels
        if not Path(self.path).is_file():
            raise SourceError(f"input not found: {self.path}")
        try:
            self._container = av.open(self.path)
        except av.FFmpegError as err:
            raise SourceError(f"{self.path} is not a readable video: {decode_reason(err)}") from None
        try:
            if not self._container.streams.video:
                raise SourceError(f"{self.path} has no video stream")
            self._stream = self._container.streams.video[0]
            guard_stream(self._stream, self.path, max_pixels)  # before the decoder allocates a picture
            self._stream.thread_type = "AUTO"
            self._stream.thread_count = codec_threads(decode_threads)
            if vectors:
                export_vectors(self._stream)
            self._decoded = self._container.decode(self._stream)
            first = self._next_decoded()
            if first is None:
                raise SourceError(f"{self.path}: no decodable video frames")
            self._first = first
            self._first_image = to_rgb(first)
        except BaseException:
            self._container.close()
            raise
        self.info = self._describe()

    def _convert(self, frame: av.VideoFrame) -> np.ndarray:
        return to_rgb(frame)


def decode_reason(err: BaseException) -> str:
    """FFmpeg's own words for an error (its strerror), else the exception's text."""
    return getattr(err, "strerror", None) or str(err)
