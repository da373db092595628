"""Write synthetic scenes as a dataset folder (VOC or Cityscapes layout) plus a held-out labeled video.

Image ``i`` is drawn from the seed sequence ``(seed, 1, i)`` and the video
from ``(seed, 2)``, so a dataset is reproducible, a larger ``n`` only adds
images, and the video never shares a scene with the images.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from fractions import Fraction
from pathlib import Path

import numpy as np
from PIL import Image

from streamseg.datasets import synth
from streamseg.datasets.folders import FORMATS, write_classes
from streamseg.errors import ConfigError, SinkError

HELDOUT = "heldout"  # DIR/heldout/heldout.mp4 and DIR/heldout/labels/000000.png ...
VIDEO_NAME = "heldout.mp4"
_FLAT_PALETTE = [v for rgb in synth.PALETTE for v in rgb] + [0] * (768 - 3 * len(synth.PALETTE))


@dataclasses.dataclass(frozen=True)
class SynthSummary:
    root: Path
    train: int
    val: int
    video: Path | None
    video_frames: int


def write_synthetic(
    out: str | Path,
    *,
    n: int,
    format: str = "voc",
    seed: int = 0,
    size: tuple[int, int] = (240, 320),
    val_fraction: float = 0.2,
    video_frames: int = 60,
    fps: int = 10,
    progress: Callable[[int], None] | None = None,
) -> SynthSummary:
    """``n`` labeled images split train/val, ``classes.txt`` and, unless ``video_frames`` is 0, the held-out video."""
    if format not in FORMATS:
        raise ConfigError(f"dataset format must be one of {', '.join(FORMATS)}, got {format!r}")
    if n < 2:
        raise ConfigError(f"--n must be at least 2 (one train and one val image), got {n}")
    if not 0 < val_fraction < 1:
        raise ConfigError(f"val fraction must be between 0 and 1, got {val_fraction}")
    if min(size) < 32 or size[0] % 2 or size[1] % 2:
        raise ConfigError(f"size must be even and at least 32x32, got {size[1]}x{size[0]}")
    root = Path(out)
    try:
        root.mkdir(parents=True, exist_ok=True)
    except OSError as err:
        raise SinkError(f"cannot create {root}: {err.strerror or err}") from None
    n_val = max(1, round(n * val_fraction))
    splits: dict[str, list[str]] = {"train": [], "val": []}
    write = _write_voc if format == "voc" else _write_cityscapes
    for i in range(n):
        rng = np.random.default_rng([seed, 1, i])
        image, mask = synth.render(synth.random_scene(rng, size), synth.random_lighting(rng), rng)
        split = "train" if i < n - n_val else "val"
        splits[split].append(write(root, split, i, image, mask))
        if progress:
            progress(1)
    if format == "voc":
        lists = root / "ImageSets" / "Segmentation"
        lists.mkdir(parents=True, exist_ok=True)
        for split, names in splits.items():
            (lists / f"{split}.txt").write_text("".join(f"{name}\n" for name in names))
        (lists / "trainval.txt").write_text("".join(f"{name}\n" for name in splits["train"] + splits["val"]))
    write_classes(root, synth.CLASSES, synth.PALETTE)
    video = (
        write_heldout_video(root / HELDOUT, seed=seed, size=size, frames=video_frames, fps=fps)
        if video_frames
        else None
    )
    return SynthSummary(root, len(splits["train"]), len(splits["val"]), video, video_frames)


def _save_mask(path: Path, mask: np.ndarray) -> None:
    """A palette PNG: pixel value = class id, shown in the class colors."""
    image = Image.fromarray(mask, mode="L").convert("P")
    image.putpalette(_FLAT_PALETTE)
    path.parent.mkdir(parents=True, exist_ok=True)
    image.save(path)


def _write_voc(root: Path, split: str, i: int, image: np.ndarray, mask: np.ndarray) -> str:
    name = f"synth_{i:05d}"
    (root / "JPEGImages").mkdir(parents=True, exist_ok=True)
    Image.fromarray(image).save(root / "JPEGImages" / f"{name}.jpg", quality=95)
    _save_mask(root / "SegmentationClass" / f"{name}.png", mask)
    return name


def _write_cityscapes(root: Path, split: str, i: int, image: np.ndarray, mask: np.ndarray) -> str:
    stem = f"synth_{i:06d}_000019"  # city_sequence_frame, as Cityscapes names files
    images = root / "leftImg8bit" / split / "synth"
    images.mkdir(parents=True, exist_ok=True)
    Image.fromarray(image).save(images / f"{stem}_leftImg8bit.png", compress_level=1)
    labels = root / "gtFine" / split / "synth"
    labels.mkdir(parents=True, exist_ok=True)
    Image.fromarray(mask, mode="L").save(labels / f"{stem}_gtFine_labelTrainIds.png")
    return stem


def write_heldout_video(folder: Path, *, seed: int, size: tuple[int, int], frames: int, fps: int) -> Path:
    """A street scene with moving cars and people and light that dims and recovers, with its per-frame labels."""
    import av

    rng = np.random.default_rng([seed, 2])
    scene = synth.random_scene(rng, size)
    scene.things = [thing for thing in scene.things if thing.kind == synth.PERSON][:3]
    while len(scene.things) < 2:  # the video always shows people and cars, in view
        scene.things.append(synth.random_thing(rng, scene, synth.PERSON))
    for lane in (-1, 1):  # one car per lane, near enough to see, driving slowly so it stays on the road
        depth = rng.uniform(0.45, 0.85)
        car = synth.random_thing(rng, scene, synth.CAR)
        scene.things.append(
            dataclasses.replace(
                car,
                y=scene.horizon + depth * (size[0] - scene.horizon),
                scale=depth * rng.uniform(0.3, 0.4),
                x=scene.vanish_x + lane * scene.road_half * depth * rng.uniform(0.3, 0.5),
                vx=-lane * rng.uniform(3, 8),
            )
        )
    light = dataclasses.replace(synth.random_lighting(rng), gain=1.0)
    labels = folder / "labels"
    labels.mkdir(parents=True, exist_ok=True)
    path = folder / VIDEO_NAME
    with av.open(str(path), "w") as container:
        stream = container.add_stream("libx264", rate=Fraction(fps))
        stream.width, stream.height = size[1], size[0]
        stream.pix_fmt = "yuv420p"
        stream.options = {"crf": "16", "preset": "medium"}
        for index in range(frames):
            t = index / fps
            gain = 1.0 - 0.35 * np.sin(np.pi * index / max(1, frames - 1))  # dusk in the middle of the clip
            image, mask = synth.render(scene, dataclasses.replace(light, gain=gain), rng, t=t)
            container.mux(stream.encode(av.VideoFrame.from_ndarray(image, format="rgb24")))
            _save_mask(labels / f"{index:06d}.png", mask)
        container.mux(stream.encode(None))
    return path
