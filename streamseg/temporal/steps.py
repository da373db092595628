"""Every frame out with a mask when inference can't keep up: the temporal plug-in of a source's lane.

It wraps a source's CPU steps (``streamseg.stages.steps``). Its preprocess step asks the policy (every Nth
frame, or what ``--latency-budget`` allows) whether to infer a frame. A frame
to infer is preprocessed as usual; any other becomes a ``Carried`` record
with the optical flow from it back to the last inferred (key) frame, computed
right there, in the preprocess thread, while the key frame is being inferred (``--propagate mv``: composed
from the decoder's motion vectors since the key frame, ``motion_vectors.VectorChain``, DIS where a frame
has none).
Carried frames pass the infer stage untouched, in order, and the composite
step pulls the key frame's labels along their flow (or holds them). A key
frame is preprocessed at the input size the policy chose (one preprocessor
per size; ``--latency-sizes``); its labels come out at the frame's size. With
``smooth``, a key frame's class scores are averaged with the earlier ones
(motion-compensated, reset on a scene cut or a reconnect) before its argmax.

The policy is made once, when the source opens: a latency budget needs the camera's frame period, and so
does the room the queues need for the frames a key frame holds up.
"""

from __future__ import annotations

import logging
import math
import time
from collections import Counter
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any, Literal

import cv2
import numpy as np

from streamseg.config import RunConfig
from streamseg.errors import ConfigError
from streamseg.frames import Frame, Inferred, Prepared, Result, StreamInfo
from streamseg.models.spec import ModelSpec
from streamseg.postprocess.cpu import argmax_labels
from streamseg.preprocess import CpuPreprocessor
from streamseg.stages.cpu import CpuLane
from streamseg.stages.steps import Prepare, input_shape
from streamseg.temporal.flow import DenseFlow, warp_labels
from streamseg.temporal.interval import FixedInterval, LatencyBudget
from streamseg.temporal.motion_vectors import VectorChain
from streamseg.temporal.smooth import ScoreSmoother

log = logging.getLogger(__name__)

DEFAULT_FRAME_RATE = 25  # a source that does not say its rate


@dataclass(frozen=True, slots=True)
class Carried:
    """A frame that skips inference: its labels come from the key frame, pulled along ``flow`` (None: held)."""

    frame: Frame
    flow: np.ndarray | None  # (h, w, 2) small flow from this frame to the key frame
    key_index: int
    key_capture_time: float
    by: str  # what carried the labels, the result's origin: "flow" (DIS), "mv" (motion vectors) or "held"


class TemporalPlugin:
    """The temporal options of a run, made once: wraps each source's CPU steps in ``TemporalSteps``."""

    name = "temporal"
    options = "interval, smooth and latency_budget"

    def __init__(self, config: RunConfig, spec: ModelSpec, run: Callable[[np.ndarray], Any]):
        self.interval, self.budget_ms = config.interval, config.latency_budget
        self.prefer, self.propagate, self.smooth = config.latency_prefer, config.propagate, config.smooth
        self.spec = spec
        self.run = run  # the backend's run(tensor), to time each input size before frames flow
        self.sizes = budget_specs(spec, config.latency_budget, config.latency_sizes)

    @classmethod
    def wanted(cls, config: RunConfig, spec: ModelSpec, run: Callable[[np.ndarray], Any]) -> TemporalPlugin | None:
        """The plug-in when some frames skip inference or scores are smoothed, else None."""
        return cls(config, spec, run) if config.temporal else None

    def wrap(self, steps: CpuLane) -> TemporalSteps:
        if self.smooth is not None and steps.post.decode.kind != "argmax":
            raise ConfigError(f"smooth: needs class scores (decode: argmax), not {steps.post.decode.kind}")
        inputs = {size: CpuPreprocessor(spec) for size, spec in self.sizes.items()} or None
        return TemporalSteps(steps, self, inputs=inputs)


