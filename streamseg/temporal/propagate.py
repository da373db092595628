"""Labels for the frames between inferences: the last inferred map, held or warped along optical flow.

``LabelPropagator`` keeps the last inferred (key) frame, as the small gray
image the flow compares, with its labels. For each later frame it returns
the key's labels as they are (``mode="none"``: held) or pulled to the new
frame by dense optical flow (``mode="flow"``), with their age.

Chaining (``chain``):

- ``"direct"`` (default): flow from the current frame straight to the key
  frame. One flow per frame, and errors do not pile up from frame to frame.
- ``"accumulate"``: flow from each frame to the one before, composed into a
  flow to the key. Also one flow per frame (plus a composition), and each
  step is a small motion, but interpolation errors add up over the chain.

Both cost the same; docs/temporal.md compares their agreement with per-frame
inference on real footage, which is why ``direct`` is the default.
"""

from __future__ import annotations

import time
from dataclasses import dataclass

import numpy as np

from streamseg.errors import ConfigError
from streamseg.temporal.flow import DenseFlow, compose_flows, warp_labels

MODES = ("none", "flow")
CHAINS = ("direct", "accumulate")


@dataclass
class Propagated:
    """Labels for one frame, and where they came from."""

    labels: np.ndarray  # uint8 (H, W), the key frame's size
    origin: str  # "inferred" | "flow" | "held"
    age_frames: int  # frames since the key frame (0 for an inferred frame)
    age_ms: float  # capture-time difference to the key frame, in ms
    key_index: int  # index of the frame whose inference these labels come from
    flow: np.ndarray | None = None  # (h, w, 2) small flow current -> key, for reuse (score smoothing)
    seconds: float = 0.0  # time this frame's propagation took


class LabelPropagator:
    """Carries the last inferred label map forward to later frames: held, or warped by optical flow."""

    def __init__(self, mode: str = "flow", *, flow: DenseFlow | None = None, chain: str = "direct"):
        if mode not in MODES:
            raise ConfigError(f"propagate must be one of {', '.join(MODES)}, got {mode!r}")
        if chain not in CHAINS:
            raise ConfigError(f"propagation chain must be one of {', '.join(CHAINS)}, got {chain!r}")
        self.mode = mode
        self.chain = chain
        self.flow = flow or DenseFlow()  # "none" uses it only for motion_since_key's small gray frame
        self.reset()

    def reset(self) -> None:
        """Forget the key frame (a reconnect or a new stream): the next frame must be inferred."""
        self._key_labels: np.ndarray | None = None
        self._key_small: np.ndarray | None = None
        self._key_index = -1
        self._key_ms = 0.0
        self._previous_small: np.ndarray | None = None  # accumulate: the last frame seen
        self._accumulated: np.ndarray | None = None  # accumulate: flow previous -> key

    @property
    def has_key(self) -> bool:
        return self._key_labels is not None

    def motion_since_key(self, image: np.ndarray) -> tuple[np.ndarray, np.ndarray | None]:
        """For a frame about to become the key: its small gray image, and (mode "flow") its flow to the old key.

        What :class:`~streamseg.temporal.smooth.ScoreSmoother` takes to detect cuts and pull its average along.
        """
        small = self.flow.prepare(image)
        if self.mode != "flow" or self._key_small is None or self._key_small.shape != small.shape:
            return small, None
        return small, self.flow.compute(small, self._key_small)

    def set_key(self, image: np.ndarray, labels: np.ndarray, index: int, time_ms: float) -> Propagated:
        """Record an inferred frame (RGB image, its labels, index, capture time in ms) as the new key."""
        self._key_labels = labels
        self._key_index = index
        self._key_ms = time_ms
        if self.mode == "flow":
            self._key_small = self.flow.prepare(image)
            self._previous_small = self._key_small
            self._accumulated = None
        return Propagated(labels, "inferred", 0, 0.0, index)

    def propagate(self, image: np.ndarray, index: int, time_ms: float) -> Propagated:
        """Labels for a later frame (RGB image, index, capture time in ms) from the key frame."""
        if self._key_labels is None:
            raise RuntimeError("propagate() before any set_key(): the first frame must be inferred")
        began = time.perf_counter()
        age_frames, age_ms = index - self._key_index, time_ms - self._key_ms
        if self.mode == "none":
            return Propagated(
                self._key_labels, "held", age_frames, age_ms, self._key_index, seconds=time.perf_counter() - began
            )
        assert self._key_small is not None and self._previous_small is not None, "set by set_key() in flow mode"
        small = self.flow.prepare(image)
        if self.chain == "direct":
            flow = self.flow.compute(small, self._key_small)
        else:
            step = self.flow.compute(small, self._previous_small)
            flow = step if self._accumulated is None else compose_flows(step, self._accumulated)
            self._accumulated, self._previous_small = flow, small
        labels = warp_labels(self._key_labels, flow)
        return Propagated(
            labels, "flow", age_frames, age_ms, self._key_index, flow=flow, seconds=time.perf_counter() - began
        )
