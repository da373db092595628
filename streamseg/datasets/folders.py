"""Read-only access to labeled segmentation folders in the VOC or Cityscapes layout.

VOC: ``JPEGImages/NAME.jpg``, ``SegmentationClass/NAME.png`` (palette or gray
PNG, pixel value = class id, 255 = ignore) and the split lists
``ImageSets/Segmentation/{train,val}.txt``.
Cityscapes: ``leftImg8bit/SPLIT/CITY/STEM_leftImg8bit.png`` with
``gtFine/SPLIT/CITY/STEM_gtFine_labelTrainIds.png`` (trainIds, 255 = ignore).

A folder may carry ``classes.txt``: one class per line, in id order, each
optionally followed by its color as ``#rrggbb``. Without it the standard VOC
(21) or Cityscapes (19) classes and colors are assumed.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import NamedTuple

import numpy as np
from PIL import Image

from streamseg.errors import ConfigError, SourceError
from streamseg.models.palettes import CITYSCAPES_CLASSES, CITYSCAPES_PALETTE, VOC_CLASSES, voc_palette

FORMATS = ("voc", "cityscapes")
CLASSES_FILE = "classes.txt"
IGNORE_INDEX = 255

_CS_IMAGE_SUFFIX = "_leftImg8bit.png"
_CS_LABEL_SUFFIX = "_gtFine_labelTrainIds.png"


class Sample(NamedTuple):
    name: str
    image: np.ndarray  # H x W x 3, RGB, uint8
    mask: np.ndarray  # H x W, uint8 class ids, 255 = ignore


class SegmentationFolder:
    """The images and masks of one split, loaded lazily: ``folder[i]`` -> ``Sample(name, image, mask)``."""

    def __init__(self, root: str | Path, format: str = "voc", split: str = "val"):
        if format not in FORMATS:
            raise ConfigError(f"dataset format must be one of {', '.join(FORMATS)}, got {format!r}")
        self.root = Path(root)
        self.format = format
        self.split = split
        if not self.root.is_dir():
            raise SourceError(f"dataset folder not found: {self.root}")
        pairs = _voc_pairs(self.root, split) if format == "voc" else _cityscapes_pairs(self.root, split)
        if not pairs:
            raise SourceError(f"{self.root}: no {format} samples in split {split!r}")
        self._pairs = pairs
        self.classes, self.palette = read_classes(self.root, format)

    @property
    def num_classes(self) -> int:
        return len(self.classes)

    @property
    def names(self) -> list[str]:
        return [name for name, _, _ in self._pairs]

    def __len__(self) -> int:
        return len(self._pairs)

    def __getitem__(self, index: int) -> Sample:
        name, image_path, mask_path = self._pairs[index]
        image = _read(image_path, "RGB")
        mask = _read_mask(mask_path)
        if mask.shape != image.shape[:2]:
            raise SourceError(
                f"{mask_path}: mask is {mask.shape[1]}x{mask.shape[0]}, image is {image.shape[1]}x{image.shape[0]}"
            )
        return Sample(name, image, mask)

    def __iter__(self) -> Iterator[Sample]:
        for i in range(len(self)):
            yield self[i]

    def __repr__(self) -> str:
        return f"SegmentationFolder({str(self.root)!r}, format={self.format!r}, split={self.split!r}, n={len(self)})"


def read_classes(root: str | Path, format: str) -> tuple[tuple[str, ...], tuple[tuple[int, int, int], ...]]:
    """Class names and colors: from ``root/classes.txt`` if present, else the format's standard set."""
    path = Path(root) / CLASSES_FILE
    if not path.exists():
        if format == "cityscapes":
            return CITYSCAPES_CLASSES, CITYSCAPES_PALETTE
        return VOC_CLASSES, voc_palette(len(VOC_CLASSES))
    lines = [line.strip() for line in path.read_text().splitlines()]
    lines = [line for line in lines if line and not line.startswith("//")]
    if not lines:
        raise SourceError(f"{path}: no classes")
    names: list[str] = []
    colors: list[tuple[int, int, int]] = []
    defaults = voc_palette(len(lines))
    for i, line in enumerate(lines):
        name, _, color = line.rpartition(" #") if " #" in line else (line, "", "")
        try:
            rgb = (int(color[0:2], 16), int(color[2:4], 16), int(color[4:6], 16)) if color else defaults[i]
        except ValueError:
            raise SourceError(f"{path}: line {i + 1}: color must be #rrggbb, got #{color}") from None
        if len(color) not in (0, 6):
            raise SourceError(f"{path}: line {i + 1}: color must be #rrggbb, got #{color}")
        names.append(name.strip())
        colors.append(rgb)
    return tuple(names), tuple(colors)


def write_classes(root: str | Path, classes: tuple[str, ...], palette: tuple[tuple[int, int, int], ...]) -> Path:
    """Write ``classes.txt`` in the form ``read_classes`` reads."""
    path = Path(root) / CLASSES_FILE
    path.write_text("".join(f"{name} #{r:02x}{g:02x}{b:02x}\n" for name, (r, g, b) in zip(classes, palette)))
    return path


def _voc_pairs(root: Path, split: str) -> list[tuple[str, Path, Path]]:
    listing = root / "ImageSets" / "Segmentation" / f"{split}.txt"
    if not listing.exists():
        raise SourceError(f"{root}: not a VOC layout (missing {listing.relative_to(root)})")
    pairs = []
    for name in listing.read_text().split():
        image = root / "JPEGImages" / f"{name}.jpg"
        if not image.exists() and (root / "JPEGImages" / f"{name}.png").exists():
            image = root / "JPEGImages" / f"{name}.png"
        mask = root / "SegmentationClass" / f"{name}.png"
        for path in (image, mask):
            if not path.exists():
                raise SourceError(f"{listing}: {name} is listed but {path.relative_to(root)} is missing")
        pairs.append((name, image, mask))
    return pairs


def _cityscapes_pairs(root: Path, split: str) -> list[tuple[str, Path, Path]]:
    images = root / "leftImg8bit" / split
    if not images.is_dir():
        raise SourceError(f"{root}: not a Cityscapes layout (missing leftImg8bit/{split}/)")
    pairs = []
    for image in sorted(images.glob(f"*/*{_CS_IMAGE_SUFFIX}")):
        stem = image.name[: -len(_CS_IMAGE_SUFFIX)]
        mask = root / "gtFine" / split / image.parent.name / f"{stem}{_CS_LABEL_SUFFIX}"
        if not mask.exists():
            raise SourceError(
                f"{root}: {mask.relative_to(root)} is missing (create trainId masks with "
                "cityscapesScripts' createTrainIdLabelImgs)"
            )
        pairs.append((stem, image, mask))
    return pairs


def _read(path: Path, mode: str) -> np.ndarray:
    try:
        with Image.open(path) as image:
            return np.asarray(image.convert(mode))
    except OSError as err:
        raise SourceError(f"cannot read {path}: {err}") from None


def _read_mask(path: Path) -> np.ndarray:
    """Class ids from a palette or gray PNG; a color (RGB) mask is refused, not guessed."""
    try:
        with Image.open(path) as image:
            mode = image.mode
            mask = np.asarray(image)
    except OSError as err:
        raise SourceError(f"cannot read {path}: {err}") from None
    if mode not in ("P", "L", "I", "I;16"):
        raise SourceError(f"{path}: mask must be a palette or grayscale PNG of class ids, not {mode}")
    if mask.dtype != np.uint8:
        mask = np.where((mask < 0) | (mask > 255), IGNORE_INDEX, mask).astype(np.uint8)
    return mask
