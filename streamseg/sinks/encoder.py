"""H.264 encoder choice and settings, shared by every video sink."""

from __future__ import annotations

import functools
import logging
from fractions import Fraction

import av
import numpy as np
from pydantic import BaseModel, ConfigDict, Field, model_validator

log = logging.getLogger(__name__)


class EncoderOptions(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    codec: str = "auto"  # auto: h264_nvenc where a GPU has NVENC, else libx264
    preset: str = "ultrafast"
    tune: str | None = None  # e.g. zerolatency (live sinks set it)
    crf: int | None = Field(None, ge=0, le=51)
    bitrate: int | None = Field(None, gt=0)  # bits per second
    gop: int | None = Field(None, ge=1)  # keyframe interval in frames
    # file outputs: a new file every N seconds of video (-o names a strftime pattern), and a cap on their total size
    segment_seconds: float | None = Field(None, gt=0)
    keep_gigabytes: float | None = Field(None, gt=0)  # with segment_seconds: oldest segments deleted past this

    @model_validator(mode="after")
    def _keep_needs_segments(self) -> EncoderOptions:
        if self.keep_gigabytes is not None and self.segment_seconds is None:
            raise ValueError("keep_gigabytes needs segment_seconds (--keep-gigabytes needs --segment-seconds)")
        return self


@functools.cache
def encoder_works(codec: str) -> bool:
    """Whether ``codec`` opens here: h264_nvenc is compiled in but needs a GPU with NVENC."""
    try:
        ctx = av.CodecContext.create(codec, "w")
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
    opts = {}
    if stream.codec_context.name == "libx264":
        opts["preset"] = options.preset
        if options.tune:
            opts["tune"] = options.tune
        if options.crf is not None and not options.bitrate:
            opts["crf"] = str(options.crf)
    elif stream.codec_context.name == "h264_nvenc":
        opts["preset"] = "p1" if options.preset in ("ultrafast", "superfast", "veryfast") else "p4"
        if options.tune == "zerolatency":
            opts["tune"] = "ull"
    stream.options = opts
