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
from typing import Any, Protocol

from streamseg.backends import Backend
from streamseg.composite import Compositor
from streamseg.frames import Frame, Inferred, Prepared, Result
from streamseg.models.spec import ModelSpec

__all__ = ["LaneStages", "Stages", "make_stages"]


class LaneStages(Protocol):
    def preprocess(self, frame: Frame) -> Prepared: ...

    def composite(self, item: Inferred) -> Result: ...


class Stages(Protocol):
    device: str

    def lane(self) -> LaneStages: ...

    def infer(self, items: Sequence[Prepared]) -> list[Inferred]: ...

    def prepare(self, input_shape: tuple[int, ...]) -> None: ...


def make_stages(backend: Backend, spec: ModelSpec, compositor: Compositor, *, scores: bool = False,
                **options: Any) -> Stages:
    """The stage set for ``backend.device``: ``cuda`` keeps frames on the GPU, anything else runs on the CPU."""
    if backend.device == "cuda":
        from streamseg.stages.cuda import CudaStages

        return CudaStages(backend, spec, compositor, scores=scores, **options)
    from streamseg.stages.cpu import CpuStages

    return CpuStages(backend, spec, compositor, scores=scores)
