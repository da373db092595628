"""One model, resolved once: ``open_model`` turns ``NAME``, ``NAME:variant`` or ``PATH.onnx`` into a ``ModelHandle``.

The handle is what the run, bench, batch, eval, quantize and build-engine pass on, and what backends take.
It carries the ONNX file, its spec, the precision the file computes in, and its sha256; the parsed ONNX
graph is read from the file once, the first time something needs it (the spec embedded in a foreign file,
the precision, the Winograd rewrite, the torch backend's weights), and then shared by every user.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass, field, replace
from functools import cached_property
from pathlib import Path
from typing import TYPE_CHECKING, Any

from streamseg.errors import ModelError
from streamseg.models.cache import check_pinned
from streamseg.models.fetch import cache_folder, cached_path, sha256_of
from streamseg.models.spec import ModelSpec
from streamseg.models.zoo import ZOO

if TYPE_CHECKING:
    import onnx

SPEC_METADATA_KEY = "streamseg.spec"


class _Parsed:
    """The parsed graph of one file, loaded at most once, shared by the handles of that file."""

    def __init__(self, path: Path):
        self.path = path
        self.lock = threading.Lock()
        self.model: onnx.ModelProto | None = None

    def get(self) -> onnx.ModelProto:
        with self.lock:
            if self.model is None:
                self.model = load_graph(self.path)
            return self.model


@dataclass(frozen=True, eq=False)
class ModelHandle:
    """An ONNX file and its spec, resolved once; the parsed graph on first use."""

    path: Path
    spec: ModelSpec
    _parsed: _Parsed = field(repr=False)

    @property
    def name(self) -> str:
        return self.path.name

    @property
    def graph(self) -> onnx.ModelProto:
        """The parsed ONNX, read from the file once for every handle of it. Rewrite a ``graph_copy()``, never it."""
        return self._parsed.get()

    def graph_copy(self) -> onnx.ModelProto:
        """A copy of the graph to change in place (the Winograd rewrite)."""
        import onnx

        copy = onnx.ModelProto()
        copy.CopyFrom(self.graph)
        return copy

    @cached_property
    def graph_precision(self) -> str:
        """What the graph computes in: ``int8`` (Q/DQ), ``int8-qoperator``, ``fp16`` or ``fp32``."""
        from streamseg.models.onnx_graph import onnx_precision

        return onnx_precision(self.graph)

    @property
    def precision(self) -> str:
        """The precision the file computes in as it is: int8 (Q/DQ or QOperator), fp16 or fp32."""
        if self.graph_precision.startswith("int8"):
            return "int8"
        return "fp16" if self.spec.dtype == "float16" else "fp32"

    @cached_property
    def sha256(self) -> str:
        return sha256_of(self.path)

    def with_spec(self, spec: ModelSpec) -> ModelHandle:
        """The same file under another spec (a run's input size, FP16 input): the parsed graph stays shared."""
        return self if spec == self.spec else replace(self, spec=spec)


def open_model(model: str | Path | ModelHandle, spec: ModelSpec | None = None) -> ModelHandle:
    """The handle for ``model``: a path, ``NAME`` or ``NAME:variant`` from the zoo (or a handle, as it is).

    An explicit ``spec`` wins; otherwise a file's embedded spec, or the zoo's.
    """
    if isinstance(model, ModelHandle):
        return model.with_spec(spec) if spec is not None else model
    text = str(model)
    name, _, variant = text.partition(":")
    if name in ZOO and not Path(text).exists():
        entry = ZOO[name]
        variant = variant or "fp32"
        if not entry.files:  # torchvision's light models: published as weights, not as ONNX
            raise ModelError(
                f"{name} has no ONNX file to fetch: run `streamseg models export {name} --output {name}.onnx` "
                f"and pass --model {name}.onnx"
            )
        if variant not in entry.files:
            raise ModelError(f"{name} has no {variant!r} file (variants: {', '.join(entry.files)})")
        cache_folder("models", create=False)  # a cache others can write is refused, not trusted
        path = cached_path(entry.files[variant])
        if not path.exists():
            raise ModelError(
                f"{text} is not downloaded: run `streamseg models fetch {text}`, or "
                f"`streamseg models export {name} --output {name}.onnx` and pass --model {name}.onnx"
            )
        check_pinned(path, entry.files[variant].sha256, sha256_of)
        return ModelHandle(path, spec or entry.spec, _Parsed(path))
    path = Path(text)
    if not path.exists():
        if path.suffix or "/" in text:
            raise ModelError(f"model file not found: {text}")
        raise ModelError(f"unknown model {text!r} (built-in: {', '.join(ZOO)}; or give a path to an .onnx file)")
    if path.is_dir():
        raise ModelError(f"model path is a folder, not an .onnx file: {text}")
    parsed = _Parsed(path)
    found = spec or spec_in_graph(parsed.get(), path)
    if found is None:
        raise ModelError(
            f"{text} carries no streamseg spec: pass --spec FILE.yaml (see configs/) or a --config with a spec"
        )
    return ModelHandle(path, found, parsed)


def model_file(model: str | Path | ModelHandle, spec: ModelSpec | None = None) -> ModelHandle:
    """A handle for a file given by path (backends called directly), or ``model`` itself under ``spec``."""
    if isinstance(model, ModelHandle):
        return model.with_spec(spec) if spec is not None else model
    path = Path(model)
    if spec is None:
        return open_model(path)
    return ModelHandle(path, spec, _Parsed(path))


def load_graph(path: str | Path, external_data: bool = True) -> onnx.ModelProto:
    """The ONNX file parsed; an unreadable one is a ``ModelError``."""
    import onnx

    try:
        return onnx.load(str(path), load_external_data=external_data)
    except Exception as err:  # onnx raises DecodeError and friends
        raise ModelError(f"{path} is not a readable ONNX model: {type(err).__name__}") from None


def spec_in_graph(model: Any, where: str | Path) -> ModelSpec | None:
    """The spec ``streamseg models export`` embedded in the ONNX metadata, if any."""
    for prop in model.metadata_props:
        if prop.key == SPEC_METADATA_KEY:
            return ModelSpec.from_json(prop.value, f"{where}: metadata {SPEC_METADATA_KEY}")
    return None
