"""Models: built-in zoo entries, user ONNX files, and the specs that describe them."""

from __future__ import annotations

from pathlib import Path

from streamseg.models.handle import SPEC_METADATA_KEY, ModelHandle, load_graph, open_model, spec_in_graph
from streamseg.models.spec import ModelSpec
from streamseg.models.zoo import ZOO, ZooEntry

__all__ = [
    "SPEC_METADATA_KEY",
    "ZOO",
    "ModelHandle",
    "ModelSpec",
    "ZooEntry",
    "open_model",
    "resolve_model",
    "spec_from_onnx",
]


def spec_from_onnx(path: str | Path) -> ModelSpec | None:
    """The spec ``streamseg models export`` embedded in the ONNX metadata, if any."""
    return spec_in_graph(load_graph(path, external_data=False), path)


def resolve_model(model: str | Path, spec: ModelSpec | None = None) -> tuple[Path, ModelSpec]:
    """The ONNX file and spec for ``model`` (``open_model``'s handle, as a pair)."""
    handle = open_model(model, spec)
    return handle.path, handle.spec
