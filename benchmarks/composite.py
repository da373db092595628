"""Composite cost per frame: the color-map compositor against the two it replaced, and the overlay on 4:2:0 planes.

``Compositor`` (a ``cv2.applyColorMap`` lookup, one blend, one masked copy) against the banded one-pass LUT
compositor before it and the frame-sized passes before that. All draw the same overlay (within 1 intensity
level) of labels made from the picture (hue classes at 1/8 size, resized with INTER_NEAREST) over decoded
frames of a real clip. They are timed in alternation, frame by frame, so load hits them alike; the figures
are the ratios of the per-frame medians.

What an encoder gets is compared too: the RGB overlay then OpenCV's RGB -> I420 (``rgb_then_i420``, what video
outputs ran until 2026-12-08) against the overlay drawn on the decoder's own planes (``planes``, views on the
decoded frame, as a source hands them on).

    python benchmarks/composite.py [--video car-detection.mp4] [--frames 60] [--repeat 5] [--json out.json]
"""

from __future__ import annotations

import argparse
import json
import statistics
import time
from collections.abc import Callable
from datetime import UTC, datetime

import av
import cv2
import numpy as np

from streamseg.bench.report import machine
from streamseg.composite import Compositor
from streamseg.frames import Yuv420Planes
from streamseg.models import ZOO
from streamseg.sources.file import to_planes


class BandedCompositor:
    """The compositor before the color map: per band of 64 rows GRAY2RGB, a 3-channel LUT, blend, copyTo."""

    def __init__(self, new: Compositor):
        self.alpha = new.alpha
        self.color_table = np.ascontiguousarray(new.lut.reshape(256, 1, 3))
        self.undrawn_table = np.where(new.drawn, 0, 255).astype(np.uint8)

    def __call__(self, image: np.ndarray, labels: np.ndarray) -> np.ndarray:
        out = np.empty_like(image)
        for top in range(0, labels.shape[0], 64):
            rows = slice(top, top + 64)
            band_labels, band_image, band_out = labels[rows], image[rows], out[rows]
            band_color = cv2.LUT(cv2.cvtColor(band_labels, cv2.COLOR_GRAY2RGB), self.color_table)
            cv2.addWeighted(band_image, 1.0 - self.alpha, band_color, self.alpha, 0.0, dst=band_out)
            cv2.copyTo(band_image, cv2.LUT(band_labels, self.undrawn_table), band_out)
        return out


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


def frames_and_labels(video: str, count: int, classes: int) -> list[tuple[np.ndarray, np.ndarray, Yuv420Planes]]:
    out = []
    with av.open(video) as container:
        for frame in container.decode(video=0):
            rgb = frame.to_ndarray(format="rgb24")
            h, w = rgb.shape[:2]
            hue = cv2.cvtColor(cv2.resize(rgb, (w // 8, h // 8)), cv2.COLOR_RGB2HSV)[..., 0]
            small = (hue.astype(np.uint16) * classes // 180).astype(np.uint8)
            planes = to_planes(frame)
            if planes is None:
                raise SystemExit(f"{video}: not video-range 4:2:0 at an even size")
            out.append((rgb, cv2.resize(small, (w, h), interpolation=cv2.INTER_NEAREST), planes))
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
    compositors: dict[str, Callable[[np.ndarray, np.ndarray], np.ndarray]] = {
        "color_map": new,
        "banded": BandedCompositor(new),
        "frame_sized": FrameSizedCompositor(new),
    }
    for_encoder = {
        "rgb_then_i420": lambda rgb, labels, planes: cv2.cvtColor(new(rgb, labels), cv2.COLOR_RGB2YUV_I420),
        "planes": lambda rgb, labels, planes: new.overlay_planes(planes, labels),
    }
    data = frames_and_labels(args.video, args.frames, spec.num_classes)
    times: dict[str, list[float]] = {name: [] for name in [*compositors, *for_encoder]}
    worst = worst_planes = 0
    for _ in range(args.repeat):
        for rgb, labels, _planes in data:
            for name, draw in compositors.items():
                start = time.perf_counter()
                picture = draw(rgb, labels)
                times[name].append(time.perf_counter() - start)
            worst = max(worst, int(np.abs(picture.astype(np.int16) - new(rgb, labels)).max()))
    for round_ in range(args.repeat):  # apart from the three above, which leave the RGB frame in the cache
        for k, (rgb, labels, planes) in enumerate(data):
            pictures = {}
            order = list(for_encoder.items())
            for name, encodable in order if (k + round_) % 2 else order[::-1]:  # each goes first half the time
                start = time.perf_counter()
                pictures[name] = encodable(rgb, labels, planes)
                times[name].append(time.perf_counter() - start)
            difference = np.abs(pictures["planes"].astype(np.int16) - pictures["rgb_then_i420"]).max()
            worst_planes = max(worst_planes, int(difference))
    median = {name: statistics.median(t) * 1e3 for name, t in times.items()}
    report = {
        "date": datetime.now(UTC).isoformat(timespec="seconds"),
        "machine": machine(),
        "frame": list(data[0][0].shape),
        "frames": len(data) * args.repeat,
        "median_ms": {name: round(ms, 3) for name, ms in median.items()},
        "speedup": {name: round(median[name] / median["color_map"], 3) for name in ("banded", "frame_sized")},
        "max_level_difference": worst,
        "planes_speedup": round(median["rgb_then_i420"] / median["planes"], 3),
        "planes_max_level_difference": worst_planes,
    }
    print(json.dumps(report, indent=2))
    if args.json_path:
        with open(args.json_path, "w") as out:
            json.dump(report, out, indent=2)


if __name__ == "__main__":
    main()
