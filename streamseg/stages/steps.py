"""One source's steps as its lane runs them: a small contract, and the plug-ins that wrap it.

A lane runs ``preprocess`` before the shared infer stage and ``composite`` after it. Around those the
contract has a few hooks, called in this order, as GStreamer elements negotiate caps once and then only
process:

* ``on_open(info, reconnects)``: the source has opened; its size and frame rate are known now;
* ``room()``: frames the steps may hold back behind one in inference; the lane's queues past preprocess
  (and the results queue) make room for that many more, and wait rather than drop, since a dropped frame
  would leave the frames carried from it without labels (0: nothing held back);
* ``warm_up(height, width, prepare)``: set the backend up for every input shape the steps will use;
* ``counts()`` for the source's summary row, ``state()`` for ``/metrics``.

``motion_vectors`` and ``decoder_planes`` say what the steps need from the source itself: the decoder's motion
vectors on each frame (``Frame.vectors``), its own 4:2:0 planes (``Frame.planes``, which an overlay draws on);
the lane's source then hands them on; nothing is asked of the decoder otherwise.

A stage set's own lane (``CpuLane``, ``CudaLane``) takes the defaults of ``PlainSteps``. A plug-in
(``LanePlugin``) wraps a lane's steps in its own (temporal: ``streamseg.temporal.steps``); each stage set
says in ``plugins`` which plug-ins it can carry.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, Protocol

from streamseg.frames import Frame, Result, StreamInfo
from streamseg.models.spec import ModelSpec
from streamseg.preprocess import plan_geometry

Prepare = Callable[[tuple[int, ...]], bool]  # set the backend up for an input shape; False: the lane stopped


class LaneSteps(Protocol):
    labels_origin: bool  # results say where their labels came from (inferred, flow, held): the summary sink's column
    motion_vectors: bool  # frames carry the decoder's motion vectors (Frame.vectors): the source exports them
    decoder_planes: bool  # frames carry the decoder's 4:2:0 planes (Frame.planes), where it decoded that

    def preprocess(self, frame: Frame) -> Any: ...

    def composite(self, item: Any) -> Result: ...

    def on_open(self, info: StreamInfo, reconnects: Callable[[], int]) -> None: ...

    def room(self) -> int: ...

    def warm_up(self, height: int, width: int, prepare: Prepare) -> bool: ...

    def counts(self) -> dict[str, Any]: ...

    def state(self) -> dict[str, Any]: ...


class LanePlugin(Protocol):
    """Made once per run from the config; wraps each lane's steps in its own."""

    name: str  # as the stage sets' ``plugins`` list it
    options: str  # the options that ask for it, for errors

    def wrap(self, steps: Any) -> LaneSteps: ...


class PlainSteps:
    """The hooks of a lane that runs every frame through the model at one input size."""

    labels_origin = False
    motion_vectors = False
    decoder_planes = False
    spec: ModelSpec  # the model input the steps produce

    def on_open(self, info: StreamInfo, reconnects: Callable[[], int]) -> None:
        """Nothing to negotiate."""

    def room(self) -> int:
        return 0

    def warm_up(self, height: int, width: int, prepare: Prepare) -> bool:
        return prepare(input_shape(self.spec, height, width))

    def counts(self) -> dict[str, Any]:
        return {}

    def state(self) -> dict[str, Any]:
        return {}


def input_shape(spec: ModelSpec, height: int, width: int) -> tuple[int, ...]:
    """The model input shape of one (height, width) frame under ``spec``."""
    g = plan_geometry(spec.resize, height, width)
    return (1, 3, *g.input_size) if spec.layout == "NCHW" else (1, *g.input_size, 3)
