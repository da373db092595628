"""Coverage: for each region, the fraction of its pixels that each class holds, once per frame.

One histogram per region over the pixels of its bounding box, with the polygon's mask (cached per frame
size, ``regions.RegionMasks``); a region that fills its box needs no mask. OpenCV's ``calcHist`` is the
histogram: on uint8 label maps it is about 3x faster than ``np.bincount``, which widens every label to
64 bits first (``benchmarks/coverage.py`` measures both).
"""

from __future__ import annotations

import cv2
import numpy as np

from streamseg.events.regions import Region, RegionMasks

Coverage = dict[str, np.ndarray]  # region name -> float32 fraction per class id


class CoverageMeter:
    """Measures every region's class fractions on a label map."""

    def __init__(self, regions: tuple[Region, ...], num_classes: int):
        self.regions = regions
        self.num_classes = num_classes
        self._masks = RegionMasks(regions)
        self._channels, self._bins, self._range = [0], [num_classes], [0, num_classes]

    def measure(self, labels: np.ndarray) -> Coverage:
        height, width = labels.shape[:2]
        coverage: Coverage = {}
        for region, where in zip(self.regions, self._masks.at(height, width)):
            box = labels[where.rows, where.cols]
            counts = cv2.calcHist([box], self._channels, where.mask, self._bins, self._range)
            coverage[region.name] = (counts.ravel() / where.pixels).astype(np.float32)
        return coverage


def bincount_coverage(labels: np.ndarray, meter: CoverageMeter) -> Coverage:
    """The same figures with ``np.bincount``: the reference the benchmark and tests compare against."""
    height, width = labels.shape[:2]
    coverage: Coverage = {}
    for region, where in zip(meter.regions, meter._masks.at(height, width)):
        box = labels[where.rows, where.cols]
        values = box.ravel() if where.mask is None else box[where.mask.astype(bool)]
        counts = np.bincount(values, minlength=meter.num_classes)[: meter.num_classes]
        coverage[region.name] = (counts / where.pixels).astype(np.float32)
    return coverage
