"""Composite cost per frame: the one-pass banded uint8 blend against the previous frame-sized passes.

Both draw the same overlay (within 1 intensity level) of labels made from the picture (hue classes at 1/8
size, resized with INTER_NEAREST) over decoded frames of a real clip. They are timed in alternation, frame
by frame, so load hits them alike; the figure is the ratio of the per-frame medians.

    python benchmarks/composite.py [--video car-detection.mp4] [--frames 60] [--repeat 5] [--json out.json]
"""

from __future__ import annotations

import argparse
import json
import statistics
import time
from datetime import UTC, datetime

import av
import cv2
import numpy as np

from streamseg.bench.report import machine
from streamseg.composite import Compositor
from streamseg.models import ZOO


class FrameSizedCompositor:
    """The compositor as it was: merge, LUT, a full-frame blend, a frame copy, a mask LUT, copyTo."""

    def __init__(self, new: Compositor):
        self.alpha, self.drawn_table = new.alpha, new.drawn_table
        self.color_table = np.ascontiguousarray(new.lut.reshape(256, 1, 3))

    def __call__(self, image: np.ndarray, labels: np.ndarray) -> np.ndarray:
        color = cv2.LUT(cv2.merge((labels, labels, labels)), self.color_table)
        blended = cv2.addWeighted(image, 1.0 - self.alpha, color, self.alpha, 0.0)
        overlay = image.copy()
        cv2.copyTo(blended, cv2.LUT(labels, self.drawn_table), overlay)
        return overlay


def frames_and_labels(video: str, count: int, classes: int) -> list[tuple[np.ndarray, np.ndarray]]:
    out = []
    with av.open(video) as container:
        for frame in container.decode(video=0):
            rgb = frame.to_ndarray(format="rgb24")
            h, w = rgb.shape[:2]
            hue = cv2.cvtColor(cv2.resize(rgb, (w // 8, h // 8)), cv2.COLOR_RGB2HSV)[..., 0]
            small = (hue.astype(np.uint16) * classes // 180).astype(np.uint8)
            out.append((rgb, cv2.resize(small, (w, h), interpolation=cv2.INTER_NEAREST)))
            if len(out) == count:
                break
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--video", default="car-detection.mp4")
    parser.add_argument("--frames", type=int, default=60)
    parser.add_argument("--repeat", type=int, default=5)
    parser.add_argument("--json", dest="json_path")
    args = parser.parse_args()
    spec = ZOO["fcn_resnet50"].spec
    new = Compositor(spec, mode="overlay", alpha=0.5)
    old = FrameSizedCompositor(new)
    data = frames_and_labels(args.video, args.frames, spec.num_classes)
    times: dict[str, list[float]] = {"one_pass": [], "frame_sized": []}
    worst = 0
    for _ in range(args.repeat):
        for rgb, labels in data:
            for name, draw in (("one_pass", new), ("frame_sized", old)):
                start = time.perf_counter()
                picture = draw(rgb, labels)
                times[name].append(time.perf_counter() - start)
            worst = max(worst, int(np.abs(picture.astype(np.int16) - new(rgb, labels)).max()))
    median = {name: statistics.median(t) * 1e3 for name, t in times.items()}
    report = {
        "date": datetime.now(UTC).isoformat(timespec="seconds"),
        "machine": machine(),
        "frame": list(data[0][0].shape),
        "frames": len(data) * args.repeat,
        "median_ms": {name: round(ms, 3) for name, ms in median.items()},
        "speedup": round(median["frame_sized"] / median["one_pass"], 3),
        "max_level_difference": worst,
    }
    print(json.dumps(report, indent=2))
    if args.json_path:
        with open(args.json_path, "w") as out:
            json.dump(report, out, indent=2)


if __name__ == "__main__":
    main()
