"""Option models the stages share, each one typed object: live inputs (``SourceOptions``) and encoders
(``EncoderOptions``). Here, not in ``sources/`` or ``outputs/``, so both stages and the config import them one way."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

MAX_PIXELS = 7680 * 4320  # 8K UHD: the largest picture a camera or file commonly has


class SourceOptions(BaseModel):
    """How a live input is read and how hard it is retried; each field names its flag."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    transport: Literal["tcp", "udp"] = "tcp"  # --transport: RTSP lower transport
    realtime: bool = False  # --realtime: play a file at its native rate, as a camera would
    loop: bool = False  # --loop: start a --realtime file over at its end
    read_timeout: float = Field(5.0, gt=0)  # --read-timeout: seconds without data before reconnecting
    reconnect_delay: float = Field(0.5, gt=0)  # --reconnect-delay: first wait, doubled per failed attempt
    reconnect_max_delay: float = Field(10.0, gt=0)  # --reconnect-max-delay: the wait never grows past this
    reconnect_give_up: int | None = Field(None, ge=0)  # --reconnect-give-up: failed attempts in a row; None: never
    undecodable_timeout: float = Field(10.0, gt=0)  # --undecodable-timeout: seconds of data without a picture
    max_pixels: int = Field(MAX_PIXELS, ge=1)  # --max-pixels: larger pictures fail their source (every input)
    decode_threads: int | None = Field(None, ge=1)  # --decode-threads; None: streamseg.cores.codec_threads()

    @model_validator(mode="after")
    def _check(self) -> SourceOptions:
        if self.loop and not self.realtime:
            raise ValueError("loop needs realtime: only a file played as a camera loops (--realtime --loop)")
        if self.reconnect_max_delay < self.reconnect_delay:
            raise ValueError("reconnect_max_delay must be >= reconnect_delay")
        return self


class EncoderOptions(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    codec: str = "auto"  # auto: h264_nvenc where a GPU has NVENC, else libx264
    preset: str = "ultrafast"
    tune: str | None = None  # e.g. zerolatency (live sinks set it)
    crf: int | None = Field(None, ge=0, le=51)
    bitrate: int | None = Field(None, gt=0)  # bits per second
    gop: int | None = Field(None, ge=1)  # keyframe interval in frames
    encode_threads: int | None = Field(None, ge=1)  # --encode-threads; None: streamseg.cores.codec_threads()
    # file outputs: a new file every N seconds of video (-o names a strftime pattern), and a cap on their total size
    segment_seconds: float | None = Field(None, gt=0)
    keep_gigabytes: float | None = Field(None, gt=0)  # with segment_seconds: oldest segments deleted past this

    @model_validator(mode="after")
    def _keep_needs_segments(self) -> EncoderOptions:
        if self.keep_gigabytes is not None and self.segment_seconds is None:
            raise ValueError("keep_gigabytes needs segment_seconds (--keep-gigabytes needs --segment-seconds)")
        return self
