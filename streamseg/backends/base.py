"""The small interface every inference backend implements."""

from __future__ import annotations

from typing import Protocol

import numpy as np


class Backend(Protocol):
    """Runs one model on one input tensor; built once, used from one thread."""

    name: str  # e.g. "onnxruntime (CPUExecutionProvider)"
    fixed_input_size: tuple[int, int] | None  # (H, W) when the model's input is static

    def run(self, tensor: np.ndarray) -> np.ndarray:
        """The spec's output for a preprocessed input tensor."""
        ...

    def close(self) -> None: ...
