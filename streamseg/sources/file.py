"""Video files, decoded with PyAV: every frame, in order, with its timestamp."""

from __future__ import annotations

import logging
import time
from collections.abc import Iterator
from fractions import Fraction
from pathlib import Path

import av
import numpy as np

from streamseg.errors import SourceError
from streamseg.frames import Frame, StreamInfo
from streamseg.options import MAX_PIXELS
from streamseg.sources.limits import check_frame, check_stream, guard_stream

log = logging.getLogger(__name__)


def to_rgb(frame: av.VideoFrame) -> np.ndarray:
    """RGB uint8 (H, W, 3) from any pixel format, upright per the display matrix."""
    image = frame.to_ndarray(format="rgb24")
    turns = round((frame.rotation or 0) / 90) % 4  # counterclockwise quarter turns
    return np.ascontiguousarray(np.rot90(image, turns)) if turns else image


class FileSource:
    """Decodes the first video stream of a file; audio is left for sinks to copy.

    The first frame is decoded on open, so a file that is not a video fails
    here, and the upright frame size (after any rotation) is known up front.
    Pictures over ``max_pixels`` fail it (``streamseg.sources.limits``).
    """

    live = False

    def __init__(self, path: str | Path, *, max_frames: int | None = None, max_pixels: int = MAX_PIXELS):
        self.path = str(path)
        self.max_frames = max_frames
        self.max_pixels = max_pixels
        if not Path(self.path).is_file():
            raise SourceError(f"input not found: {self.path}")
        try:
            self._container = av.open(self.path)
        except av.FFmpegError as err:
            raise SourceError(f"{self.path} is not a readable video: {_reason(err)}") from None
        try:
            if not self._container.streams.video:
                raise SourceError(f"{self.path} has no video stream")
            self._stream = self._container.streams.video[0]
            guard_stream(self._stream, self.path, max_pixels)  # before the decoder allocates a picture
            self._stream.thread_type = "AUTO"
            self._decoded = self._container.decode(self._stream)
            self._first = self._next_decoded()
            if self._first is None:
                raise SourceError(f"{self.path}: no decodable video frames")
            self._first_image = to_rgb(self._first)
        except BaseException:
            self._container.close()
            raise
        self.info = self._describe()

    def _next_decoded(self) -> av.VideoFrame | None:
        try:
            frame = next(self._decoded)
        except StopIteration:
            return None
        except av.FFmpegError as err:
            check_stream(self._stream, self.path, self.max_pixels)  # FFmpeg's own guard refused a huge picture
            raise SourceError(f"cannot decode {self.path}: {_reason(err)}") from None
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
        decoded, image = self._first, self._first_image
        while decoded is not None:
            pts = decoded.pts
            if pts is None:  # some streams omit pts: continue the nominal cadence
                pts = 0 if last_pts is None else last_pts + step
            last_pts = pts
            yield Frame(self.info.name, index, image, pts, tb, time.time())
            index += 1
            if self.max_frames is not None and index >= self.max_frames:
                return
            try:
                decoded = next(self._decoded, None)
            except av.FFmpegError as err:  # truncated or corrupt: keep what decoded
                check_stream(self._stream, self.path, self.max_pixels)  # unless FFmpeg's guard refused a picture
                log.warning("%s: stopped after %d frames: %s", self.path, index, _reason(err))
                return
            if decoded is None:
                break
            check_frame(decoded, self.path, self.max_pixels)
            image = to_rgb(decoded)
        expected = self.info.frames
        if expected and index < expected:
            log.warning("%s: ended after %d of %d frames (truncated?)", self.path, index, expected)

    def close(self) -> None:
        self._container.close()
        # the stream owns the codec context, whose threads FFmpeg stops only when it is freed, not on close:
        # drop it now, or a closed source that stays referenced (a lane's record) keeps them
        self._decoded, self._first = iter(()), None
        vars(self).pop("_stream", None)


def _reason(err: av.FFmpegError) -> str:
    return getattr(err, "strerror", None) or str(err)
