"""Labels carried along the decoder's own motion vectors: no flow to compute, they come with the decode.

H.264/HEVC decoders export each inter block's vector when asked (codec option
``flags2=+export_mvs``); PyAV hands them over as the frame's ``MOTION_VECTORS``
side data, one record per block: its size ``w`` x ``h``, its centre ``dst_x``,
``dst_y`` in this frame, and ``motion_x / motion_scale``, ``motion_y /
motion_scale``, the offset to where the block's pixels come from in the
reference. That is the same backward field as ``streamseg.temporal.flow``'s
(``current(x) ~ reference(x + flow(x))``), at block resolution, so the labels
are pulled with the same ``warp_labels``.

Vectors from a future reference (``source`` > 0, B-frames) are left out, and
intra blocks have none: those cells keep zero motion. A frame with no vectors
at all (intra frames, codecs or decoders that export none) gets DIS flow
instead, and the first such frame is logged once.
"""

from __future__ import annotations

import logging

import av
import numpy as np

from streamseg.temporal.flow import DenseFlow

log = logging.getLogger(__name__)

CELL = 4  # H.264's smallest partition: the field's grid step, in pixels
EXPORT_OPTIONS = {"flags2": "+export_mvs"}  # codec options that make the decoder attach the vectors


def export_vectors(stream: av.video.stream.VideoStream) -> None:
    """Ask ``stream``'s decoder for motion vectors; call before the first decode."""
    stream.codec_context.options = {**stream.codec_context.options, **EXPORT_OPTIONS}


def frame_vectors(frame: av.VideoFrame) -> np.ndarray | None:
    """The decoded ``frame``'s motion vectors as a numpy record array, or None when it has none."""
    data = frame.side_data.get("MOTION_VECTORS")
    if data is None:
        return None
    vectors = data.to_ndarray()
    return vectors if len(vectors) else None


def vector_field(vectors: np.ndarray, height: int, width: int) -> np.ndarray:
    """Backward displacement (current -> reference) on a ``CELL``-pixel grid, for ``flow.warp_labels``.

    Shape (ceil(height / CELL), ceil(width / CELL), 2), float32, in units of
    grid cells scaled so that ``flow.resize_flow`` to (height, width) gives pixels.
    """
    rows, cols = -(-height // CELL), -(-width // CELL)
    field = np.zeros((rows, cols, 2), np.float32)
    past = vectors[vectors["source"] < 0]
    scale = np.maximum(past["motion_scale"], 1).astype(np.float32)
    dx = past["motion_x"] / scale
    dy = past["motion_y"] / scale
    # one vectorized fill per block shape (H.264 has seven): each block covers (h/CELL) x (w/CELL) cells
    shapes = past["w"].astype(np.int32) * 256 + past["h"]
    for shape in np.unique(shapes):
        pick = shapes == shape
        bw, bh = max(1, int(shape) // 256 // CELL), max(1, int(shape) % 256 // CELL)
        top = (past["dst_y"][pick].astype(np.int32) - bh * CELL // 2) // CELL
        left = (past["dst_x"][pick].astype(np.int32) - bw * CELL // 2) // CELL
        ys = (top[:, None, None] + np.arange(bh)[None, :, None]).clip(0, rows - 1)
        xs = (left[:, None, None] + np.arange(bw)[None, None, :]).clip(0, cols - 1)
        ys, xs = np.broadcast_arrays(ys, xs)
        field[ys, xs, 0] = dx[pick][:, None, None]
        field[ys, xs, 1] = dy[pick][:, None, None]
    field[..., 0] *= cols / width  # pixels -> the grid's units, undone by resize_flow's scaling
    field[..., 1] *= rows / height
    return field


class VectorFlow:
    """Flow of a frame back to the one before it: its motion vectors where it has some, else DIS."""

    def __init__(self, fallback: DenseFlow | None = None):
        self.fallback = fallback or DenseFlow()
        self.fell_back = 0  # frames that had no vectors

    def step(self, vectors: np.ndarray | None, current: np.ndarray, previous: np.ndarray) -> np.ndarray:
        """Flow ``current`` -> ``previous`` (RGB or gray frames at full size) for ``flow.warp_labels``."""
        height, width = current.shape[:2]
        if vectors is not None and len(vectors):
            return vector_field(vectors, height, width)
        if not self.fell_back:
            log.info("a frame without motion vectors (intra frame, or none exported): DIS optical flow for such frames")
        self.fell_back += 1
        return self.fallback.compute(self.fallback.prepare(current), self.fallback.prepare(previous))
