"""Labeled segmentation datasets: folder layouts (VOC, Cityscapes) and a synthetic street-scene generator."""

from streamseg.datasets.folders import FORMATS, Sample, SegmentationFolder, read_classes, write_classes

__all__ = ["FORMATS", "Sample", "SegmentationFolder", "read_classes", "write_classes"]
