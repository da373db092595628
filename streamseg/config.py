"""Run options: one typed object, read once at start-up from YAML and flags."""

from __future__ import annotations

from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from streamseg.errors import ConfigError
from streamseg.models.spec import ModelSpec, describe_validation_error, load_yaml
from streamseg.sinks.encoder import EncoderOptions
from streamseg.sources.options import SourceOptions


class RunConfig(BaseModel):
    """Everything ``streamseg run`` and ``Pipeline`` accept; each field names its flag."""

    model_config = ConfigDict(extra="forbid", frozen=True, protected_namespaces=())

    model: str | None = None  # --model: zoo name, NAME:variant, or PATH.onnx
    spec: ModelSpec | None = None  # --spec: the model spec (needed for a foreign ONNX)
    backend: str = "auto"  # --backend
    threads: int | None = Field(None, ge=1)  # --threads: inference threads
    precision: Literal["fp32", "fp16", "bf16", "int8"] | None = None  # --precision; None: the model file's own
    winograd: bool = True  # --winograd/--no-winograd: ONNX Runtime's big 3x3 convolutions as Winograd F(4x4,3x3)
    compile: bool = False  # --compile: the torch backend's model through torch.compile (inductor)
    decode: Literal["auto", "cpu", "gpu"] = "auto"  # --decode: NVDEC for files on a CUDA backend
    input_size: int | None = Field(None, ge=16)  # --size: short side for short_side models
    overlay: Literal["overlay", "mask", "side-by-side"] = "overlay"  # --overlay
    alpha: float = Field(0.5, ge=0.0, le=1.0)  # --alpha
    classes: tuple[str, ...] | None = None  # --classes: draw only these
    outputs: tuple[str, ...] = ()  # -o/--output
    labels_out: str | None = None  # --labels-out
    labels_format: Literal["png", "npz"] = "png"  # --labels-format
    summary: str | None = None  # --summary: CSV or JSON Lines
    max_frames: int | None = Field(None, ge=1)  # --max-frames
    queue_size: int | None = Field(None, ge=1, le=256)  # --queue-size; None: 4 for files, 1 for live inputs
    publish: str | None = None  # --publish: ZeroMQ PUB endpoint for label maps, e.g. tcp://127.0.0.1:5555
    metrics_port: int | None = Field(None, ge=0, le=65535)  # --metrics-port: Prometheus /metrics and /health
    preview_port: int | None = Field(None, ge=0, le=65535)  # --preview: live preview page
    serve_host: str = "127.0.0.1"  # --serve-host: interface the metrics and preview servers listen on
    scores: bool = False  # Python API only: per-class scores on each Result (raw model scores)
    encoder: EncoderOptions = EncoderOptions()  # --encoder, --bitrate, --gop
    live: SourceOptions = SourceOptions()  # --transport, --realtime, --loop, --read-timeout, --reconnect-*

    @field_validator("classes", mode="before")
    @classmethod
    def _split_classes(cls, value: Any) -> Any:
        if isinstance(value, str):
            return tuple(c.strip() for c in value.split(",") if c.strip())
        return value

    @classmethod
    def build(cls, values: dict[str, Any], where: str = "options") -> RunConfig:
        try:
            return cls.model_validate(values)
        except ValidationError as err:
            raise ConfigError(describe_validation_error(err, where)) from None

    @classmethod
    def from_yaml(cls, path: str | Path, overrides: dict[str, Any] | None = None) -> RunConfig:
        """A config file, with ``overrides`` (flags the user gave) on top."""
        data = load_yaml(path)
        if data is None:
            data = {}
        if not isinstance(data, dict):
            raise ConfigError(f"{path}: expected a mapping of options at the top level")
        merged = {**data, **(overrides or {})}
        for key, value in (overrides or {}).items():  # nested options (encoder, live) merge key by key
            if isinstance(value, dict) and isinstance(data.get(key), dict):
                merged[key] = {**data[key], **value}
        return cls.build(merged, str(path))