class TemporalSteps:
    """A source's preprocess and composite with inference on the frames its policy picks."""

    labels_origin = True

    def __init__(self, steps: CpuLane, plugin: TemporalPlugin, *, inputs: Mapping[int | None, CpuPreprocessor] | None):
        self.steps = steps
        self.plugin = plugin
        self.policy: FixedInterval | None = None  # made by on_open, from the camera's frame period
        self._held = 0
        # input short side -> its preprocessor, best first (None: the model's own size, the lane's preprocessor)
        self.inputs: dict[int | None, CpuPreprocessor] = dict(inputs or {None: steps.preprocess})
        self.propagate = plugin.propagate
        self.motion_vectors = plugin.propagate == "mv"  # the source exports them; on_open makes the chain
        self.decoder_planes = steps.decoder_planes
        self.chain: VectorChain | None = None
        self.carried_by: Counter[str] = Counter()  # carried frames by what carried them (Carried.by)
        self.smoother = ScoreSmoother(plugin.smooth) if plugin.smooth is not None else None
        self.flow = DenseFlow()
        self.reconnects: Callable[[], int] = lambda: 0  # the source's reconnect count, read per frame
        self._seen_reconnects = 0
        self._restart = False  # a reconnect: the smoothed average starts over at the next key frame
        # preprocess thread: the key frame as the flow sees it
        self._key_small: np.ndarray | None = None
        self._key_index, self._key_time = -1, 0.0
        self._motion: dict[int, tuple] = {}  # key index -> (small, flow to the last key, decided, reset, size)
        # composite thread: the key frame's labels
        self._key_labels: np.ndarray | None = None

    # -- hooks -----------------------------------------------------------------------------
    def on_open(self, info: StreamInfo, reconnects: Callable[[], int]) -> None:
        frame_ms = 1000 / float(info.rate or DEFAULT_FRAME_RATE)
        p = self.plugin
        self.policy = make_policy(p.interval, p.budget_ms, frame_ms, tuple(self.inputs), p.prefer)
        self._held = held_frames(p.interval, p.budget_ms, frame_ms)
        self.reconnects = reconnects
        if self.motion_vectors:
            self.chain = VectorChain(info.name, self.flow)

    def room(self) -> int:
        return self._held

    def warm_up(self, height: int, width: int, prepare: Prepare) -> bool:
        """Set up each input size, smallest first; a latency budget times them, and sets up none past a miss."""
        for size, shape in self.warm_up_order(height, width):
            if not prepare(shape):
                return False
            if not self.calibrate(size, shape):
                break
        return True

    def counts(self) -> dict[str, Any]:
        """Frames inferred and carried, how often each interval (setting) served, and what carried the labels."""
        policy = self.policy
        if policy is None:  # the source never opened
            return {
                "inferred": 0,
                "propagated": 0,
                "interval": self.plugin.interval,
                "settings": "not opened",
                "propagation": self.propagate,
            }
        return {
            "inferred": policy.inferred,
            "propagated": policy.propagated,
            "interval": policy.current.interval,
            "settings": policy.describe(),
            "propagation": propagation(self.propagate, self.carried_by),
        }

    def state(self) -> dict[str, Any]:
        """The setting in use now and frames per setting, for /metrics."""
        policy = self.policy
        if policy is None:
            return {}
        resize = self.plugin.spec.resize
        own = resize.size if isinstance(resize.size, int) else 0  # 0: a fixed-size model's own

        def size(setting: Any) -> int:
            return setting.size if setting.size is not None else own

        return {
            "interval": policy.current.interval,
            "input_size": size(policy.current),
            "setting_frames": {(s.interval, size(s)): n for s, n in dict(policy.usage).items()},
            "carried_by": dict(self.carried_by),
        }

    # -- before frames flow ----------------------------------------------------------------
    @property
    def sizes(self) -> tuple[int | None, ...]:
        return tuple(self.inputs)

    def input_shapes(self, height: int, width: int) -> dict[int | None, tuple[int, ...]]:
        """The model input shape of a (height, width) frame at each input size."""
        return {size: input_shape(pre.spec, height, width) for size, pre in self.inputs.items()}

    def warm_up_order(self, height: int, width: int) -> list[tuple[int | None, tuple[int, ...]]]:
        """(size, input shape) to set up before frames flow: a budget's sizes smallest first, else the one."""
        shapes = self.input_shapes(height, width)
        if not isinstance(self.policy, LatencyBudget):
            return list(shapes.items())[:1]
        return sorted(shapes.items(), key=lambda item: item[0] or 0)

    def calibrate(self, size: int | None, shape: tuple[int, ...]) -> bool:
        """Time one inference at ``size`` before frames flow (latency budget only); False: set up no larger size.

        The size runs twice and the second run counts, so one-off first-run costs stay out. Sizes larger than
        the first that misses the budget are neither set up nor run (they would miss it too; their estimates
        scale by pixel count, and one that becomes affordable pays its set-up at its first use).
        """
        policy = self.policy
        if not isinstance(policy, LatencyBudget):
            return False
        run = self.plugin.run
        tensor = np.zeros(shape, np.dtype(self.inputs[size].spec.dtype))
        run(tensor)
        started = time.perf_counter()
        run(tensor)
        ms = 1000 * (time.perf_counter() - started)
        policy.calibrate(size, ms)
        nchw = len(shape) == 4 and shape[1] == 3
        log.info(
            "latency budget: input size %s (%s) infers in %.0f ms",
            size or "model's",
            "x".join(map(str, shape[2:] if nchw else shape[1:3])),
            ms,
        )
        return ms <= policy.budget_ms

    # -- preprocess thread -----------------------------------------------------------------
    def preprocess(self, frame: Frame) -> Prepared | Carried:
        policy = self.policy
        assert policy is not None, "frames flow once the source opened"
        if self.reconnects() != self._seen_reconnects:  # a new connection: nothing before it carries over
            self._seen_reconnects = self.reconnects()
            policy.reset()
            self._key_small = None
            if self.chain is not None:
                self.chain.reset()
            self._restart = True
        small = self.flow.prepare(frame.image) if self.propagate == "flow" or self.smoother else None
        if policy.decide(frame.index):  # the first frame always is
            motion = self._key_motion(frame, small) if self.smoother is not None else None
            if self.chain is not None:
                self.chain.set_key(frame.image, frame.index)
            self._key_small, self._key_index, self._key_time = small, frame.index, frame.capture_time
            size = policy.current.size
            self._motion[frame.index] = (small, motion, time.perf_counter(), self._restart, size)
            self._restart = False
            return self.inputs.get(size, self.steps.preprocess)(frame)
        started = time.perf_counter()
        if self.chain is not None:
            flow, by = self.chain.to_key(frame.image, frame.vectors, frame.index)
        else:
            key = self._key_small
            flow = self.flow.compute(small, key) if small is not None and key is not None else None
            by = "held" if flow is None else "flow"
        policy.observe_propagate(1000 * (time.perf_counter() - started))
        self.carried_by[by] += 1
        return Carried(frame, flow, self._key_index, self._key_time, by)

    def _key_motion(self, frame: Frame, small: np.ndarray | None) -> np.ndarray | None:
        """A new key frame's flow to the last one, for the smoother to pull its average along; None: none."""
        if self.chain is not None:
            return self.chain.to_key(frame.image, frame.vectors, frame.index)[0]
        key = self._key_small
        if self.propagate != "flow" or small is None or key is None or small.shape != key.shape:
            return None
        return self.flow.compute(small, key)

    # -- composite thread ------------------------------------------------------------------
    def composite(self, item: Inferred | Carried) -> Result:
        if isinstance(item, Carried):
            return self._carried(item)
        policy = self.policy
        assert policy is not None, "frames flow once the source opened"
        small, motion, decided, restart, size = self._motion.pop(
            item.frame.index, (None, None, time.perf_counter(), False, policy.current.size)
        )
        policy.observe_infer(1000 * (time.perf_counter() - decided), size)
        if self.smoother is None:
            result = self.steps.composite(item)
            self._key_labels = result.labels
            return result
        post, frame, g = self.steps.post, item.frame, item.geometry
        if restart:
            self.smoother.reset("reconnect")
        raw = post.scores(item.output, g)
        assert raw is not None  # decode argmax, checked at the start
        scores = self.smoother.update(raw, small, motion)
        labels = argmax_labels(np.ascontiguousarray(scores))
        if labels.shape != g.frame_size:
            labels = cv2.resize(labels, (g.frame_size[1], g.frame_size[0]), interpolation=cv2.INTER_NEAREST)
        self._key_labels = labels
        return self._result(frame, labels, "inferred", 0, 0.0)

    def _carried(self, item: Carried) -> Result:
        frame = item.frame
        key = self._key_labels
        assert key is not None  # its key frame came first: the queues past preprocess never drop
        labels = key if item.flow is None else warp_labels(key, item.flow)
        return self._result(
            frame,
            labels,
            item.by,
            frame.index - item.key_index,
            1000 * (frame.capture_time - item.key_capture_time),
        )

    def _result(self, frame: Frame, labels: np.ndarray, origin: str, age_frames: int, age_ms: float) -> Result:
        composited = self.steps.compositor.draw(frame, labels)
        return Result.of(frame, labels, composited, origin=origin, age_frames=age_frames, age_ms=age_ms)


