"""Frame to model input with torch ops, on CUDA (or the CPU, for tests): YUV/RGB -> resize -> normalize -> NCHW.

It reproduces ``CpuPreprocessor`` rather than approximating it. OpenCV's
shrink (``INTER_AREA``) and enlarge (``INTER_LINEAR``) are both separable
linear maps, so each becomes a pair of small matrices built once per frame
size, and the resize is two matmuls: ``rows @ image @ cols.T``. The result is
rounded as OpenCV's uint8 output is, then one multiply-add per channel
normalizes it straight into the zero-padded input tensor, in the model's
dtype (FP16 for FP16 models). NV12 from NVDEC converts to RGB first, with the
BT.601/BT.709 matrix the stream declares.
"""

from __future__ import annotations

import math
from typing import TYPE_CHECKING

import numpy as np

from streamseg.colorspace import rgb_from_nv12
from streamseg.frames import Geometry
from streamseg.models.spec import ModelSpec
from streamseg.preprocess.cpu import plan_geometry, uses_area

if TYPE_CHECKING:
    import torch


def area_matrix(src: int, dst: int) -> np.ndarray:
    """(dst, src) weights of OpenCV's INTER_AREA shrink: each output averages the inputs it covers."""
    scale = src / dst
    m = np.zeros((dst, src), np.float64)
    for i in range(dst):
        lo, hi = i * scale, min((i + 1) * scale, src)
        for j in range(int(math.floor(lo)), int(math.ceil(hi))):
            m[i, j] = min(hi, j + 1) - max(lo, j)
    return (m / m.sum(axis=1, keepdims=True)).astype(np.float32)


def linear_matrix(src: int, dst: int) -> np.ndarray:
    """(dst, src) weights of OpenCV's INTER_LINEAR: half-pixel centers, edges clamped."""
    scale = src / dst
    m = np.zeros((dst, src), np.float32)
    for i in range(dst):
        x = (i + 0.5) * scale - 0.5
        x0 = math.floor(x)
        frac = x - x0
        if x0 < 0:
            x0, frac = 0, 0.0
        if x0 >= src - 1:
            x0, frac = src - 1, 0.0
        m[i, x0] += 1.0 - frac
        m[i, min(x0 + 1, src - 1)] += frac
    return m


def resize_matrices(frame_size: tuple[int, int], content_size: tuple[int, int]) -> tuple[np.ndarray, np.ndarray]:
    """(rows, cols) matrices resizing a frame to ``content_size`` the way ``CpuPreprocessor`` does."""
    (fh, fw), (ch, cw) = frame_size, content_size
    make = area_matrix if uses_area(frame_size, content_size) else linear_matrix  # the CPU path's choice
    return make(fh, ch), make(fw, cw)


class TorchPreprocessor:
    """RGB uint8 (H, W, 3) or NV12 on a torch device -> the spec's (1, 3, H, W) input tensor there."""

    def __init__(self, spec: ModelSpec, device: str | torch.device = "cuda"):
        import torch

        self._torch = torch
        self.spec = spec
        self.device = torch.device(device)
        norm = spec.normalize
        std = np.asarray(norm.std or (1.0, 1.0, 1.0), np.float32)
        gain = (norm.range / 255.0) / std
        offset = -np.asarray(norm.mean, np.float32) / std
        self._gain = torch.as_tensor(gain, device=self.device).view(3, 1, 1)
        self._offset = torch.as_tensor(offset, device=self.device).view(3, 1, 1)
        self._channels = [2, 1, 0] if spec.color_order == "BGR" else [0, 1, 2]
        self.dtype = torch.float16 if spec.dtype == "float16" else torch.float32
        self._geometry: Geometry | None = None
        self._matrices: tuple | None = None  # (rows, cols) for the cached geometry

    def geometry(self, height: int, width: int) -> Geometry:
        g = self._geometry
        if g is None or g.frame_size != (height, width):
            g = self._geometry = plan_geometry(self.spec.resize, height, width)
            if g.content_size != g.frame_size:
                rows, cols = resize_matrices(g.frame_size, g.content_size)
                self._matrices = (
                    self._torch.from_numpy(rows).to(self.device),
                    self._torch.from_numpy(cols).to(self.device),
                )
            else:
                self._matrices = None
        return g

    def from_rgb(self, image) -> tuple[object, Geometry]:
        """Input tensor and geometry for an RGB uint8 (H, W, 3) tensor."""
        g = self.geometry(image.shape[0], image.shape[1])
        planes = image.permute(2, 0, 1)  # (3, H, W) view: the matmuls below read it strided
        return self._finish(planes, g), g

    def from_nv12(self, y, uv, *, matrix: str = "bt601", full_range: bool = False) -> tuple[object, Geometry]:
        """Input tensor and geometry for NV12 planes, e.g. DLPack views of an NVDEC frame."""
        g = self.geometry(y.shape[0], y.shape[1])
        return self._finish(rgb_from_nv12(y, uv, matrix=matrix, full_range=full_range), g), g

    def _finish(self, planes, g: Geometry):
        """Resize (two matmuls, rounded like uint8), normalize per channel and pad, in one output buffer."""
        torch = self._torch
        planes = planes.float()
        if self._matrices is not None:
            rows, cols = self._matrices
            planes = torch.matmul(torch.matmul(rows, planes), cols.T).round_().clamp_(0.0, 255.0)
        if self._channels != [0, 1, 2]:
            planes = planes[self._channels]
        ih, iw = g.input_size
        ch, cw = g.content_size
        out = (
            torch.zeros((1, 3, ih, iw), dtype=self.dtype, device=self.device)
            if (ih, iw) != (ch, cw)
            else torch.empty((1, 3, ih, iw), dtype=self.dtype, device=self.device)
        )
        out[0, :, :ch, :cw] = torch.addcmul(self._offset, planes, self._gain)
        if self.spec.layout == "NHWC":
            out = out.permute(0, 2, 3, 1).contiguous()
        return out
