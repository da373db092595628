"""The per-frame stages as one set, chosen by where the backend computes.

A backend declares its ``device`` in the ``Backend`` protocol; ``make_stages``
picks the matching set: the CPU set (NumPy/OpenCV, the default) or the CUDA set
(torch ops on the device, frames uploaded once). Both offer the same contract:

* ``lane()``: one source's preprocess and composite steps (their caches are per frame size), as
  ``streamseg.stages.steps.LaneSteps``;
* ``infer(items)``: a batch of prepared frames from any sources, run as one backend call;
* ``prepare(shape)``: set the backend up for an input shape before frames of that shape arrive;
* ``plugins``: the lane plug-ins the set carries (``streamseg.stages.steps``), in one place;
* ``input_spec``: the input its preprocess writes, as the backend takes it (``backends.base.input_spec``).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, Protocol

from streamseg.backends import Backend
from streamseg.composite import Compositor
from streamseg.models.spec import ModelSpec
from streamseg.stages.steps import LanePlugin, LaneSteps

__all__ = ["LanePlugin", "LaneSteps", "Stages", "make_stages"]


class Stages(Protocol):
    @property
    def device(self) -> object: ...  # "cpu", or the torch device the CUDA set runs on

    @property
    def plugins(self) -> frozenset[str]: ...  # the lane plug-ins this set carries

    @property
    def input_spec(self) -> ModelSpec: ...  # what preprocess writes: the backend's input (backends.base.input_spec)

    def lane(self) -> LaneSteps: ...

    # what preprocess hands to infer, and infer to composite: Prepared/Inferred on the CPU, device tensors on CUDA
    def infer(self, items: Sequence[Any]) -> list[Any]: ...

    def prepare(self, input_shape: tuple[int, ...]) -> None: ...


def make_stages(
    backend: Backend, spec: ModelSpec, compositor: Compositor, *, scores: bool = False, **options: Any
) -> Stages:
    """The stage set for ``backend.device``: ``cuda`` keeps frames on the GPU, anything else runs on the CPU."""
    if backend.device == "cuda":
        from streamseg.stages.cuda import CudaStages

        return CudaStages(backend, spec, compositor, scores=scores, **options)
    from streamseg.stages.cpu import CpuStages

    return CpuStages(backend, spec, compositor, scores=scores)
