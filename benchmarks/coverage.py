"""Coverage cost: 4 regions on a 720p label map, per frame, OpenCV's calcHist against np.bincount.

The regions are a crosswalk box, a lane trapezoid, a sidewalk triangle and a loading-bay quad (about 45 %
of the frame together); the label map is a real-looking one (large class areas with noisy edges, 21
classes). Both ways are timed in alternation, so load hits them alike; the figure that matters is the
per-frame median against the 1 ms target, and the ratio. With ``--clip`` it also times the events sink's
per-frame H.264 encode of the overlay for event clips (``--events-dir``).

    python benchmarks/coverage.py [--frames 300] [--clip] [--json out.json]
"""

from __future__ import annotations

import argparse
import json
import statistics
import time
from datetime import UTC, datetime
from fractions import Fraction

import numpy as np

from streamseg.bench.report import machine
from streamseg.events.coverage import CoverageMeter, bincount_coverage
from streamseg.events.regions import Region

REGIONS = (
    Region(name="crosswalk", points=((0.4, 0.55), (0.6, 0.55), (0.6, 0.75), (0.4, 0.75))),
    Region(name="lane", points=((0.35, 0.6), (0.65, 0.6), (0.9, 1.0), (0.1, 1.0))),
    Region(name="sidewalk", points=((0.0, 0.55), (0.3, 0.55), (0.0, 0.95))),
    Region(name="bay", points=((0.7, 0.3), (0.95, 0.35), (0.95, 0.6), (0.72, 0.55))),
)


def label_maps(count: int, height: int = 720, width: int = 1280) -> list[np.ndarray]:
    """Street-like maps: sky, road, a car box moving, speckle on edges."""
    rng = np.random.default_rng(0)
    maps = []
    for i in range(count):
        labels = np.zeros((height, width), np.uint8)
        labels[height // 2 :] = 7
        x = (i * 9) % (width - 200)
        labels[height // 2 - 60 : height // 2 + 80, x : x + 200] = 15
        noise = rng.random((height, width)) < 0.02
        labels[noise] = rng.integers(0, 21, int(noise.sum()), dtype=np.uint8)
        maps.append(labels)
    return maps


def timed(fn, labels: np.ndarray) -> float:
    start = time.perf_counter()
    fn(labels)
    return time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--frames", type=int, default=300)
    parser.add_argument("--clip", action="store_true", help="also time the clip encoder per 720p frame")
    parser.add_argument("--json", help="write the figures here")
    args = parser.parse_args()
    maps = label_maps(16)
    meter = CoverageMeter(REGIONS, 21)
    share = sum(meter._masks.at(720, 1280)[i].pixels for i in range(len(REGIONS))) / (720 * 1280)
    meter.measure(maps[0])  # masks made once per frame size: not per frame
    calchist, bincount = [], []
    for i in range(args.frames):
        labels = maps[i % len(maps)]
        calchist.append(timed(meter.measure, labels))
        bincount.append(timed(lambda m: bincount_coverage(m, meter), labels))
    ms = lambda xs: round(1000 * statistics.median(xs), 3)  # noqa: E731
    figures = {
        "date": datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC"),
        "machine": machine(),
        "frame": "1280x720",
        "regions": len(REGIONS),
        "region_pixels_share": round(share, 3),
        "frames": args.frames,
        "calchist_ms_p50": ms(calchist),
        "calchist_ms_p90": round(1000 * float(np.percentile(calchist, 90)), 3),
        "bincount_ms_p50": ms(bincount),
        "speedup": round(statistics.median(bincount) / statistics.median(calchist), 2),
    }
    if args.clip:
        from streamseg.events.clips import ClipEncoder
        from streamseg.stage_options import EncoderOptions

        encoder = ClipEncoder(Fraction(1, 90000), 25.0, EncoderOptions())
        picture = np.random.default_rng(1).integers(0, 255, (720, 1280, 3), dtype=np.uint8)
        picture[:, :, :] = picture[:1, :, :]  # vertical stripes: compressible, not trivial
        encode = []
        for i in range(min(args.frames, 100)):
            start = time.perf_counter()
            encoder.encode(np.roll(picture, i * 4, axis=1), i * 3600)
            encode.append(time.perf_counter() - start)
        encoder.close()
        figures["clip_encode_ms_p50"] = ms(encode[5:])
    print(json.dumps(figures, indent=1))
    if args.json:
        with open(args.json, "w") as file:
            json.dump(figures, file, indent=1)


if __name__ == "__main__":
    main()
