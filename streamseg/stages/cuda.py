"""The preprocess, infer and composite steps on a CUDA device, for backends that run there.

``make_stages`` picks these when the backend says ``device == "cuda"``. A
decoded frame is uploaded once (through a pinned buffer its source's lane
reuses), stays on the GPU through preprocessing, inference, argmax, upsampling
and compositing, and only the composited picture and the label map come back
to the host, where the encoder and the label sinks want them.

Each step runs in its own thread on its own CUDA stream, and synchronizes that
stream before handing its tensors on, so the next step (another thread, another
stream) reads finished data.
"""

from __future__ import annotations

import contextlib
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np

from streamseg.backends.base import input_spec
from streamseg.composite.cuda import TorchCompositor
from streamseg.composite.overlay import Compositor
from streamseg.frames import Frame, Geometry, Result
from streamseg.models.spec import ModelSpec
from streamseg.postprocess.cpu import CpuPostprocessor
from streamseg.postprocess.cuda import TorchPostprocessor
from streamseg.preprocess.cuda import TorchPreprocessor
from streamseg.stages.steps import PlainSteps

if TYPE_CHECKING:
    from torch import Tensor


@dataclass(frozen=True, slots=True)
class DevicePrepared:
    frame: Frame  # the host record, as decoded
    image: Any  # the frame on the device, uint8 (H, W, 3)
    tensor: Any  # model input on the device, (1, ...)
    geometry: Geometry


@dataclass(frozen=True, slots=True)
class DeviceInferred:
    frame: Frame
    image: Any
    output: Any  # raw model output on the device, (1, ...)
    geometry: Geometry


class CudaLane(PlainSteps):
    """One source's upload + preprocess and composite, each on its own CUDA stream."""

    def __init__(self, stages: CudaStages):
        torch = stages.torch
        self._stages = stages
        self.spec = stages.input_spec
        self._pre = TorchPreprocessor(stages.input_spec, stages.device)
        cuda = stages.device.type == "cuda"
        self._upload_stream = torch.cuda.Stream(stages.device) if cuda else None
        self._draw_stream = torch.cuda.Stream(stages.device) if cuda else None
        self._pinned: Tensor | None = None  # page-locked staging buffer, reused while the frame size holds

    def preprocess(self, frame: Frame) -> DevicePrepared:
        with _on(self._stages.torch, self._upload_stream):
            image = frame.image if frame.on_device else self._upload(frame.image)  # NVDEC frames are there already
            tensor, geometry = self._pre.from_rgb(image)
        _sync(self._upload_stream)
        return DevicePrepared(frame, image, tensor, geometry)

    def _upload(self, image: np.ndarray):
        torch, device = self._stages.torch, self._stages.device
        if device.type != "cuda":
            return torch.from_numpy(image)
        pinned = self._pinned
        if pinned is None or pinned.shape != image.shape:
            pinned = self._pinned = torch.empty(image.shape, dtype=torch.uint8, pin_memory=True)
        pinned.numpy()[...] = image  # safe to reuse: the previous copy finished at the last sync
        return pinned.to(device, non_blocking=True)

    def composite(self, item: DeviceInferred) -> Result:
        frame, g, stages = item.frame, item.geometry, self._stages
        with _on(stages.torch, self._draw_stream):
            labels = stages.post(item.output, g)
            picture = stages.draw(item.image, labels)
            picture_host, labels_host = picture.cpu().numpy(), labels.cpu().numpy()  # the only crossings back
        scores = None
        if stages.cpu_post is not None:
            scores = stages.cpu_post.scores(item.output.float().cpu().numpy(), g)
        image_host = item.image.cpu().numpy() if frame.on_device else frame.image  # an NVDEC frame crosses once
        return Result.of(frame, labels_host, picture_host, image=image_host, scores=scores)


class CudaStages:
    """preprocess -> infer -> composite with torch tensors on ``device``."""

    # no lane plug-ins yet: temporal steps compute optical flow and scores on the host (streamseg.temporal.steps)
    plugins: frozenset[str] = frozenset()

    def __init__(self, backend, spec: ModelSpec, compositor: Compositor, *, scores: bool = False, device: str = "cuda"):
        import torch

        self.torch = torch
        self.backend = backend
        self.device = torch.device(device)
        # an FP16 engine takes float16 input: preprocess straight into the dtype the backend declares
        self.input_spec = input_spec(spec, backend)
        self.post = TorchPostprocessor(spec)
        self.draw = TorchCompositor(compositor, device)
        self.cpu_post = CpuPostprocessor(spec) if scores else None  # Python API's raw scores, rarely asked for

    def lane(self) -> CudaLane:
        return CudaLane(self)

    def infer(self, items: Sequence[DevicePrepared]) -> list[DeviceInferred]:
        """One backend call for the batch (stacked on the device), split back into per-frame views."""
        torch = self.torch
        tensor = items[0].tensor if len(items) == 1 else torch.cat([item.tensor for item in items])
        output = self.backend.run(tensor)
        return [
            DeviceInferred(item.frame, item.image, output[k : k + 1], item.geometry) for k, item in enumerate(items)
        ]

    def prepare(self, input_shape: tuple[int, ...]) -> None:
        self.backend.prepare(input_shape)


def _on(torch, stream):
    return torch.cuda.stream(stream) if stream is not None else contextlib.nullcontext()


def _sync(stream) -> None:
    if stream is not None:
        stream.synchronize()
