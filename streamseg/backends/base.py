"""The small interface every inference backend implements."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, Literal, Protocol

import numpy as np

from streamseg.errors import ModelError
from streamseg.models.spec import ModelSpec

Device = Literal["cpu", "cuda"]
# uint8: pictures as they are, NHWC; the engine normalizes them in its own graph (ModelSpec.as_pictures)
InputDtype = Literal["float32", "float16", "uint8"]
# what run() returns: the spec's raw output, or uint8 class ids from an ArgMax the engine ran itself
Output = Literal["scores", "labels"]


class Backend(Protocol):
    """Runs one model on a batch of input tensors; built once, called by the infer stage, from as many
    threads at once as ``streams + queued`` says.

    Where its inputs live is part of the contract: ``device`` says so, and the
    pipeline picks the matching stage set from it (``streamseg.stages``).
    """

    name: str  # e.g. "onnxruntime (CPUExecutionProvider)"
    device: Device  # where run() wants its input and leaves its output
    input_dtype: InputDtype  # what run() wants, whatever the spec's file says
    fixed_input_size: tuple[int, int] | None  # (H, W) when the model's input is static
    max_batch: int | None  # the most frames one run() takes; None: any number
    output: Output  # "labels" where create_backend(labels=True) found the engine could give them
    # run() calls that may work at once, each on a share of the cores; 1: one at a time, every thread on it.
    # An engine that chooses on its first compile says 1 until then
    streams: int

    @property
    def queued(self) -> int:
        """Calls the infer stage keeps submitted beyond ``streams``, waiting in the engine: a stream that
        finishes starts the next frame at once instead of idling until the infer stage's thread gets a core."""
        ...

    def run(self, tensor: Any) -> Any:
        """The spec's output for an (N, ...) preprocessed input, N frames in N out; (N, h, w) uint8 labels
        instead where ``output`` is "labels"."""
        ...

    def prepare(self, input_shape: tuple[int, ...]) -> None:
        """Build whatever a new input shape needs (a session, a compiled model) before frames of it arrive."""
        ...

    def close(self) -> None: ...


def input_spec(spec: ModelSpec, backend: Backend) -> ModelSpec:
    """The spec of what ``backend.run`` takes: the model's input in the dtype the backend declares, or, where
    it normalizes in its own graph (``uint8``), RGB pictures (``ModelSpec.as_pictures``)."""
    if backend.input_dtype == spec.dtype:
        return spec
    if backend.input_dtype == "uint8":
        return spec.as_pictures()
    return spec.model_copy(update={"dtype": backend.input_dtype})


def engine_labels_wanted(labels: bool, spec: ModelSpec) -> bool:
    """Whether a backend asked for labels appends the ArgMax: only to argmax-decoded scores.

    DUC models keep their scores: their spec resizes scores before the argmax (bilinear), which
    labels at model resolution cannot reproduce.
    """
    return labels and spec.decode.kind == "argmax"


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
        raise ModelError(
            f"{where}: output {spec.output_name!r} has {channels} class channels, but the spec names "
            f"{spec.num_classes} classes"
        )
    return True
