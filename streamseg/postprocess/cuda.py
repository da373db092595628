"""Model output to a label map at frame size, with torch ops on the output's device.

Mirrors ``CpuPostprocessor``: argmax over the part of the output that covers
the frame, then nearest-neighbour upsampling as OpenCV's ``INTER_NEAREST``
picks pixels (source index ``floor(i * src / dst)``), done as one gather
with index vectors built once per geometry. DUC outputs resize their scores
bilinearly (half-pixel centers, as OpenCV) before the argmax.
"""

from __future__ import annotations

import numpy as np

from streamseg.errors import ModelError
from streamseg.frames import Geometry
from streamseg.models.spec import ModelSpec
from streamseg.postprocess.cpu import content_rows_cols


def nearest_index(src: int, dst: int) -> np.ndarray:
    """Source index per output pixel, as OpenCV's INTER_NEAREST computes it."""
    return np.minimum(np.floor(np.arange(dst) * (src / dst)).astype(np.int64), src - 1)


class TorchPostprocessor:
    """Raw outputs (torch tensors) to (H, W) uint8 label tensors on the same device."""

    def __init__(self, spec: ModelSpec):
        import torch

        self._torch = torch
        self.spec = spec
        self.decode = spec.decode
        self._gather: dict[tuple, tuple] = {}  # (label size, frame size, device) -> (row index, col index)

    def __call__(self, output, g: Geometry):
        """Labels for a one-frame output (N = 1)."""
        return self.batch(output, (g,))[0]

    def batch(self, output, geometries) -> list:
        """Labels per frame of an (N, ...) output, each frame at its own geometry."""
        if output.shape[0] != len(geometries):
            raise ModelError(f"output holds {output.shape[0]} frames for a batch of {len(geometries)}")
        return [self._labels(output[k : k + 1], g) for k, g in enumerate(geometries)]

    def _labels(self, output, g: Geometry):
        torch = self._torch
        kind = self.decode.kind
        fh, fw = g.frame_size
        if kind == "duc":
            scores = self.duc_scores(output, g)
            rows, cols = content_rows_cols(g, *scores.shape[1:])
            resized = torch.nn.functional.interpolate(
                scores[None, :, :rows, :cols].float(), size=(fh, fw), mode="bilinear", align_corners=False
            )
            return resized[0].argmax(0).to(torch.uint8)
        if kind == "labels":
            labels = output.reshape(output.shape[-2:])
            rows, cols = content_rows_cols(g, *labels.shape)
            labels = labels[:rows, :cols].to(torch.uint8)
        else:
            if output.ndim != 4 or output.shape[0] != 1:
                raise ModelError(f"expected (1, C, H, W) scores, got {tuple(output.shape)}")
            rows, cols = content_rows_cols(g, *output.shape[2:])
            labels = output[0, :, :rows, :cols].argmax(0).to(torch.uint8)
        if labels.shape != (fh, fw):
            row_index, col_index = self._indices(tuple(labels.shape), (fh, fw), labels.device)
            labels = labels.index_select(0, row_index).index_select(1, col_index)
        return labels

    def duc_scores(self, output, g: Geometry):
        """The zoo's DUC layout (1, C, h*w*r*r) to scores (C, H*r/cell, W*r/cell)."""
        r, cell = self.decode.subpixels, self.decode.cell
        fh, fw = g.input_size[0] // cell, g.input_size[1] // cell
        classes = output.shape[1]
        if output.numel() != classes * r * r * fh * fw:
            raise ModelError(
                f"DUC output {tuple(output.shape)} does not fit a {g.input_size[0]}x{g.input_size[1]} "
                f"input (expected {classes}x{r * r * fh * fw})"
            )
        return output.reshape(classes, r, r, fh, fw).permute(0, 3, 1, 4, 2).reshape(classes, fh * r, fw * r)

    def _indices(self, src: tuple[int, int], dst: tuple[int, int], device) -> tuple:
        key = (src, dst, str(device))
        found = self._gather.get(key)
        if found is None:
            torch = self._torch
            found = self._gather[key] = (
                torch.from_numpy(nearest_index(src[0], dst[0])).to(device),
                torch.from_numpy(nearest_index(src[1], dst[1])).to(device),
            )
        return found
