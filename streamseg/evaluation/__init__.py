"""Evaluation: metrics against ground truth, and agreement between models."""

from streamseg.evaluation.metrics import ConfusionMatrix, SegmentationMetrics, metrics_from_confusion

__all__ = ["ConfusionMatrix", "SegmentationMetrics", "metrics_from_confusion"]
