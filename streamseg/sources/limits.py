"""How large a decoded picture may be (``--max-pixels``): checked from the stream header before the first decode,
and on every decoded frame, so a tiny file that declares a huge picture fails alone instead of filling memory.

FFmpeg is given a guard of its own (the codec option ``max_pixels``) at twice the limit: it refuses to allocate
pictures far past it even mid-stream, before one reaches Python; twice, because FFmpeg counts padded rows.
"""

from __future__ import annotations

import av
from av.video.stream import VideoStream

from streamseg.errors import SourceError


class FrameTooLargeError(SourceError):
    """A source's pictures are larger than ``--max-pixels``: no retry or reconnect can cure that."""


def too_large(name: str, width: int, height: int, limit: int) -> FrameTooLargeError:
    return FrameTooLargeError(
        f"{name}: {width}x{height} pictures ({width * height} pixels) are over --max-pixels {limit}; "
        "raise --max-pixels to read this input"
    )


def guard_stream(stream: VideoStream, name: str, limit: int) -> None:
    """Refuse a stream whose header declares pictures over ``limit``; give its decoder FFmpeg's own guard.

    Call before the first decode (the codec context opens then, with these options).
    """
    check_stream(stream, name, limit)
    stream.codec_context.options = {**stream.codec_context.options, "max_pixels": str(2 * limit)}


def check_stream(stream: VideoStream, name: str, limit: int) -> None:
    """Raise ``FrameTooLargeError`` when the stream's current size (0 while unknown) is over ``limit``.

    Also the check after a decode error: FFmpeg's guard refusing a picture leaves its size in the context.
    """
    width, height = stream.codec_context.width, stream.codec_context.height
    if width * height > limit:
        raise too_large(name, width, height, limit)


def check_frame(frame: av.VideoFrame, name: str, limit: int) -> None:
    if frame.width * frame.height > limit:
        raise too_large(name, frame.width, frame.height, limit)
