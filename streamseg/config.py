"""Run options: one typed object, read once at start-up from YAML and flags."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, ValidationInfo, field_validator, model_validator
from pydantic.fields import FieldInfo
from pydantic_core import PydanticCustomError

from streamseg.choices import Backend, Precision
from streamseg.errors import ConfigError
from streamseg.events.regions import Region, regions_from
from streamseg.events.rules import Rule, rules_from
from streamseg.models.spec import ModelSpec
from streamseg.stage_options import EncoderOptions, SourceOptions
from streamseg.yamlfile import describe_validation_error, load_yaml

DAY = 86400.0  # seconds: the longest wait a source may ask for


def flags(*names: str) -> dict[str, Any]:
    """A field's own command-line spelling, where it is not ``--`` plus its name with dashes."""
    return {"flags": list(names)}


class SourceSpec(BaseModel):
    """One input as data (a ``sources:`` entry in YAML, a ``POST /sources`` body): its URI, name and own options.

    Live-input options given here win over the run's; outputs given here win over the run's templates.
    """

    model_config = ConfigDict(extra="forbid", frozen=True, allow_inf_nan=False)

    uri: str = Field(min_length=1)
    name: str | None = None  # default: the file's stem, or the URL's host and path
    outputs: tuple[str, ...] | None = None  # default: the run's -o templates
    labels_out: str | None = None
    summary: str | None = None
    transport: Literal["tcp", "udp"] | None = None
    realtime: bool | None = None
    loop: bool | None = None
    read_timeout: float | None = Field(None, gt=0, le=DAY)
    reconnect_delay: float | None = Field(None, gt=0, le=DAY)
    reconnect_max_delay: float | None = Field(None, gt=0, le=DAY)
    reconnect_give_up: int | None = Field(None, ge=0, le=1_000_000)
    rois: tuple[Region, ...] | None = None  # this source's regions, besides the run's (`rois:`)
    events: tuple[Rule, ...] | None = None  # this source's rules, besides the run's (`events:`)

    @field_validator("outputs", mode="before")
    @classmethod
    def _one_output(cls, value: Any) -> Any:
        return (value,) if isinstance(value, str) else value

    _regions = field_validator("rois", mode="before")(lambda value: regions_from(value))
    _rules = field_validator("events", mode="before")(lambda value: rules_from(value))

    def live_options(self, defaults: SourceOptions) -> SourceOptions:
        """The run's live-input options with this source's own on top."""
        own = {k: v for k, v in self.model_dump(include=set(SourceOptions.model_fields)).items() if v is not None}
        if not own:
            return defaults
        try:
            return SourceOptions.model_validate({**defaults.model_dump(), **own})
        except ValidationError as err:
            raise ConfigError(describe_validation_error(err, f"source {self.name or self.uri}")) from None


