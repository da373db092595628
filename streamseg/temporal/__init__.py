"""Every frame out with a mask when inference can't keep up: which frames to infer, labels carried
forward by optical flow in between, and class scores smoothed over time.

Stand-alone pieces the pipeline wires together:

- :class:`DenseFlow` / :func:`warp_labels` (flow.py): DIS optical flow at a reduced size, labels warped along it.
- :class:`LabelPropagator` (propagate.py): the last inferred labels, held or warped to each later frame.
- :class:`ScoreSmoother` (smooth.py): a motion-compensated moving average of class scores, reset on cuts.
- :class:`FixedInterval` / :class:`LatencyBudget` (interval.py): which frames to infer.
"""

from streamseg.temporal.flow import DenseFlow, warp_labels, warp_planes
from streamseg.temporal.interval import FixedInterval, LatencyBudget, Setting
from streamseg.temporal.propagate import LabelPropagator, Propagated
from streamseg.temporal.smooth import ScoreSmoother, frame_difference

__all__ = [
    "DenseFlow",
    "FixedInterval",
    "LabelPropagator",
    "LatencyBudget",
    "Propagated",
    "ScoreSmoother",
    "Setting",
    "frame_difference",
    "warp_labels",
    "warp_planes",
]
