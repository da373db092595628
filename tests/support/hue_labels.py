"""Label maps that follow a real picture, for compositing tests: hue classes at 1/8 size, resized nearest."""

from __future__ import annotations

from pathlib import Path

import av
import cv2
import numpy as np


def hue_labels(rgb: np.ndarray, classes: int) -> np.ndarray:
    """(H, W) uint8 class ids from ``rgb``'s hue, blocky as a model's upsampled labels are."""
    h, w = rgb.shape[:2]
    hue = cv2.cvtColor(cv2.resize(rgb, (w // 8, h // 8)), cv2.COLOR_RGB2HSV)[..., 0]
    small = (hue.astype(np.uint16) * classes // 180).astype(np.uint8)
    return cv2.resize(small, (w, h), interpolation=cv2.INTER_NEAREST)


def decoded_with_labels(video: Path, count: int, classes: int) -> list[tuple[av.VideoFrame, np.ndarray, np.ndarray]]:
    """The first ``count`` decoded frames of ``video``: each with its RGB picture and its hue labels."""
    out = []
    with av.open(str(video)) as container:
        for frame in container.decode(video=0):
            rgb = frame.to_ndarray(format="rgb24")
            out.append((frame, rgb, hue_labels(rgb, classes)))
            if len(out) == count:
                break
    return out
