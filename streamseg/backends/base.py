"""The small interface every inference backend implements."""

from __future__ import annotations

from typing import Any, Literal, Protocol


class Backend(Protocol):
    """Runs one model on a batch of input tensors; built once, used from one thread (the infer stage's).

    Where its inputs live is part of the contract: ``device`` says so, and the
    pipeline picks the matching stage set from it (``streamseg.stages``).
    """

    name: str  # e.g. "onnxruntime (CPUExecutionProvider)"
    device: Literal["cpu", "cuda"]  # where run() wants its input and leaves its output
    input_dtype: Literal["float32", "float16"]  # what run() wants, whatever the spec's file says
    fixed_input_size: tuple[int, int] | None  # (H, W) when the model's input is static
    max_batch: int | None  # the most frames one run() takes; None: any number

    def run(self, tensor: Any) -> Any:
        """The spec's output for an (N, ...) preprocessed input, N frames in N out."""
        ...

    def prepare(self, input_shape: tuple[int, ...]) -> None:
        """Build whatever a new input shape needs (a session, a compiled model) before frames of it arrive."""
        ...

    def close(self) -> None: ...