def propagation(asked: str, carried_by: Mapping[str, int]) -> str:
    """What carried the labels, for the summary: ``asked`` (``--propagate``), or how ``mv`` fell back to DIS."""
    by_flow, by_vectors = carried_by.get("flow", 0), carried_by.get("mv", 0)
    if asked != "mv" or not by_flow:
        return asked
    if not by_vectors:
        return "flow (mv asked; the stream has no motion vectors)"
    return f"mv (flow for {by_flow} of {by_flow + by_vectors} carried frames, which had no motion vectors)"


def make_policy(
    interval: int,
    latency_budget: float | None,
    frame_ms: float,
    sizes: tuple[int | None, ...] = (None,),
    prefer: Literal["detail", "fresh"] = "detail",
) -> FixedInterval:
    """Every ``interval``-th frame, or what ``latency_budget`` (ms) allows at the camera's frame period and sizes."""
    if latency_budget is not None:
        return LatencyBudget(latency_budget, frame_ms, sizes=sizes, prefer=prefer)
    return FixedInterval(interval, sizes[0])


def held_frames(interval: int, latency_budget: float | None, frame_ms: float) -> int:
    """Frames a key frame's inference can hold up behind it: room the queues after it need.

    Every ``interval``-th frame: the frames up to the next key. A latency budget: the frames the camera
    sends (one per ``frame_ms``) while the budget runs.
    """
    return interval if latency_budget is None else math.ceil(latency_budget / frame_ms)


def budget_specs(
    spec: ModelSpec, latency_budget: float | None, given: tuple[int, ...] | None
) -> dict[int | None, ModelSpec]:
    """The model spec at each input size a latency budget may pick, largest first; {} without a choice."""
    resize = spec.resize
    if latency_budget is None or not (given or resize.mode == "short_side"):
        return {}
    sizes = budget_sizes(resize.size if isinstance(resize.size, int) else 0, given)
    return {size: spec.with_short_side(size, "latency_sizes") for size in sizes}


def budget_sizes(size: int, given: tuple[int, ...] | None) -> tuple[int, ...]:
    """Input short sides a latency budget may choose from, largest first.

    ``given`` (``--latency-sizes``) as it is; by default the run's size (``--size`` or the model's) and four
    smaller ones, each with about half the pixels of the one before (x0.7 short side, multiples of 8, >= 32):
    inference time falls about as fast, so each step roughly halves it.
    """
    if given:
        return tuple(sorted(set(given), reverse=True))
    sizes = [size]
    for step in range(1, 5):
        smaller = max(32, int(round(size * 0.7**step / 8)) * 8)
        if smaller < sizes[-1]:
            sizes.append(smaller)
    return tuple(sizes)
