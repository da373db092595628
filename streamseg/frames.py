"""Small immutable records that travel between the pipeline stages.

Data flows one way: a decoded ``Frame`` becomes a ``Prepared`` input tensor,
then an ``Inferred`` raw model output, then a ``Result`` with its label map
and composited picture.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from fractions import Fraction

import av
import numpy as np


@dataclass(frozen=True, slots=True)
class Yuv420Planes:
    """A decoded 4:2:0 picture's planes, uint8 views on the decoder's own buffers (no copy, read only):
    ``y`` (H, W), ``u`` and ``v`` (H / 2, W / 2)."""

    y: np.ndarray
    u: np.ndarray
    v: np.ndarray


@dataclass(frozen=True, slots=True)
class Frame:
    """One decoded picture, RGB ``uint8`` of shape (H, W, 3): a NumPy array, or a CUDA tensor from NVDEC."""

    source: str
    index: int
    image: np.ndarray
    pts: int | None
    time_base: Fraction | None
    capture_time: float  # time.time() when the decoder produced it
    # the decoder's motion vectors (MOTION_VECTORS records, ``streamseg.sources.vectors``), when the source was
    # asked for them and the frame has some; None otherwise (intra frames, codecs that export none)
    vectors: np.ndarray | None = None
    # the decoder's own 4:2:0 picture: when the source was asked for it and decoded video-range 4:2:0 at an even
    # size, upright; None otherwise
    planes: Yuv420Planes | None = None

    @property
    def on_device(self) -> bool:
        """True when ``image`` is a GPU tensor (NVDEC decode), False for a host NumPy array."""
        return not isinstance(self.image, np.ndarray)

    @property
    def time(self) -> float | None:
        """Presentation time in seconds, when the stream gave one."""
        if self.pts is None or self.time_base is None:
            return None
        return float(self.pts * self.time_base)


@dataclass(frozen=True, slots=True)
class Geometry:
    """Where the frame sits inside the model input: scale, then pad right/bottom."""

    frame_size: tuple[int, int]  # (H, W) of the frame
    content_size: tuple[int, int]  # (H, W) of the resized frame inside the input
    input_size: tuple[int, int]  # (H, W) of the model input, padding included


@dataclass(frozen=True, slots=True)
class Prepared:
    frame: Frame
    tensor: np.ndarray  # model input, e.g. (1, 3, H, W) float32
    geometry: Geometry


@dataclass(frozen=True, slots=True)
class Inferred:
    frame: Frame
    output: np.ndarray  # the model's raw output for this frame
    geometry: Geometry


@dataclass(frozen=True, slots=True)
class Result:
    """A segmented frame, as handed to sinks and to Python API users."""

    source: str
    index: int
    pts: int | None
    time_base: Fraction | None
    capture_time: float
    frame: np.ndarray  # the decoded picture, RGB uint8 (H, W, 3)
    labels: np.ndarray  # class ids, uint8 (H, W)
    # the composited picture as the compositor drew it: RGB uint8 (H, W, 3), or I420 (H * 3 / 2, W: Y's rows, then
    # U's, then V's, as OpenCV's *_I420 conversions lay them out) where it blended on the decoder's own 4:2:0
    # picture (``Frame.planes``), which encoders take as it is
    composited: np.ndarray
    latency: float  # seconds from capture to the end of compositing
    scores: np.ndarray | None = None  # per-class scores, when asked for
    # "inferred", or carried from an earlier inferred frame: warped along "flow" (DIS) or "mv" (motion vectors), "held"
    origin: str = "inferred"
    age_frames: int = 0  # frames since the inferred frame these labels come from
    age_ms: float = 0.0  # capture-time difference to that frame
    coverage: dict[str, dict[str, float]] | None = None  # with regions: region -> class -> share of its pixels
    _rgb: np.ndarray | None = field(default=None, init=False, repr=False, compare=False)

    @property
    def time(self) -> float | None:
        if self.pts is None or self.time_base is None:
            return None
        return float(self.pts * self.time_base)

    @property
    def picture(self) -> np.ndarray:
        """The composited picture, RGB uint8 (H, W, 3): converted from I420 on first use where drawn that way."""
        if self.composited.ndim == 3:
            return self.composited
        if self._rgb is None:  # frozen: the cache is the one field set after construction
            # by the sources' own conversion (swscale), so the pixels left undrawn are the frame's exactly
            planes = av.VideoFrame.from_numpy_buffer(self.composited, format="yuv420p")
            object.__setattr__(self, "_rgb", planes.to_ndarray(format="rgb24", threads=1))
        assert self._rgb is not None
        return self._rgb

    @property
    def size(self) -> tuple[int, int]:
        """(height, width) of the composited picture."""
        return picture_size(self.composited)

    @classmethod
    def of(
        cls,
        frame: Frame,
        labels: np.ndarray,
        composited: np.ndarray,
        *,
        image: np.ndarray | None = None,
        scores: np.ndarray | None = None,
        origin: str = "inferred",
        age_frames: int = 0,
        age_ms: float = 0.0,
    ) -> Result:
        """The result for ``frame``: its identity and timestamps carried over, the latency taken now.
        ``image`` is the host copy of a frame decoded on the device."""
        return cls(
            frame.source,
            frame.index,
            frame.pts,
            frame.time_base,
            frame.capture_time,
            frame.image if image is None else image,
            labels,
            composited,
            time.time() - frame.capture_time,
            scores,
            origin,
            age_frames,
            age_ms,
        )


def picture_size(picture: np.ndarray) -> tuple[int, int]:
    """(height, width) of a picture: RGB (H, W, 3), or I420 planes (H * 3 / 2, W)."""
    rows, width = picture.shape[:2]
    return (rows, width) if picture.ndim == 3 else (rows * 2 // 3, width)


@dataclass(frozen=True, slots=True)
class StreamInfo:
    name: str  # for logs: credentials already removed
    width: int
    height: int
    time_base: Fraction
    rate: Fraction | None  # nominal frame rate, when known
    frames: int | None  # frame count, when the container says
    live: bool
    audio_from: str | None = None  # a file whose audio sinks may copy
