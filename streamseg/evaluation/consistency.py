"""Temporal consistency (TC) without ground truth, as VSPW defines it.

For each pair of consecutive frames, the prediction of t+1 is warped back to t
along the optical flow t -> t+1, and compared with the prediction of t. Pixels
of every pair land in one confusion matrix per video (prediction t as the
"truth", the warped t+1 as the "prediction"), so a video's TC is the mIoU of
its summed intersections and unions, as VSPW's TC sums them over a clip.

A model that flickers between classes where nothing moved scores low; one
whose labels move with the picture scores near 1. The flow is OpenCV's DIS
(``streamseg.temporal.flow``), not VSPW's RAFT: figures compare between
settings measured here, not with VSPW's published ones.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from streamseg.evaluation.metrics import ConfusionMatrix
from streamseg.temporal.flow import DenseFlow, warp_labels


class TemporalConsistency:
    """Accumulates TC over one video's frames, fed in order with :meth:`update`."""

    def __init__(self, num_classes: int, flow: DenseFlow | None = None):
        self.flow = flow or DenseFlow()
        self.confusion = ConfusionMatrix(num_classes)
        self.pairs = 0
        self._previous: tuple[np.ndarray, np.ndarray] | None = None  # (small gray frame, labels) of t

    def update(self, image: np.ndarray, labels: np.ndarray) -> None:
        """Add frame t+1 (RGB or gray uint8) and its (H, W) labels; compares them with the frame before."""
        if labels.shape != image.shape[:2]:
            raise ValueError(f"labels {labels.shape} do not cover the frame {image.shape[:2]}")
        small = self.flow.prepare(image)
        if self._previous is not None:
            before, before_labels = self._previous
            if before.shape == small.shape:  # a size change starts a new run of pairs
                # flow from t to t+1: frame_t(x) ~ frame_t+1(x + flow(x)), so t+1's labels pulled along it land on t
                back = warp_labels(labels, self.flow.compute(before, small))
                self.confusion.update(back, before_labels)
                self.pairs += 1
        self._previous = (small, labels)

    @property
    def tc(self) -> float:
        """mIoU between each frame's labels and the next frame's warped back; NaN before the first pair."""
        return self.confusion.compute().miou if self.pairs else float("nan")


@dataclass(frozen=True)
class VideoConsistency:
    video: str
    frames: int
    pairs: int
    tc: float

    def as_dict(self) -> dict:
        return {"video": self.video, "frames": self.frames, "pairs": self.pairs, "tc": self.tc}


def sequence_consistency(
    images: Iterable[np.ndarray], labels: Iterable[np.ndarray], num_classes: int, flow: DenseFlow | None = None
) -> float:
    """TC of label maps over their frames, both in order."""
    meter = TemporalConsistency(num_classes, flow)
    for image, frame_labels in zip(images, labels, strict=True):
        meter.update(image, frame_labels)
    return meter.tc


def video_consistency(
    videos: Iterable[str | Path],
    segment: Callable[[np.ndarray], np.ndarray],
    num_classes: int,
    *,
    frames: int | None = None,
) -> list[VideoConsistency]:
    """TC per video of ``segment`` (RGB frame -> labels at frame size) over its first ``frames`` frames."""
    from streamseg.sources import open_source

    reports = []
    for video in videos:
        meter = TemporalConsistency(num_classes)
        source = open_source(str(video), max_frames=frames)
        count = 0
        try:
            for frame in source.frames():
                meter.update(frame.image, segment(frame.image))
                count += 1
        finally:
            source.close()
        reports.append(VideoConsistency(str(video), count, meter.pairs, meter.tc))
    return reports


def model_consistency(
    model: str | Path,
    videos: Iterable[str | Path],
    *,
    frames: int | None = None,
    input_size: int | None = None,
    backend: str = "onnxruntime",
    threads: int | None = None,
) -> tuple[list[VideoConsistency], str]:
    """TC per video of ``model`` run on every frame; returns the reports and the model's name."""
    import time

    from streamseg.backends import create_backend
    from streamseg.frames import Frame
    from streamseg.models import open_model
    from streamseg.postprocess.cpu import CpuPostprocessor
    from streamseg.preprocess.cpu import CpuPreprocessor

    handle = open_model(model)
    handle = handle.with_spec(handle.spec.with_short_side(input_size))
    spec = handle.spec
    runner = create_backend(backend, handle, threads=threads)
    prepare, decode = CpuPreprocessor(spec), CpuPostprocessor(spec)

    def segment(image: np.ndarray) -> np.ndarray:
        prepared = prepare(Frame("tc", 0, image, None, None, time.time()))
        output = runner.run(prepared.tensor)
        if hasattr(output, "detach"):  # GPU backends hand back device tensors
            output = output.detach().float().cpu().numpy()
        return decode(np.asarray(output), prepared.geometry)

    try:
        return video_consistency(videos, segment, spec.num_classes, frames=frames), spec.name
    finally:
        runner.close()
