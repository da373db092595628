"""Segmentation metrics from one confusion matrix, as defined in the FCN paper.

With n_ij the pixels of class i predicted as j, t_i = sum_j n_ij and k classes:
pixel accuracy sum_i n_ii / sum_i t_i; mean accuracy (1/k) sum_i n_ii / t_i;
mean IoU (1/k) sum_i n_ii / (t_i + sum_j n_ji - n_ii); frequency-weighted IoU
(sum_k t_k)^-1 sum_i t_i n_ii / (t_i + sum_j n_ji - n_ii).
Classes absent from both ground truth and prediction are left out of the means.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

IGNORE_INDEX = 255


@dataclass(frozen=True)
class SegmentationMetrics:
    pixel_accuracy: float
    mean_accuracy: float
    miou: float
    fwiou: float
    iou: np.ndarray  # per class; NaN where the class never occurs
    accuracy: np.ndarray  # per class; NaN where the class is absent from the ground truth
    pixels: int

    def as_dict(self, classes: tuple[str, ...] | None = None) -> dict:
        names = classes or tuple(str(i) for i in range(len(self.iou)))
        per_class = {
            name: {"iou": _num(iou), "accuracy": _num(acc)} for name, iou, acc in zip(names, self.iou, self.accuracy)
        }
        return {
            "pixel_accuracy": self.pixel_accuracy, "mean_accuracy": self.mean_accuracy, "miou": self.miou,
            "fwiou": self.fwiou, "pixels": self.pixels, "per_class": per_class,
        }  # fmt: skip


def _num(x: float) -> float | None:
    return None if np.isnan(x) else float(x)


class ConfusionMatrix:
    """Accumulates (target, prediction) pixel counts; ``ignore_index`` pixels are skipped."""

    def __init__(self, num_classes: int, ignore_index: int = IGNORE_INDEX):
        self.num_classes = num_classes
        self.ignore_index = ignore_index
        self.matrix = np.zeros((num_classes, num_classes), np.int64)  # rows: truth, cols: prediction

    def update(self, prediction: np.ndarray, target: np.ndarray) -> None:
        if prediction.shape != target.shape:
            raise ValueError(f"prediction {prediction.shape} and target {target.shape} differ in shape")
        k = self.num_classes
        target = target.ravel().astype(np.int64)
        prediction = prediction.ravel().astype(np.int64)
        keep = (target != self.ignore_index) & (target >= 0) & (target < k)
        if np.any((prediction[keep] < 0) | (prediction[keep] >= k)):
            raise ValueError(f"prediction has class ids outside 0..{k - 1}")
        self.matrix += np.bincount(k * target[keep] + prediction[keep], minlength=k * k).reshape(k, k)

    def compute(self) -> SegmentationMetrics:
        return metrics_from_confusion(self.matrix)


def metrics_from_confusion(matrix: np.ndarray) -> SegmentationMetrics:
    n = matrix.astype(np.float64)
    diag = np.diag(n)
    truth = n.sum(axis=1)  # t_i
    predicted = n.sum(axis=0)
    total = truth.sum()
    union = truth + predicted - diag
    with np.errstate(divide="ignore", invalid="ignore"):
        iou = np.where(union > 0, diag / union, np.nan)
        accuracy = np.where(truth > 0, diag / truth, np.nan)
    present = truth > 0
    return SegmentationMetrics(
        pixel_accuracy=float(diag.sum() / total) if total else float("nan"),
        mean_accuracy=float(np.nanmean(accuracy)) if present.any() else float("nan"),
        miou=float(np.nanmean(iou)) if (union > 0).any() else float("nan"),
        fwiou=float((truth[present] * iou[present]).sum() / total) if total else float("nan"),
        iou=iou,
        accuracy=accuracy,
        pixels=int(total),
    )
