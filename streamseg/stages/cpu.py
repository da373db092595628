"""The preprocess, infer and composite steps on the CPU: NumPy and OpenCV around any host backend."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from streamseg.backends import Backend
from streamseg.backends.base import input_spec
from streamseg.composite import Compositor
from streamseg.frames import Inferred, Prepared, Result
from streamseg.models.spec import Decode, ModelSpec
from streamseg.postprocess import CpuPostprocessor
from streamseg.preprocess import CpuPreprocessor
from streamseg.stages.steps import PlainSteps


class CpuLane(PlainSteps):
    """One source's preprocess and composite: its own geometry cache, so sources of other sizes don't evict it."""

    def __init__(self, spec: ModelSpec, compositor: Compositor, postprocess: CpuPostprocessor, scores: bool):
        self.spec = spec  # what run() takes: the model's input, or pictures where the engine normalizes
        self.preprocess = CpuPreprocessor(spec)
        self.post = postprocess  # stateless per call: shared by the lanes
        self.compositor = compositor
        self.decoder_planes = compositor.takes_planes  # an overlay draws on the decoder's own planes
        self._scores = scores

    def composite(self, item: Inferred) -> Result:
        frame = item.frame
        labels = self.post(item.output, item.geometry)
        scores = self.post.scores(item.output, item.geometry) if self._scores else None
        return Result.of(frame, labels, self.compositor.draw(frame, labels), scores=scores)


class CpuStages:
    device = "cpu"
    plugins = frozenset({"temporal"})  # the lane plug-ins these stages carry (streamseg.stages.steps)

    def __init__(self, backend: Backend, spec: ModelSpec, compositor: Compositor, *, scores: bool = False):
        self.backend = backend
        self.spec = spec
        self.input_spec = input_spec(spec, backend)
        self.compositor = compositor
        self.scores = scores
        # an engine that took the argmax hands over class ids: the postprocessor only resizes them
        decoded = spec if backend.output == "scores" else spec.model_copy(update={"decode": Decode(kind="labels")})
        self.postprocess = CpuPostprocessor(decoded)

    def lane(self) -> CpuLane:
        return CpuLane(self.input_spec, self.compositor, self.postprocess, self.scores)

    def infer(self, items: Sequence[Prepared]) -> list[Inferred]:
        """One backend call for the whole batch (equal input shapes), split back per frame."""
        tensor = items[0].tensor if len(items) == 1 else np.concatenate([item.tensor for item in items])
        output = self.backend.run(tensor)
        return [Inferred(item.frame, output[k : k + 1], item.geometry) for k, item in enumerate(items)]

    def prepare(self, input_shape: tuple[int, ...]) -> None:
        self.backend.prepare(input_shape)
