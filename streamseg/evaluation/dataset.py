"""Dataset mode: a model against labeled images, or label maps against label maps.

Everything lands in one confusion matrix per run (``ConfusionMatrix``), so
PA, MPA, mIoU and FWIoU are the FCN paper's dataset-level figures, not
averages of per-image scores. Pixels labeled 255 are ignored.
"""

from __future__ import annotations

import time
from pathlib import Path

import numpy as np

from streamseg.errors import ConfigError, SourceError
from streamseg.evaluation.metrics import ConfusionMatrix, SegmentationMetrics
from streamseg.frames import Frame
from streamseg.models.spec import ModelSpec


def evaluate_dataset(
    model: str | Path,
    root: str | Path,
    *,
    format: str = "voc",
    split: str = "val",
    input_size: int | None = None,
    backend: str = "onnxruntime",
    threads: int | None = None,
    spec: ModelSpec | None = None,
    limit: int | None = None,
) -> tuple[SegmentationMetrics, tuple[str, ...], int]:
    """Segment every image of the split and score it; returns (metrics, class names, images)."""
    from streamseg.backends import create_backend
    from streamseg.datasets import SegmentationFolder
    from streamseg.models import open_model
    from streamseg.postprocess.cpu import CpuPostprocessor
    from streamseg.preprocess.cpu import CpuPreprocessor

    folder = SegmentationFolder(root, format=format, split=split)
    handle = open_model(model, spec)
    spec = handle.spec.with_short_side(input_size)
    if folder.num_classes != spec.num_classes:
        raise ConfigError(
            f"{spec.name} has {spec.num_classes} classes but the dataset has {folder.num_classes} "
            f"({folder.root}); give the dataset a classes.txt matching the model"
        )
    runner = create_backend(backend, handle, spec, threads=threads)
    prepare, decode = CpuPreprocessor(spec), CpuPostprocessor(spec)
    confusion = ConfusionMatrix(spec.num_classes)
    count = 0
    try:
        for i, sample in enumerate(folder):
            if limit is not None and i >= limit:
                break
            prepared = prepare(Frame(sample.name, i, sample.image, None, None, time.time()))
            output = runner.run(prepared.tensor)
            if hasattr(output, "detach"):  # GPU backends hand back device tensors
                output = output.detach().float().cpu().numpy()
            confusion.update(decode(np.asarray(output), prepared.geometry), sample.mask)
            count += 1
    finally:
        runner.close()
    return confusion.compute(), spec.classes, count


def evaluate_label_folders(
    predictions: str | Path,
    ground_truth: str | Path,
    num_classes: int,
) -> tuple[SegmentationMetrics, int]:
    """Score label PNGs (``streamseg run --labels-out``) against ground-truth PNGs of the same names."""
    pred_dir, gt_dir = Path(predictions), Path(ground_truth)
    for where in (pred_dir, gt_dir):
        if not where.is_dir():
            raise SourceError(f"label folder not found: {where}")
    truths = sorted(gt_dir.glob("*.png"))
    if not truths:
        raise SourceError(f"{gt_dir}: no .png label maps")
    missing = [t.name for t in truths if not (pred_dir / t.name).exists()]
    if missing:
        raise SourceError(f"{pred_dir}: {len(missing)} of {len(truths)} predictions missing (first: {missing[0]})")
    confusion = ConfusionMatrix(num_classes)
    for truth in truths:
        target, prediction = _read_labels(truth), _read_labels(pred_dir / truth.name)
        if target.shape != prediction.shape:
            raise SourceError(
                f"{truth.name}: prediction is {prediction.shape[1]}x{prediction.shape[0]}, "
                f"ground truth {target.shape[1]}x{target.shape[0]}"
            )
        try:
            confusion.update(prediction, target)
        except ValueError as err:
            raise SourceError(f"{pred_dir / truth.name}: {err} (wrong --model or --classes-file?)") from None
    return confusion.compute(), len(truths)


def _read_labels(path: Path) -> np.ndarray:
    from PIL import Image

    try:
        with Image.open(path) as image:
            if image.mode not in ("P", "L"):
                raise SourceError(
                    f"{path}: label maps must be palette or grayscale PNGs of class ids, not {image.mode}"
                )
            return np.asarray(image)
    except OSError as err:
        raise SourceError(f"cannot read {path}: {err}") from None


def max_label(folder: str | Path) -> int:
    """The largest class id (255, the ignore index, aside) in a folder of label PNGs."""
    top = 0
    for path in sorted(Path(folder).glob("*.png")):
        labels = _read_labels(path)
        kept = labels[labels != 255]
        if kept.size:
            top = max(top, int(kept.max()))
    return top
