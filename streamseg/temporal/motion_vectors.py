"""Labels carried along the decoder's own motion vectors: no flow to compute, they come with the decode.

A source asked for them (``streamseg.sources.vectors``) puts each frame's
H.264/HEVC block vectors on its ``Frame``: one record per block, its size
``w`` x ``h``, its centre ``dst_x``, ``dst_y`` in this frame, and
``motion_x / motion_scale``, ``motion_y / motion_scale``, the offset to where
the block's pixels come from in the reference. That is the same backward
field as ``streamseg.temporal.flow``'s (``current(x) ~ reference(x + flow(x))``),
at block resolution, so the labels are pulled with the same ``warp_labels``;
``VectorChain`` composes the fields since the key frame into one.

Vectors from a future reference (``source`` > 0, B-frames) are left out, and
intra blocks have none: those cells keep zero motion. A frame with no vectors
at all (intra frames, codecs or decoders that export none) gets DIS flow
instead, and the first such frame is logged once.
"""

from __future__ import annotations

import logging

import numpy as np

from streamseg.temporal.flow import DenseFlow, compose_flows, resize_flow

log = logging.getLogger(__name__)

CELL = 4  # H.264's smallest partition: the field's grid step, in pixels


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


class VectorChain:
    """Flow from each frame back to the key (last inferred) frame, composed from the decoder's motion vectors.

    A frame's vectors give its flow to the frame before it; composed with that frame's flow to the key
    (``flow.compose_flows``), they give its own, with no flow computed. A frame without vectors (an intra
    frame, or a stream whose codec or decoder exports none) gets DIS flow straight to the key, as
    ``--propagate flow`` computes it, and the chain goes on from there. The first such frame is logged once:
    as a warning when no frame had vectors before it (the stream may have none), else as information. A
    frame that does not follow the last one given (a live source dropped the frames between) gets DIS too:
    its vectors point at a frame the chain never saw. Not thread-safe: one per source, in its preprocess thread.
    """

    def __init__(self, name: str = "", fallback: DenseFlow | None = None):
        self.name = name  # the source, for the log line
        self.fallback = fallback or DenseFlow()
        self.by_vectors = 0  # flows made from a frame's vectors
        self.fell_back = 0  # flows made by DIS, for frames without vectors
        self._told = False  # the fallback was logged
        self.reset()

    def reset(self) -> None:
        """Forget the key frame (a reconnect): there is no flow until the next one."""
        self._key: np.ndarray | None = None  # the key frame, made small for DIS only once a frame needs it
        self._key_small: np.ndarray | None = None
        self._to_key: np.ndarray | None = None  # the last frame's flow to the key; None: that frame is the key
        self._last = -1  # the index of the last frame given

    def set_key(self, image: np.ndarray, index: int) -> None:
        """Frame ``index`` (``image``: RGB, full size) is the new key frame: flows start from it."""
        self._key, self._key_small, self._to_key, self._last = image, None, None, index

    def to_key(self, image: np.ndarray, vectors: np.ndarray | None, index: int) -> tuple[np.ndarray | None, str]:
        """Flow from frame ``index`` (RGB, full size) to the key frame, and what it came from: ``"mv"`` (its
        vectors) or ``"flow"`` (DIS). No flow (None, ``"held"``) before the first key."""
        if self._key is None:
            return None, "held"
        follows, self._last = index == self._last + 1, index
        if follows and vectors is not None and len(vectors):
            self.by_vectors += 1
            step = vector_field(vectors, *image.shape[:2])
            to_key = self._to_key
            self._to_key = step if to_key is None else compose_flows(step, resize_flow(to_key, *step.shape[:2]))
            return self._to_key, "mv"
        if follows and not self._told:
            self._told = True
            level = logging.INFO if self.by_vectors else logging.WARNING
            log.log(level, "%s: a frame without motion vectors: DIS optical flow for such frames", self.name)
        self.fell_back += 1
        if self._key_small is None:
            self._key_small = self.fallback.prepare(self._key)
        self._to_key = self.fallback.compute(self.fallback.prepare(image), self._key_small)
        return self._to_key, "flow"
