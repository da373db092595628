"""Options for live inputs (network streams, devices, files played as cameras); one typed object."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator


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

    @model_validator(mode="after")
    def _check(self) -> SourceOptions:
        if self.loop and not self.realtime:
            raise ValueError("loop needs realtime: only a file played as a camera loops (--realtime --loop)")
        if self.reconnect_max_delay < self.reconnect_delay:
            raise ValueError("reconnect_max_delay must be >= reconnect_delay")
        return self
