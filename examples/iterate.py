"""Iterate a Pipeline: every frame of a video with its label map, in order.

    python examples/iterate.py ../shared/media/car-detection.mp4 m.onnx

``m.onnx`` from e.g. ``streamseg models export fcn_resnet50 --weights pretrained -o m.onnx``.
"""

from __future__ import annotations

import sys

import numpy as np

from streamseg import Pipeline


def main(source: str, model: str) -> None:
    road_share = []
    with Pipeline(source, model=model) as pipeline:
        classes = pipeline.spec.classes
        for r in pipeline:  # r.frame (H, W, 3) RGB uint8, r.labels (H, W) uint8 class ids
            counts = np.bincount(r.labels.ravel(), minlength=len(classes))
            top = int(counts.argmax())
            if "road" in classes:
                road_share.append(counts[classes.index("road")] / r.labels.size)
            print(
                f"{r.index:5d}  t={r.time:7.3f}s  {r.labels.shape[1]}x{r.labels.shape[0]}  "
                f"mostly {classes[top]} ({100 * counts[top] / r.labels.size:.0f}%)"
            )
    summary = pipeline.summary()
    print(
        f"{summary.frames_out} frames at {summary.fps:.1f} fps"
        + (f", road {100 * np.mean(road_share):.1f}% of the picture on average" if road_share else "")
    )


if __name__ == "__main__":
    if len(sys.argv) != 3:
        sys.exit(__doc__)
    main(sys.argv[1], sys.argv[2])
