"""The small interface every inference backend implements."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, Protocol

import numpy as np

from streamseg.errors import ModelError
from streamseg.models.spec import ModelSpec


class Backend(Protocol):
    """Runs one model on one input tensor; built once, used from one thread."""

    name: str  # e.g. "onnxruntime (CPUExecutionProvider)"
    fixed_input_size: tuple[int, int] | None  # (H, W) when the model's input is static

    def run(self, tensor: np.ndarray) -> np.ndarray:
        """The spec's output for a preprocessed input tensor."""
        ...

    def close(self) -> None: ...


def check_output_classes(shape: Sequence[Any], spec: ModelSpec, where: str) -> bool:
    """Refuse a model whose output has more or fewer class channels than the spec has classes.

    ``shape`` is the output's shape, a dynamic axis as a name, None or -1.
    Returns True when the class axis could be checked (static, or a decoding
    without one), False when it is dynamic: the backend then checks its first
    real output with this same function.
    """
    if spec.decode.kind not in ("argmax", "duc") or len(shape) < 2:
        return True  # "labels" outputs are class ids already: no class axis
    channels = shape[1]
    if not isinstance(channels, (int, np.integer)) or channels < 0:
        return False
    if channels != spec.num_classes:
        raise ModelError(f"{where}: output {spec.output_name!r} has {channels} class channels, but the spec names "
                         f"{spec.num_classes} classes")
    return True
