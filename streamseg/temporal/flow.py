"""Dense optical flow at a reduced size, and label maps carried forward along it.

OpenCV's DIS optical flow (ultrafast preset) on gray frames scaled to a short
side of ``short_side`` pixels (default 240) costs a few milliseconds a frame
on one CPU core. The flow points from the *current* frame back to the
reference (last inferred) frame: ``current(x) ~ reference(x + flow(x))``, so
the reference labels are pulled to the current frame with one
``cv2.remap`` (backward warping: every output pixel gets a label, no holes).

Labels are warped at their own (full frame) size with nearest-neighbour
sampling, so class ids are never blended; the small flow field is upscaled
bilinearly and its vectors scaled by the size ratio.
"""

from __future__ import annotations

import cv2
import numpy as np

from streamseg.errors import ConfigError

PRESETS = {
    "ultrafast": cv2.DISOPTICAL_FLOW_PRESET_ULTRAFAST,
    "fast": cv2.DISOPTICAL_FLOW_PRESET_FAST,
    "medium": cv2.DISOPTICAL_FLOW_PRESET_MEDIUM,
}
DEFAULT_SHORT_SIDE = 240


class DenseFlow:
    """DIS optical flow between frames scaled so their short side is ``short_side`` pixels.

    Not thread-safe (the DIS object keeps buffers): one instance per stage.
    """

    def __init__(self, short_side: int = DEFAULT_SHORT_SIDE, preset: str = "ultrafast"):
        if short_side < 16:
            raise ConfigError(f"flow short side must be at least 16 pixels, got {short_side}")
        if preset not in PRESETS:
            raise ConfigError(f"flow preset must be one of {', '.join(PRESETS)}, got {preset!r}")
        self.short_side = short_side
        self.preset = preset
        self._dis = cv2.DISOpticalFlow.create(PRESETS[preset])

    def small_size(self, height: int, width: int) -> tuple[int, int]:
        """(h, w) the flow works at for a ``height`` x ``width`` frame; never larger than the frame."""
        scale = min(1.0, self.short_side / min(height, width))
        return max(1, round(height * scale)), max(1, round(width * scale))

    def prepare(self, image: np.ndarray) -> np.ndarray:
        """An RGB (H, W, 3) or gray (H, W) uint8 frame as the small gray image the flow compares."""
        gray = cv2.cvtColor(image, cv2.COLOR_RGB2GRAY) if image.ndim == 3 else image
        h, w = self.small_size(*gray.shape[:2])
        if (h, w) == gray.shape[:2]:
            return np.ascontiguousarray(gray)
        return cv2.resize(gray, (w, h), interpolation=cv2.INTER_AREA)

    def compute(self, current: np.ndarray, reference: np.ndarray) -> np.ndarray:
        """Flow (h, w, 2) float32 from ``current`` to ``reference`` (both from :meth:`prepare`)."""
        if current.shape != reference.shape:
            raise ValueError(f"flow: frames differ in size {current.shape} vs {reference.shape}")
        return np.asarray(self._dis.calc(current, reference, None))  # type: ignore[call-overload]  # stubs lack flow=None


def resize_flow(flow: np.ndarray, height: int, width: int) -> np.ndarray:
    """``flow`` resampled to ``height`` x ``width``, its vectors scaled to the new pixel size."""
    h, w = flow.shape[:2]
    if (h, w) == (height, width):
        return flow
    big = cv2.resize(flow, (width, height), interpolation=cv2.INTER_LINEAR)
    big[..., 0] *= width / w
    big[..., 1] *= height / h
    return big


_GRIDS: dict[tuple[int, int], tuple[np.ndarray, np.ndarray]] = {}


def _grid(height: int, width: int) -> tuple[np.ndarray, np.ndarray]:
    """Pixel coordinates (x, y), cached per size: building them costs as much as the warp."""
    key = (height, width)
    if key not in _GRIDS:
        xs, ys = np.meshgrid(np.arange(width, dtype=np.float32), np.arange(height, dtype=np.float32))
        _GRIDS[key] = (xs, ys)
    return _GRIDS[key]


def sampling_maps(flow: np.ndarray, height: int, width: int) -> tuple[np.ndarray, np.ndarray]:
    """cv2.remap maps (x + u, y + v) at ``height`` x ``width`` for a flow of any size."""
    big = resize_flow(flow, height, width)
    xs, ys = _grid(height, width)
    return xs + big[..., 0], ys + big[..., 1]


def warp_labels(labels: np.ndarray, flow: np.ndarray) -> np.ndarray:
    """The reference ``labels`` (H, W) pulled to the current frame along ``flow`` (current -> reference).

    Nearest-neighbour, so every pixel keeps a real class id; pixels whose
    source lies outside the frame take the nearest edge label.
    """
    map_x, map_y = sampling_maps(flow, *labels.shape[:2])
    return cv2.remap(labels, map_x, map_y, cv2.INTER_NEAREST, borderMode=cv2.BORDER_REPLICATE)


def warp_planes(planes: np.ndarray, flow: np.ndarray) -> np.ndarray:
    """Float (C, h, w) planes (class scores) pulled along ``flow``, bilinear, one plane at a time."""
    map_x, map_y = sampling_maps(flow, *planes.shape[1:])
    out = np.empty_like(planes)
    for c in range(planes.shape[0]):
        cv2.remap(planes[c], map_x, map_y, cv2.INTER_LINEAR, dst=out[c], borderMode=cv2.BORDER_REPLICATE)
    return out


def compose_flows(step: np.ndarray, accumulated: np.ndarray) -> np.ndarray:
    """Flow current -> key from ``step`` (current -> previous) and ``accumulated`` (previous -> key)."""
    h, w = step.shape[:2]
    map_x, map_y = sampling_maps(step, h, w)
    carried = cv2.remap(accumulated, map_x, map_y, cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE)
    return step + carried
