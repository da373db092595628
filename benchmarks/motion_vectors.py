"""Carrying labels one frame: the decoder's motion vectors against DIS optical flow, per frame.

Decodes a clip once with ``flags2=+export_mvs``, then for every frame with
vectors times, in alternation so load hits both alike: (a) the vector field and
the label warp, (b) DIS flow (``DenseFlow``, as ``--propagate flow`` runs it) and
the same warp. The labels carried are a fixed stand-in map; the figure is the ratio
of per-frame medians, and how often both carried labels agree.

    python benchmarks/motion_vectors.py [--video car-detection.mp4] [--frames 100] [--json out.json]
"""

from __future__ import annotations

import argparse
import json
import statistics
import time
from datetime import UTC, datetime

import av
import numpy as np

from streamseg.bench.report import machine
from streamseg.sources.vectors import export_vectors, frame_vectors
from streamseg.temporal.flow import DenseFlow, warp_labels
from streamseg.temporal.motion_vectors import vector_field


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--video", default="car-detection.mp4")
    parser.add_argument("--frames", type=int, default=100)
    parser.add_argument("--json", dest="json_path")
    args = parser.parse_args()
    decoded = []
    with av.open(args.video) as container:
        stream = container.streams.video[0]
        export_vectors(stream)
        for frame in container.decode(stream):
            decoded.append((frame.to_ndarray(format="rgb24"), frame_vectors(frame)))
            if len(decoded) == args.frames:
                break
    height, width = decoded[0][0].shape[:2]
    labels = (np.indices((height, width)).sum(axis=0) // 24 % 21).astype(np.uint8)  # stand-in diagonal bands
    dis = DenseFlow()
    times: dict[str, list[float]] = {"vectors": [], "dis": []}
    agree = []
    for (previous, _), (current, vectors) in zip(decoded, decoded[1:]):
        if vectors is None:
            continue
        start = time.perf_counter()
        by_vectors = warp_labels(labels, vector_field(vectors, height, width))
        times["vectors"].append(time.perf_counter() - start)
        start = time.perf_counter()
        by_dis = warp_labels(labels, dis.compute(dis.prepare(current), dis.prepare(previous)))
        times["dis"].append(time.perf_counter() - start)
        agree.append(float((by_vectors == by_dis).mean()))
    median = {name: statistics.median(t) * 1e3 for name, t in times.items()}
    report = {
        "date": datetime.now(UTC).isoformat(timespec="seconds"),
        "machine": machine(),
        "video": args.video,
        "frame": [height, width],
        "frames_with_vectors": len(times["vectors"]),
        "median_ms": {name: round(ms, 3) for name, ms in median.items()},
        "speedup": round(median["dis"] / median["vectors"], 3),
        "label_agreement_vectors_vs_dis": round(statistics.mean(agree), 4),
    }
    print(json.dumps(report, indent=2))
    if args.json_path:
        with open(args.json_path, "w") as out:
            json.dump(report, out, indent=2)


if __name__ == "__main__":
    main()
