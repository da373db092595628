"""The per-frame stages as one set, chosen by where the backend computes.

A backend declares its ``device`` in the ``Backend`` protocol; ``make_stages``
picks the matching set: the CPU set (NumPy/OpenCV, the default) or the CUDA set
(torch ops on the device, frames uploaded once). Both offer the same contract:

* ``lane()``: one source's preprocess and composite steps (their caches are per frame size);
* ``infer(items)``: a batch of prepared frames from any sources, run as one backend call;
* ``prepare(shape)``: set the backend up for an input shape before frames of that shape arrive.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, Protocol, TypeVar

from streamseg.backends import Backend
from streamseg.composite import Compositor
from streamseg.frames import Frame, Result
from streamseg.models.spec import ModelSpec

__all__ = ["LaneStages", "Stages", "make_stages"]


# what preprocess hands to infer, and infer to composite: Prepared/Inferred on the CPU, device tensors on CUDA
PreparedT = TypeVar("PreparedT")
InferredT = TypeVar("InferredT")
PreparedT_co = TypeVar("PreparedT_co", covariant=True)
InferredT_contra = TypeVar("InferredT_contra", contravariant=True)


class LaneStages(Protocol[PreparedT_co, InferredT_contra]):
    def preprocess(self, frame: Frame) -> PreparedT_co: ...

    def composite(self, item: InferredT_contra) -> Result: ...


class Stages(Protocol[PreparedT, InferredT]):
    @property
    def device(self) -> object: ...  # "cpu", or the torch device the CUDA set runs on

    def lane(self) -> LaneStages[PreparedT, InferredT]: ...

    def infer(self, items: Sequence[PreparedT]) -> list[InferredT]: ...

    def prepare(self, input_shape: tuple[int, ...]) -> None: ...


def make_stages(
    backend: Backend, spec: ModelSpec, compositor: Compositor, *, scores: bool = False, **options: Any
) -> Stages[Any, Any]:
    """The stage set for ``backend.device``: ``cuda`` keeps frames on the GPU, anything else runs on the CPU."""
    if backend.device == "cuda":
        from streamseg.stages.cuda import CudaStages

        return CudaStages(backend, spec, compositor, scores=scores, **options)
    from streamseg.stages.cpu import CpuStages

    return CpuStages(backend, spec, compositor, scores=scores)
