"""Carrying labels by the decoder's motion vectors: one frame against DIS flow, then whole runs.

One frame: decodes a clip once with ``flags2=+export_mvs``, then for every frame
with vectors times, in alternation so load hits both alike: (a) the vector field
and the label warp, (b) DIS flow (``DenseFlow``, as ``--propagate flow`` runs it)
and the same warp. The labels carried are a fixed stand-in map; the figure is the
ratio of per-frame medians, and how often both carried labels agree.

Whole runs (``--model``, repeatable: ``NAME=PATH.onnx`` or ``NAME=PATH.onnx@SHORT_SIDE``): the first
``--frames`` frames through ``Pipeline`` (no outputs) for ``--interval`` 1, 2, 3, 5 x ``--propagate``
none | flow | mv x smoothing off / on (``--smooth``). Interval 1 without smoothing infers every frame: the
reference. With smoothing at interval 1 nothing is carried; ``propagate`` only picks the motion the average
follows. Per setting: fps from the first result to the last (start-up left out) and its ratio to the
reference's; the process's CPU time per frame over the same span (all threads: on a shared machine the figure
load disturbs least); pixel agreement and mIoU (pooled over frames, the reference's labels as the truth, so a small
class weighs as much as the road) with the reference's labels, over every frame; and TC, the temporal consistency
of ``streamseg eval --consistency`` (``evaluation/consistency.py``: each frame's labels against the next
frame's, warped back along DIS flow). Settings run in ``--rounds`` rounds, each setting once per round, in
turn forward and backward (the order costs: a run right after another pays for its winding down), after one
unrecorded warm-up run, and keep their best fps, so load that comes and goes hits them alike; labels come from
the first round.

    python benchmarks/motion_vectors.py --video car-detection.mp4 --frames 60 --json out.json \\
        --model lraspp=lraspp.onnx@360 --model fcn_tiny=fcn_tiny/model.onnx --frames-run 90
"""

from __future__ import annotations

import argparse
import gc
import itertools
import json
import os
import resource
import statistics
import time
from datetime import UTC, datetime

import av
import numpy as np

from streamseg import Pipeline
from streamseg.bench.report import machine
from streamseg.evaluation.consistency import sequence_consistency
from streamseg.evaluation.metrics import ConfusionMatrix
from streamseg.models import open_model
from streamseg.sources.vectors import export_vectors, frame_vectors
from streamseg.temporal.flow import DenseFlow, warp_labels
from streamseg.temporal.motion_vectors import vector_field

INTERVALS = (1, 2, 3, 5)
PROPAGATE = ("none", "flow", "mv")


