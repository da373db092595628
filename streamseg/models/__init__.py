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
    "spec_from_onnx",
]


def spec_from_onnx(path: str | Path) -> ModelSpec | None:
    """The spec ``streamseg models export`` embedded in the ONNX metadata, if any."""
    return spec_in_graph(load_graph(path, external_data=False), path)
