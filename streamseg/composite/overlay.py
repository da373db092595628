"""Draw label maps: colored mask, blended overlay, or both side by side."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Literal

import cv2
import numpy as np

from streamseg.errors import ConfigError
from streamseg.models.spec import ModelSpec

Mode = Literal["overlay", "mask", "side-by-side"]
MODES: tuple[str, ...] = ("overlay", "mask", "side-by-side")


class Compositor:
    """Colors labels with the spec's palette and blends them over the frame.

    Only the drawn classes are colored: the background class and, when a class
    filter is given, every class outside it keep the original pixels (overlay)
    or stay black (mask).
    """

    def __init__(
        self, spec: ModelSpec, *, mode: Mode = "overlay", alpha: float = 0.5, classes: Sequence[str] | None = None
    ):
        if mode not in MODES:
            raise ConfigError(f"overlay: unknown mode {mode!r} (choose from {', '.join(MODES)})")
        if not 0.0 <= alpha <= 1.0:
            raise ConfigError(f"alpha: must be within 0..1, got {alpha}")
        self.mode = mode
        self.alpha = alpha
        drawn = np.ones(256, bool)
        drawn[spec.num_classes :] = False
        if classes:
            unknown = sorted(set(classes) - set(spec.classes))
            if unknown:
                raise ConfigError(f"classes: not in the model's classes: {', '.join(unknown)}")
            drawn[:] = False
            drawn[[spec.classes.index(c) for c in classes]] = True
        elif spec.background is not None:
            drawn[spec.background] = False
        lut = np.zeros((256, 3), np.uint8)
        lut[: spec.num_classes] = spec.colors
        lut[~drawn] = 0
        self.lut = lut
        self.drawn = drawn
        # a user color map: one uint8 -> 3-byte lookup per pixel (0.25 ms at 768x432, against 0.73 for
        # GRAY2RGB then a 3-channel LUT, and ~10x that for numpy fancy indexing)
        self._color_table = np.ascontiguousarray(lut.reshape(256, 1, 3))
        self.drawn_table = np.where(drawn, 255, 0).astype(np.uint8)
        self._undrawn_table = np.where(drawn, 0, 255).astype(np.uint8)

    def colorize(self, labels: np.ndarray) -> np.ndarray:
        """RGB picture of the drawn classes; the rest is black."""
        return cv2.applyColorMap(labels, self._color_table)

    def __call__(self, image: np.ndarray, labels: np.ndarray) -> np.ndarray:
        if self.mode == "mask":
            return self.colorize(labels)
        height, width = labels.shape
        if self.mode == "overlay":
            out = np.empty_like(image)
            overlay, color = out, self.colorize(labels)
        else:  # both halves written in place: no hstack copy
            out = np.empty((height, 2 * width, 3), np.uint8)
            overlay, color = out[:, :width], out[:, width:]
            cv2.applyColorMap(labels, self._color_table, dst=color)
        # whole-frame OpenCV passes: row bands kept the data in cache but cost more in calls (1.05 against
        # 1.37 ms at 768x432) now that each pass is one vectorized loop
        cv2.addWeighted(image, 1.0 - self.alpha, color, self.alpha, 0.0, dst=overlay)
        cv2.copyTo(image, cv2.LUT(labels, self._undrawn_table), overlay)  # undrawn keep the frame
        return out