class RunConfig(BaseModel):
    """Everything ``streamseg run`` and ``Pipeline`` accept. A field's flag is its name with dashes (nested
    options too: ``encoder.codec`` is ``--codec``), unless the field declares its own (``flags(...)``)."""

    model_config = ConfigDict(extra="forbid", frozen=True, protected_namespaces=())

    model: str | None = Field(None, json_schema_extra=flags("-m", "--model"))  # zoo name, NAME:variant, or PATH.onnx
    spec: ModelSpec | None = None  # --spec: the model spec (needed for a foreign ONNX)
    backend: Backend = "auto"  # --backend
    threads: int | None = Field(None, ge=1)  # --threads: inference threads
    # --engine-streams: frames the engine works on at once (OpenVINO); None: its throughput choice where a source
    # is a file, one (the lowest latency) where all are live
    engine_streams: int | None = Field(None, ge=1)
    precision: Precision | None = None  # --precision; None: the model file's own
    winograd: bool = True  # --winograd/--no-winograd: ONNX Runtime's big 3x3 convolutions as Winograd F(4x4,3x3)
    engine_labels: bool = True  # --engine-labels/--no-engine-labels: the CPU engine's own ArgMax gives uint8 labels
    # --engine-normalize/--no-engine-normalize: OpenVINO takes uint8 pictures and normalizes them in its graph
    engine_normalize: bool = True
    compile: bool = False  # --compile: the torch backend's model through torch.compile (inductor)
    decode: Literal["auto", "cpu", "gpu"] = "auto"  # --decode: NVDEC for files on a CUDA backend
    input_size: int | None = Field(None, ge=16, json_schema_extra=flags("--size"))  # short side (short_side models)
    overlay: Literal["overlay", "mask", "side-by-side"] = "overlay"  # --overlay
    alpha: float = Field(0.5, ge=0.0, le=1.0)  # --alpha
    classes: tuple[str, ...] | None = None  # --classes: draw only these
    outputs: tuple[str, ...] = Field((), json_schema_extra=flags("-o", "--output"))
    labels_out: str | None = None  # --labels-out
    labels_format: Literal["png", "npz"] = "png"  # --labels-format
    summary: str | None = None  # --summary: CSV or JSON Lines
    max_frames: int | None = Field(None, ge=1)  # --max-frames
    queue_size: int | None = Field(None, ge=1, le=256)  # --queue-size; None: 4 for files, 1 for live inputs
    publish: str | None = None  # --publish: ZeroMQ PUB endpoint for label maps, e.g. tcp://127.0.0.1:5555
    metrics_port: int | None = Field(None, ge=0, le=65535)  # --metrics-port: Prometheus /metrics and /health
    preview_port: int | None = Field(None, ge=0, le=65535, json_schema_extra=flags("--preview"))  # preview page
    serve_host: str = "127.0.0.1"  # --serve-host: interface the metrics, preview and Foxglove servers listen on
    api: Literal["off", "read-only", "on"] = "on"  # --api: /sources on --metrics-port; "on" changes need the token
    api_token_file: str | None = None  # --api-token-file: the bearer token from this file, not a new one
    output_root: str | None = None  # --output-root: POSTed outputs write under it [default: the run's output folders]
    input_root: str | None = None  # --input-root: POSTed file sources lie under it [default: none allowed]
    allow_loopback_sources: bool = False  # --allow-loopback-sources: POSTed http(s)/tcp sources on this machine
    max_sources: int = Field(64, ge=1)  # --max-sources: sources running at once
    foxglove_origins: tuple[str, ...] = Field(  # --foxglove-origin: web pages that may open the Foxglove server
        ("https://app.foxglove.dev",), json_schema_extra=flags("--foxglove-origin")
    )
    mcap: str | None = None  # --mcap (or -o FILE.mcap): ROS 2 messages in an MCAP file
    foxglove_port: int | None = Field(None, ge=0, le=65535, json_schema_extra=flags("--foxglove"))  # WebSocket server
    mqtt: str | None = None  # --mqtt: mqtt://host[:port]/topic for per-frame JSON summaries
    mqtt_labels: bool = False  # --mqtt-labels: also publish each label map (PNG) to MQTT/Kafka
    kafka: str | None = None  # --kafka: kafka://host:port/topic, the same events as --mqtt
    scores: bool = False  # Python API only: per-class scores on each Result (raw model scores)
    sources: tuple[SourceSpec, ...] = ()  # SOURCE arguments, or `sources:` in YAML (each a URI or a mapping)
    batch: int | None = Field(None, ge=1)  # --batch: frames per inference call; None: one per source
    interval: int = Field(1, ge=1)  # --interval: infer every Nth frame; the others get carried labels
    # --propagate: carry labels by optical flow, by the decoder's motion vectors (DIS where a frame has none), or hold
    propagate: Literal["none", "flow", "mv"] = "flow"
    smooth: float | None = Field(None, gt=0, le=1)  # --smooth: weight of the newest scores in their moving average
    latency_budget: float | None = Field(None, gt=0)  # --latency-budget: ms; streamseg picks the interval
    latency_sizes: tuple[int, ...] | None = None  # --latency-sizes: input short sides the budget picks from
    latency_prefer: Literal["detail", "fresh"] = "detail"  # --latency-prefer: the largest size, or the most inferred
    batch_timeout: float = Field(5.0, ge=0)  # --batch-timeout: ms to wait for a full batch before running a partial one
    encoder: EncoderOptions = EncoderOptions.model_validate({})  # --codec, --bitrate, --gop, --segment-seconds, …
    live: SourceOptions = SourceOptions.model_validate({})  # --transport, --realtime, --loop, --read-timeout, …
    # events (streamseg.events, docs/events.md): regions, rules on their coverage, clips and alerts
    rois: tuple[Region, ...] = Field((), json_schema_extra=flags("--roi"))  # every source's; NAME=x1,y1;x2,y2;...
    events: tuple[Rule, ...] = Field((), json_schema_extra=flags("--event"))  # 'person in crosswalk > 0.02 for 0.5s'
    coverage: Literal["rules", "all"] = "rules"  # --coverage: columns for the rules' classes, or every class
    events_dir: str | None = None  # --events-dir: a clip, JSON sidecar and thumbnail per event
    pre_roll: float = Field(5.0, ge=0)  # --pre-roll: seconds of a clip before its event's start
    post_roll: float = Field(5.0, ge=0)  # --post-roll: seconds of a clip after its event's end
    pre_roll_megabytes: float = Field(64.0, gt=0)  # --pre-roll-megabytes: cap on each source's packet ring
    webhook: str | None = None  # --webhook URL: each event's start and end POSTed as JSON

    _regions = field_validator("rois", mode="before")(lambda value: regions_from(value))
    _rules = field_validator("events", mode="before")(lambda value: rules_from(value))

    @field_validator("sources", mode="before")
    @classmethod
    def _uris_as_sources(cls, value: Any) -> Any:
        if isinstance(value, (str, dict, Path)):
            value = [value]
        return tuple(v if isinstance(v, (dict, SourceSpec)) else {"uri": str(v)} for v in value)

    @model_validator(mode="before")
    @classmethod
    def _mcap_outputs(cls, values: Any) -> Any:
        """``-o run.mcap`` is the MCAP sink, not a video: move it from ``outputs`` to ``mcap``."""
        if not isinstance(values, dict) or not values.get("outputs"):
            return values
        outputs = [values["outputs"]] if isinstance(values["outputs"], str) else list(values["outputs"])
        mcaps = [o for o in outputs if isinstance(o, str) and o.lower().endswith(".mcap")]
        if not mcaps:
            return values
        if len(mcaps) > 1 or (values.get("mcap") and values["mcap"] != mcaps[0]):
            raise ValueError("one MCAP file per run (it holds every source): give one -o FILE.mcap or --mcap FILE")
        return {**values, "outputs": tuple(o for o in outputs if o not in mcaps), "mcap": mcaps[0]}

    @field_validator("latency_sizes", mode="before")
    @classmethod
    def _split_sizes(cls, value: Any) -> Any:
        if isinstance(value, str):  # the flag: 520,360,256
            return tuple(v.strip() for v in value.split(",") if v.strip())
        return value

    @field_validator("latency_sizes")
    @classmethod
    def _check_sizes(cls, value: tuple[int, ...] | None, info: ValidationInfo) -> tuple[int, ...] | None:
        if value is not None and (not value or min(value) < 16):
            raise ValueError("input short sides of at least 16 px, e.g. 520,360,256")
        if value is not None and info.data.get("latency_budget") is None:  # declared above: validated already
            raise PydanticCustomError("latency_sizes", "only with a latency budget (--latency-budget MS)")
        return value

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

    @property
    def temporal(self) -> bool:
        """Whether some frames skip inference or scores are smoothed (``streamseg.temporal.steps``)."""
        return self.interval > 1 or self.smooth is not None or self.latency_budget is not None

    @property
    def labels_from_engine(self) -> bool:
        """Whether to ask the engine for labels: allowed, and nothing in the run reads the class scores."""
        return self.engine_labels and not self.scores and self.smooth is None


