"""H.264 encoder choice and settings, shared by every video sink."""

from __future__ import annotations

import functools
import logging
from fractions import Fraction

import av
import cv2
import numpy as np
from av.video.codeccontext import VideoCodecContext

from streamseg.cores import codec_threads
from streamseg.stage_options import EncoderOptions

log = logging.getLogger(__name__)


@functools.cache
def encoder_works(codec: str) -> bool:
    """Whether ``codec`` opens here: h264_nvenc is compiled in but needs a GPU with NVENC."""
    try:
        ctx = av.CodecContext.create(codec, "w")
        if not isinstance(ctx, VideoCodecContext):
            return False
        ctx.width, ctx.height, ctx.pix_fmt = 64, 64, "yuv420p"
        ctx.time_base = Fraction(1, 25)
        ctx.open()
        frame = av.VideoFrame.from_ndarray(np.zeros((64, 64, 3), np.uint8), format="rgb24").reformat(format="yuv420p")
        ctx.encode(frame)
        ctx.encode(None)
        return True
    except (av.FFmpegError, ValueError):
        return False


def pick_codec(requested: str = "auto") -> str:
    if requested != "auto":
        return requested
    codec = "h264_nvenc" if encoder_works("h264_nvenc") else "libx264"
    log.info("encoder: %s", codec)
    return codec


def configure(stream: av.VideoStream, options: EncoderOptions, width: int, height: int) -> None:
    """Size, pixel format and codec options of a new H.264 output stream."""
    stream.width, stream.height = width, height
    # 4:2:0 needs even sizes; odd ones keep their size in 4:4:4 rather than be cropped
    stream.pix_fmt = "yuv420p" if width % 2 == 0 and height % 2 == 0 else "yuv444p"
    if options.bitrate:
        stream.bit_rate = options.bitrate
    if options.gop:
        stream.codec_context.gop_size = options.gop
    opts: dict[str, object] = {}
    if stream.codec_context.name == "libx264":
        opts["preset"] = options.preset
        opts["threads"] = str(codec_threads(options.encode_threads))
        if options.tune:
            opts["tune"] = options.tune
        if options.crf is not None and not options.bitrate:
            opts["crf"] = str(options.crf)
    elif stream.codec_context.name == "h264_nvenc":
        opts["preset"] = "p1" if options.preset in ("ultrafast", "superfast", "veryfast") else "p4"
        if options.tune == "zerolatency":
            opts["tune"] = "ull"
    stream.options = opts


def encoder_frame(picture: np.ndarray, stream: av.VideoStream) -> av.VideoFrame:
    """A composited picture (``Result.composited``: RGB, or I420 planes) as the frame ``stream`` encodes:
    already 4:2:0 where the stream is.

    OpenCV's RGB -> I420 takes a quarter of the CPU of the conversion the encoder would run otherwise
    (0.35 against 1.57 ms at 768x432), and gives the same planes to within one level (BT.601, video range).
    """
    if picture.ndim == 2:  # I420 planes: as they are where the stream is 4:2:0, the encoder converts otherwise
        if stream.pix_fmt == "yuv420p":
            return av.VideoFrame.from_numpy_buffer(picture, format="yuv420p")  # read only, here and by the encoder
        return av.VideoFrame.from_ndarray(picture, format="yuv420p")
    height, width = picture.shape[:2]
    if stream.pix_fmt == "yuv420p" and height % 2 == 0 and width % 2 == 0:
        planes: np.ndarray = cv2.cvtColor(picture, cv2.COLOR_RGB2YUV_I420)  # uint8 in, uint8 out
        # the frame wraps the new planes, no copy (0.09 ms a frame at 768x432): nothing else holds or changes them
        return av.VideoFrame.from_numpy_buffer(planes, format="yuv420p")
    return av.VideoFrame.from_ndarray(picture, format="rgb24")
