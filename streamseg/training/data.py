"""Training and evaluation samples as tensors, with the standard augmentation.

Training: random resize of the short side to 0.5-2.0 x ``base_size``, pad
(image 0, mask 255) and random crop to ``crop_size``, horizontal flip.
Evaluation: the short side resized to ``base_size``, as ``streamseg run``
does with the exported spec; the mask keeps its size, so scores are
upsampled to it before the argmax. Both normalize with the ImageNet mean and
std, which the exported spec repeats.

Random numbers come from torch, so a seeded run (and a DataLoader worker,
seeded by the loader) repeats exactly.
"""

from __future__ import annotations

import cv2
import numpy as np

from streamseg.datasets.folders import IGNORE_INDEX, SegmentationFolder
from streamseg.models.torch_compat import import_torch
from streamseg.preprocess.cpu import resize_as_run

MEAN = (0.485, 0.456, 0.406)
STD = (0.229, 0.224, 0.225)


def _normalize(image: np.ndarray):
    torch = import_torch()
    x = (image.astype(np.float32) / 255 - np.array(MEAN, np.float32)) / np.array(STD, np.float32)
    return torch.from_numpy(np.ascontiguousarray(x.transpose(2, 0, 1)))


def _resize_short(image: np.ndarray, short: int, interpolation: int | None = None) -> np.ndarray:
    """``image`` with its short side ``short``; ``interpolation`` None: the one ``run`` would use (``uses_area``)."""
    h, w = image.shape[:2]
    scale = short / min(h, w)
    size = (max(1, round(h * scale)), max(1, round(w * scale)))
    if interpolation is None:
        return resize_as_run(image, size)
    return cv2.resize(image, size[::-1], interpolation=interpolation)


def _limit_classes(mask: np.ndarray, num_classes: int) -> np.ndarray:
    """Class ids the model does not have become ignore, so a smaller --num-classes trains on a subset."""
    return np.where(mask >= num_classes, IGNORE_INDEX, mask).astype(np.uint8)


class TrainSet:
    """A ``torch.utils.data.Dataset`` of augmented (image, mask) crops."""

    def __init__(
        self,
        folder: SegmentationFolder,
        *,
        num_classes: int,
        base_size: int,
        crop_size: int,
        scale_range: tuple[float, float] = (0.5, 2.0),
    ):
        self.folder, self.num_classes = folder, num_classes
        self.base_size, self.crop_size, self.scale_range = base_size, crop_size, scale_range

    def __len__(self) -> int:
        return len(self.folder)

    def __getitem__(self, index: int):
        torch = import_torch()
        _, image, mask = self.folder[index]
        low, high = self.scale_range
        short = int(self.base_size * (low + (high - low) * torch.rand(()).item()))
        image = _resize_short(image, short, cv2.INTER_LINEAR)
        mask = _resize_short(mask, short, cv2.INTER_NEAREST)
        h, w = mask.shape
        c = self.crop_size
        if h < c or w < c:  # pad: black image, ignored labels
            pad = ((0, max(0, c - h)), (0, max(0, c - w)))
            image = np.pad(image, pad + ((0, 0),))
            mask = np.pad(mask, pad, constant_values=IGNORE_INDEX)
            h, w = mask.shape
        top = int(torch.randint(0, h - c + 1, ()).item())
        left = int(torch.randint(0, w - c + 1, ()).item())
        image, mask = image[top : top + c, left : left + c], mask[top : top + c, left : left + c]
        if torch.rand(()).item() < 0.5:
            image, mask = image[:, ::-1], mask[:, ::-1]
        mask = _limit_classes(mask, self.num_classes)
        return _normalize(image), torch.from_numpy(np.ascontiguousarray(mask)).long()


class EvalSet:
    """(image resized to ``base_size``, mask at full size), one at a time."""

    def __init__(self, folder: SegmentationFolder, *, num_classes: int, base_size: int):
        self.folder, self.num_classes, self.base_size = folder, num_classes, base_size

    def __len__(self) -> int:
        return len(self.folder)

    def __getitem__(self, index: int):
        torch = import_torch()
        _, image, mask = self.folder[index]
        image = _resize_short(image, self.base_size)  # as run does
        return _normalize(image), torch.from_numpy(_limit_classes(mask, self.num_classes)).long()
