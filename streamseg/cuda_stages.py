"""The preprocess, infer and composite stages on a CUDA device, for backends that run there.

``Pipeline`` swaps these in for its CPU stages when the backend says
``device == "cuda"``; the CPU path is untouched. A decoded frame is uploaded
once (through a reused pinned buffer), stays on the GPU through
preprocessing, inference, argmax, upsampling and compositing, and only the
composited picture and the label map come back to the host, where the
encoder and the label sinks want them.

Each stage runs in its own thread on its own CUDA stream, and synchronizes
that stream before handing its tensors on, so the next stage (another thread,
another stream) reads finished data.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any

import numpy as np

from streamseg.composite.gpu import TorchCompositor
from streamseg.composite.overlay import Compositor
from streamseg.frames import Frame, Geometry, Result
from streamseg.models.spec import ModelSpec
from streamseg.postprocess.cpu import CpuPostprocessor
from streamseg.postprocess.gpu import TorchPostprocessor
from streamseg.preprocess.gpu import TorchPreprocessor


@dataclass(frozen=True, slots=True)
class DevicePrepared:
    frame: Frame  # the host record, as decoded
    image: Any  # the frame on the device, uint8 (H, W, 3)
    tensor: Any  # model input on the device
    geometry: Geometry


@dataclass(frozen=True, slots=True)
class DeviceInferred:
    frame: Frame
    image: Any
    output: Any  # raw model output on the device
    geometry: Geometry


class CudaStages:
    """preprocess -> infer -> composite with torch tensors on ``device``."""

    def __init__(self, backend, spec: ModelSpec, compositor: Compositor, *, scores: bool = False,
                 device: str = "cuda"):
        import torch

        self._torch = torch
        self.backend = backend
        self.device = torch.device(device)
        # the backend's spec may say float16 (an FP16 engine): preprocess straight into that dtype
        input_spec = spec.model_copy(update={"dtype": getattr(getattr(backend, "spec", spec), "dtype", spec.dtype)})
        self.pre = TorchPreprocessor(input_spec, device)
        self.post = TorchPostprocessor(spec)
        self.draw = TorchCompositor(compositor, device)
        self.cpu_post = CpuPostprocessor(spec) if scores else None  # Python API's raw scores, rarely asked for
        cuda = self.device.type == "cuda"
        self._upload_stream = torch.cuda.Stream(self.device) if cuda else None
        self._draw_stream = torch.cuda.Stream(self.device) if cuda else None
        self._pinned = None  # reused page-locked staging buffer for uploads

    def preprocess(self, frame: Frame) -> DevicePrepared:
        with self._on(self._upload_stream):
            image = self.upload(frame.image)
            tensor, geometry = self.pre.from_rgb(image)
        self._sync(self._upload_stream)
        return DevicePrepared(frame, image, tensor, geometry)

    def upload(self, image):
        """A host RGB frame to the device, once, through pinned memory (a device tensor passes through)."""
        torch = self._torch
        if not isinstance(image, np.ndarray):
            return image.to(self.device)
        if self.device.type != "cuda":
            return torch.from_numpy(image)
        if self._pinned is None or self._pinned.shape != image.shape:
            self._pinned = torch.empty(image.shape, dtype=torch.uint8, pin_memory=True)
        self._pinned.numpy()[...] = image  # safe to reuse: the previous copy finished at the last sync
        return self._pinned.to(self.device, non_blocking=True)

    def infer(self, item: DevicePrepared) -> DeviceInferred:
        return DeviceInferred(item.frame, item.image, self.backend.run(item.tensor), item.geometry)

    def composite(self, item: DeviceInferred) -> Result:
        frame, g = item.frame, item.geometry
        with self._on(self._draw_stream):
            labels = self.post(item.output, g)
            picture = self.draw(item.image, labels)
            picture_host, labels_host = picture.cpu().numpy(), labels.cpu().numpy()  # the only crossings back
        scores = None
        if self.cpu_post is not None:
            scores = self.cpu_post.scores(item.output.float().cpu().numpy(), g)
        image = frame.image if isinstance(frame.image, np.ndarray) else item.image.cpu().numpy()
        return Result(frame.source, frame.index, frame.pts, frame.time_base, frame.capture_time,
                      image, labels_host, picture_host, time.time() - frame.capture_time, scores)

    def _on(self, stream):
        import contextlib

        return self._torch.cuda.stream(stream) if stream is not None else contextlib.nullcontext()

    @staticmethod
    def _sync(stream) -> None:
        if stream is not None:
            stream.synchronize()
