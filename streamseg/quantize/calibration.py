"""Calibration frames from the user's own footage, preprocessed exactly as the pipeline does.

Frames are spread evenly over each video (and over the videos, by length),
decoded by the pipeline's source and turned into model inputs by the
pipeline's ``CpuPreprocessor``, so the ranges INT8 learns are the ranges it
will meet when ``streamseg run`` feeds it.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from streamseg.errors import SourceError
from streamseg.frames import Frame
from streamseg.models.spec import ModelSpec
from streamseg.preprocess.cpu import CpuPreprocessor
from streamseg.sources import open_source

VIDEO_SUFFIXES = {".mp4", ".mkv", ".mov", ".avi", ".webm", ".m4v", ".ts", ".mpg", ".mpeg", ".flv"}
IMAGE_SUFFIXES = {".jpg", ".jpeg", ".png", ".bmp", ".webp"}


@dataclass(frozen=True)
class Picked:
    """Where one sampled frame came from."""

    path: Path
    index: int  # frame index in the video (0 for a still image)
    image: np.ndarray  # RGB uint8


def media_files(calib: str | Path) -> list[Path]:
    """A video or image file, or every video and image in a folder (sorted, not recursive)."""
    path = Path(calib)
    if path.is_file():
        return [path]
    if not path.is_dir():
        raise SourceError(f"calibration input not found: {path}")
    found = sorted(p for p in path.iterdir() if p.is_file() and p.suffix.lower() in VIDEO_SUFFIXES | IMAGE_SUFFIXES)
    if not found:
        raise SourceError(
            f"{path}: no videos or images to calibrate on ({', '.join(sorted(VIDEO_SUFFIXES | IMAGE_SUFFIXES))})"
        )
    return found


def spread_indices(count: int, n: int, phase: float = 0.5) -> list[int]:
    """``n`` distinct frame indices spread evenly over ``count`` frames.

    ``phase`` places each pick inside its stretch (0 = start, 0.5 = middle);
    evaluation uses another phase than calibration so that, on the same video,
    it looks at frames INT8 was not calibrated on.
    """
    n = max(0, min(n, count))
    return sorted({min(count - 1, int((i + phase) * count / n)) for i in range(n)}) if n else []


def _frame_count(path: Path) -> int:
    source = open_source(str(path))
    try:
        if source.info.frames:
            return source.info.frames
        return sum(1 for _ in source.frames())  # the container does not say: count by decoding
    finally:
        source.close()


def sample_frames(files: list[Path], n: int, *, phase: float = 0.5) -> list[Picked]:
    """``n`` frames spread over ``files`` (videos in proportion to their length; an image counts once)."""
    counts = [1 if f.suffix.lower() in IMAGE_SUFFIXES else _frame_count(f) for f in files]
    total = sum(counts)
    if total == 0:
        raise SourceError("no frames to sample in the calibration input")
    n = min(n, total)
    # largest-remainder split of n over the files, each with at least one pick while picks remain
    shares = np.array(counts, float) * n / total
    quota = np.minimum(np.floor(shares).astype(int), counts)
    for i in np.argsort(-(shares - quota)):
        if quota.sum() >= n:
            break
        if quota[i] < counts[i]:
            quota[i] += 1
    picked: list[Picked] = []
    for path, count, k in zip(files, counts, quota):
        if k:
            picked.extend(_pick(path, spread_indices(count, int(k), phase)))
    return picked


def _pick(path: Path, indices: list[int]) -> Iterator[Picked]:
    if path.suffix.lower() in IMAGE_SUFFIXES:
        from PIL import Image

        try:
            with Image.open(path) as image:
                yield Picked(path, 0, np.asarray(image.convert("RGB")))
        except OSError as err:
            raise SourceError(f"cannot read {path}: {err}") from None
        return
    wanted = set(indices)
    source = open_source(str(path))
    try:
        for frame in source.frames():
            if frame.index in wanted:
                yield Picked(path, frame.index, frame.image)
                wanted.discard(frame.index)
                if not wanted:
                    return
    finally:
        source.close()


def preprocess(picked: list[Picked], spec: ModelSpec) -> list[np.ndarray]:
    """Model inputs for the sampled frames, from the pipeline's own preprocessor."""
    prepare = CpuPreprocessor(spec)
    return [prepare(Frame(str(p.path), p.index, p.image, None, None, time.time())).tensor for p in picked]


class TensorReader:
    """ONNX Runtime ``CalibrationDataReader`` over ready tensors.

    ``__len__`` and ``set_range`` let ``quantize_static`` take one frame at a
    time (``CalibStridedMinMax``): the calibration model's outputs, every
    activation of the network, never pile up in memory for all frames.
    """

    def __init__(self, input_name: str, tensors: list[np.ndarray]):
        self.input_name = input_name
        self.tensors = tensors
        self.set_range(0, len(tensors))

    def __len__(self) -> int:
        return len(self.tensors)

    def set_range(self, start_index: int, end_index: int) -> None:
        self._iter = iter(self.tensors[start_index:end_index])

    def get_next(self) -> dict[str, np.ndarray] | None:
        tensor = next(self._iter, None)
        return None if tensor is None else {self.input_name: tensor}

    def rewind(self) -> None:
        self.set_range(0, len(self.tensors))