def one_frame(video: str, frames: int) -> dict:
    """The vector field and warp against DIS flow and warp, frame by frame (medians in ms)."""
    decoded = []
    with av.open(video) as container:
        stream = container.streams.video[0]
        export_vectors(stream)
        for frame in container.decode(stream):
            decoded.append((frame.to_ndarray(format="rgb24"), frame_vectors(frame)))
            if len(decoded) == frames:
                break
    height, width = decoded[0][0].shape[:2]
    labels = (np.indices((height, width)).sum(axis=0) // 24 % 21).astype(np.uint8)  # stand-in diagonal bands
    dis = DenseFlow()
    times: dict[str, list[float]] = {"vectors": [], "dis": []}
    agree = []
    for (previous, _), (current, vectors) in itertools.pairwise(decoded):
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
    return {
        "frame": [height, width],
        "frames_with_vectors": len(times["vectors"]),
        "median_ms": {name: round(ms, 3) for name, ms in median.items()},
        "speedup": round(median["dis"] / median["vectors"], 3),
        "label_agreement_vectors_vs_dis": round(statistics.mean(agree), 4),
    }


def settings(smooth: float) -> list[tuple[int, str, float | None]]:
    """(interval, propagate, smooth) to run; the reference (1, "none", None) first."""
    out: list[tuple[int, str, float | None]] = [(1, "none", None)]
    out += [(1, p, smooth) for p in PROPAGATE]
    out += [(n, p, s) for n in INTERVALS[1:] for s in (None, smooth) for p in PROPAGATE]
    return out


def cpu_seconds() -> float:
    """CPU time of this process so far, every thread's."""
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def one_run(
    video: str, model: str, size: int | None, frames: int, setting: tuple[int, str, float | None], keep: bool
) -> tuple[float, float, list, dict]:
    """fps and CPU ms per frame from the first result to the last, (``keep``) each result's picture and labels,
    and the summary row."""
    interval, propagate, smooth = setting
    kept, arrived, cpu = [], [], []
    with Pipeline(
        video, model=model, input_size=size, interval=interval, propagate=propagate, smooth=smooth, max_frames=frames
    ) as pipeline:
        for result in pipeline:
            arrived.append(time.perf_counter())
            cpu.append(cpu_seconds())
            if keep:
                kept.append((result.frame, result.labels))
    fps = (len(arrived) - 1) / (arrived[-1] - arrived[0])
    return fps, 1000 * (cpu[-1] - cpu[0]) / (len(cpu) - 1), kept, pipeline.summary().sources[0]


def whole_runs(video: str, model: str, size: int | None, frames: int, smooth: float, rounds: int) -> dict:
    """Every setting's best fps over the rounds, with agreement and TC from the first round."""
    classes = open_model(model).spec.num_classes
    table: dict[str, dict] = {}
    reference: list[np.ndarray] = []
    one_run(video, model, size, frames, settings(smooth)[0], keep=False)  # warm-up: first-run costs stay out
    for round_ in range(rounds):
        for setting in settings(smooth)[:: -1 if round_ % 2 else 1]:
            gc.collect()
            time.sleep(0.5)  # the last run's threads wind down
            key = f"{setting[0]} {setting[1]} {'smooth' if setting[2] else 'plain'}"
            fps, cpu_ms, kept, row = one_run(video, model, size, frames, setting, keep=round_ == 0)
            if round_ == 0:
                images, labels = [k[0] for k in kept], [k[1] for k in kept]
                reference = reference or labels
                versus = ConfusionMatrix(classes)
                for got, truth in zip(labels, reference, strict=True):
                    versus.update(got, truth)
                table[key] = {
                    "fps": fps,
                    "cpu_ms": cpu_ms,
                    "agreement": float(np.mean([(a == b).mean() for a, b in zip(labels, reference, strict=True)])),
                    "miou": versus.compute().miou,
                    "tc": sequence_consistency(images, labels, classes),
                    "propagation": row.get("propagation", "none"),
                    "load": os.getloadavg()[0],
                }
            else:
                table[key]["fps"] = max(table[key]["fps"], fps)
                table[key]["cpu_ms"] = min(table[key]["cpu_ms"], cpu_ms)
            print(f"{key}: {fps:.2f} fps, {cpu_ms:.1f} CPU ms/frame, load {os.getloadavg()[0]:.1f}", flush=True)
    base = table["1 none plain"]["fps"]
    for row in table.values():
        row["fps_ratio"] = row["fps"] / base
    return table


def print_table(name: str, table: dict) -> None:
    print(
        f"\n{name}\n\n| N | propagate | smooth | fps | vs N=1 | CPU ms/frame | agreement | mIoU vs N=1 | TC "
        "| carried by |"
    )
    print("|---|---|---|---|---|---|---|---|---|---|")
    for key, r in table.items():
        n, propagate, smooth = key.split()
        print(
            f"| {n} | {propagate} | {'on' if smooth == 'smooth' else 'off'} | {r['fps']:.1f} | {r['fps_ratio']:.2f}x "
            f"| {r['cpu_ms']:.1f} | {r['agreement']:.4f} | {r['miou']:.4f} | {r['tc']:.4f} | {r['propagation']} |"
        )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--video", default="car-detection.mp4")
    parser.add_argument("--frames", type=int, default=100, help="frames for the one-frame comparison")
    parser.add_argument("--model", action="append", default=[], help="NAME=PATH.onnx[@SHORT_SIDE]: whole runs")
    parser.add_argument("--frames-run", type=int, default=60, help="frames per whole run")
    parser.add_argument("--smooth", type=float, default=0.5, help="the smoothing setting's weight")
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--json", dest="json_path")
    args = parser.parse_args()
    report = {
        "date": datetime.now(UTC).isoformat(timespec="seconds"),
        "machine": machine(),
        "video": args.video,
        "load_before": os.getloadavg(),
        "one_frame": one_frame(args.video, args.frames),
        "runs": {},
    }
    print(json.dumps(report["one_frame"], indent=2), flush=True)
    for item in args.model:
        name, _, rest = item.partition("=")
        path, _, size = rest.partition("@")
        table = whole_runs(args.video, path, int(size) if size else None, args.frames_run, args.smooth, args.rounds)
        report["runs"][name] = {"model": path, "short_side": size or None, "frames": args.frames_run, "table": table}
        print_table(name, table)
    report["load_after"] = os.getloadavg()
    print(f"\nload {report['load_before'][0]:.1f} -> {report['load_after'][0]:.1f}, {report['date']}")
    if args.json_path:
        with open(args.json_path, "w") as out:
            json.dump(report, out, indent=2)


if __name__ == "__main__":
    main()