def _leaves(model: type[BaseModel], path: tuple[str, ...] = ()) -> Iterator[tuple[str, tuple[str, ...]]]:
    """Every option a flag can set, with its path; nested option models (``encoder``, ``live``) are walked."""
    for name, field in model.model_fields.items():
        kind = field.annotation
        if isinstance(kind, type) and issubclass(kind, BaseModel) and kind is not ModelSpec:
            yield from _leaves(kind, (*path, name))
        else:
            yield name, (*path, name)


def _unique_leaves() -> dict[str, tuple[str, ...]]:
    found: dict[str, tuple[str, ...]] = {}
    for name, path in _leaves(RunConfig):
        if name in found:  # a flag names a leaf, so two leaves may not share a name
            raise TypeError(f"RunConfig: option {name!r} at both {'.'.join(found[name])} and {'.'.join(path)}")
        found[name] = path
    return found


CONFIG_LEAVES = _unique_leaves()  # leaf name -> path in RunConfig: "codec" -> ("encoder", "codec")


def config_field(leaf: str) -> FieldInfo:
    """The pydantic field of a leaf option."""
    model: type[BaseModel] = RunConfig
    *parents, name = CONFIG_LEAVES[leaf]
    for parent in parents:
        model = model.model_fields[parent].annotation  # type: ignore[assignment]  # walked above: a model
    return model.model_fields[name]


def flag_names(leaf: str) -> list[str]:
    """The command-line spelling of a leaf option: declared on its field, else ``--`` plus its name with dashes."""
    extra = config_field(leaf).json_schema_extra
    declared = extra.get("flags") if isinstance(extra, dict) else None
    return [str(name) for name in declared] if isinstance(declared, list) else ["--" + leaf.replace("_", "-")]


def nest_options(given: dict[str, Any]) -> dict[str, Any]:
    """Flat options by leaf name (``codec=...``) as RunConfig's nested values (``encoder={"codec": ...}``)."""
    nested: dict[str, Any] = {}
    for leaf, value in given.items():
        if leaf not in CONFIG_LEAVES:
            raise ConfigError(f"{leaf}: not a run option")
        *parents, name = CONFIG_LEAVES[leaf]
        target = nested
        for parent in parents:
            target = target.setdefault(parent, {})
        target[name] = value
    return nested
