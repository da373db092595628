"""Temporal smoothing of class scores: an exponential moving average over inferred frames.

``avg_t = alpha * scores_t + (1 - alpha) * warp(avg_{t-1})``: ``alpha`` is
the weight of the newest frame (1 = no smoothing). With a flow from the new
frame to the previous inferred one, the old average is first pulled along it
(at the scores' resolution), so moving objects are averaged with themselves
rather than with what was behind them, and do not smear.

The average works on the raw scores (logits) the model returns: averaging
logits is averaging log-probabilities up to a per-pixel constant, and needs
no softmax over every class plane.

It starts over on a scene cut, when the mean absolute difference of the
small gray frames (0-255) of two consecutive inferred frames exceeds
``cut_threshold``, and on :meth:`reset` (a reconnect). The default, 40, is
from car-detection.mp4 at 427x240 (docs/temporal.md): neighbouring frames
differ by 0.7 (median) to 19 (max), frames 3 apart by at most 36, 5 apart
by up to 46 (99th percentile 40) in its fastest turns; a cut to the other
clip by 51-63. A false cut only restarts the average. (Differences after
warping by the flow were no better apart: DIS misses the fast turns.)
"""

from __future__ import annotations

import cv2
import numpy as np

from streamseg.errors import ConfigError
from streamseg.postprocess.cpu import argmax_labels
from streamseg.temporal.flow import warp_planes

DEFAULT_ALPHA = 0.5
DEFAULT_CUT_THRESHOLD = 40.0


def frame_difference(a: np.ndarray, b: np.ndarray) -> float:
    """Mean absolute difference of two same-size gray uint8 images (0-255)."""
    return float(cv2.norm(a, b, cv2.NORM_L1)) / a.size


class ScoreSmoother:
    """EMA of (C, h, w) class scores over inferred frames, motion-compensated when given a flow."""

    def __init__(self, alpha: float = DEFAULT_ALPHA, *, cut_threshold: float = DEFAULT_CUT_THRESHOLD):
        if not 0 < alpha <= 1:
            raise ConfigError(f"smoothing alpha must be in (0, 1], got {alpha}")
        if cut_threshold <= 0:
            raise ConfigError(f"scene-cut threshold must be > 0, got {cut_threshold}")
        self.alpha = alpha
        self.cut_threshold = cut_threshold
        self.resets = {"start": 0, "cut": 0, "explicit": 0}  # why the average started over, counted
        self.reset(reason="start")

    def reset(self, reason: str = "explicit") -> None:
        """Start over: the next frame's scores are taken as they are (call on a reconnect)."""
        self._average: np.ndarray | None = None
        self._gray: np.ndarray | None = None
        self.resets[reason] = self.resets.get(reason, 0) + 1

    def update(self, scores: np.ndarray, gray: np.ndarray | None = None, flow: np.ndarray | None = None) -> np.ndarray:
        """The smoothed scores after this inferred frame.

        ``scores``: (C, h, w) or (1, C, h, w) float32. ``gray``: the frame as a
        small gray uint8 image (``DenseFlow.prepare``), for scene-cut detection.
        ``flow``: (h', w', 2) from this frame to the previous inferred frame,
        any size (resized to the scores'), for motion compensation.
        """
        squeeze = scores.ndim == 4
        current = scores[0] if squeeze else scores
        current = current.astype(np.float32, copy=False)
        if gray is not None:
            if (
                self._gray is not None
                and self._gray.shape == gray.shape
                and frame_difference(gray, self._gray) > self.cut_threshold
            ):
                self.reset(reason="cut")
            self._gray = gray
        if self._average is None or self._average.shape != current.shape:
            self._average = current.copy()
        else:
            previous = warp_planes(self._average, flow) if flow is not None else self._average
            # alpha * current + (1 - alpha) * previous in one pass (OpenCV wants 2-D: classes x rows stacked)
            rows = (-1, current.shape[-1])
            blended = cv2.addWeighted(
                np.ascontiguousarray(current).reshape(rows), self.alpha, previous.reshape(rows), 1 - self.alpha, 0.0
            )
            self._average = blended.reshape(current.shape)
        return self._average[None] if squeeze else self._average

    def labels(self, scores: np.ndarray, gray: np.ndarray | None = None, flow: np.ndarray | None = None) -> np.ndarray:
        """:meth:`update`, then the argmax: uint8 (h, w) labels at the scores' resolution."""
        smoothed = self.update(scores, gray, flow)
        return argmax_labels(smoothed[0] if smoothed.ndim == 4 else smoothed)
