"""Inference every Nth frame with labels carried forward, and score smoothing: quality and cost on real footage.

For the first ``--frames`` frames of INPUT, the model runs on every frame (the reference). Then, for each
interval N, the frames between inferences get the last inferred labels warped by DIS optical flow
(``direct``: flow to the key frame; ``accumulate``: frame-to-frame flows composed) or held, and their label
agreement with the reference is measured. Flicker is the fraction of pixels whose label changes between
consecutive frames where the flow says the picture is static (|flow| < 1 px at frame size), measured on the
per-frame labels with and without score smoothing. Costs are per frame at the footage's size.

    python benchmarks/temporal.py ../shared/media/car-detection.mp4 --model fcn_tiny/model.onnx \\
        --speed-model fcn_resnet50=fcn.onnx --speed-model lraspp_mobilenet_v3_large=lraspp.onnx --json out.json

Prints markdown tables (docs/temporal.md holds a run of them).
"""

from __future__ import annotations

import argparse
import itertools
import json
import os
import platform
import time
from datetime import UTC, datetime

import numpy as np

from streamseg.backends import create_backend
from streamseg.models import spec_from_onnx
from streamseg.postprocess import CpuPostprocessor
from streamseg.preprocess import CpuPreprocessor
from streamseg.sources import open_source
from streamseg.temporal import DenseFlow, LabelPropagator, ScoreSmoother
from streamseg.temporal.flow import resize_flow

INTERVALS = (2, 3, 5)
ALPHAS = (0.7, 0.5, 0.3)


def run_model(path: str, video: str, frames: int, start: int = 0):
    """Per-frame inference: (frames RGB, labels at frame size, raw scores, geometry, ms per inference)."""
    spec = spec_from_onnx(path)
    backend = create_backend("onnxruntime", path, spec)
    pre, post = CpuPreprocessor(spec), CpuPostprocessor(spec)
    images, labels, scores, times = [], [], [], []
    source = open_source(video, max_frames=start + frames)
    try:
        for frame in source.frames():
            if frame.index < start:
                continue
            began = time.perf_counter()
            prepared = pre(frame)
            raw = backend.run(prepared.tensor)
            labels.append(post(raw, prepared.geometry))
            times.append((time.perf_counter() - began) * 1000)
            images.append(frame.image)
            scores.append(raw)
    finally:
        source.close()
        backend.close()
    return images, labels, scores, post, prepared.geometry, float(np.median(times[1:] or times))


def agreement(a: np.ndarray, b: np.ndarray) -> float:
    return float((a == b).mean())


def miou(pairs, classes: int = 256) -> float:
    """Mean IoU over the classes present, of label maps against their references, pooled over frames.

    Unlike pixel agreement it weighs a small class (a car) as much as the road around it.
    """
    inter, union = np.zeros(classes), np.zeros(classes)
    for got, ref in pairs:
        both = np.bincount(ref[got == ref].ravel(), minlength=classes)
        inter += both
        union += np.bincount(got.ravel(), minlength=classes) + np.bincount(ref.ravel(), minlength=classes) - both
    present = union > 0
    return float((inter[present] / union[present]).mean())


def propagation_quality(images, reference, interval: int, mode: str, chain: str = "direct", short_side: int = 240):
    """Mean agreement of propagated frames with per-frame inference, overall and by age; ms per propagated frame."""
    propagator = LabelPropagator(mode, chain=chain, flow=DenseFlow(short_side) if mode == "flow" else None)
    by_age: dict[int, list[float]] = {}
    seconds, pairs = [], []
    for i, (image, labels) in enumerate(zip(images, reference)):
        if i % interval == 0:
            propagator.set_key(image, labels, i, i * 80.0)
            continue
        out = propagator.propagate(image, i, i * 80.0)
        seconds.append(out.seconds)
        by_age.setdefault(out.age_frames, []).append(agreement(out.labels, labels))
        pairs.append((out.labels, labels))
    flat = [v for values in by_age.values() for v in values]
    return {
        "agreement": float(np.mean(flat)),
        "min": float(np.min(flat)),
        "miou": miou(pairs),
        "by_age": {age: float(np.mean(v)) for age, v in sorted(by_age.items())},
        "ms": float(np.median(seconds) * 1000),
    }


def static_masks(images, short_side: int = 240) -> tuple[list[np.ndarray], list[np.ndarray]]:
    """Small gray frames and, per consecutive pair, where |flow| < 1 px at frame size (frame-size masks)."""
    flow = DenseFlow(short_side)
    grays = [flow.prepare(image) for image in images]
    h, w = images[0].shape[:2]
    masks = []
    for a, b in itertools.pairwise(grays):
        f = resize_flow(flow.compute(b, a), h, w)
        masks.append(np.linalg.norm(f, axis=-1) < 1.0)
    return grays, masks


def flicker(labels: list[np.ndarray], masks: list[np.ndarray]) -> float:
    return float(np.mean([(a != b)[m].mean() for a, b, m in zip(labels, labels[1:], masks)]))


def smoothing_quality(
    images, reference, scores, post, geometry, grays, masks, alpha: float, compensate: bool, short_side: int = 240
):
    """Flicker and agreement with per-frame labels, smoothing every frame's scores; ms per update."""
    flow = DenseFlow(short_side)
    smoother = ScoreSmoother(alpha)
    labels, seconds = [], []
    for i, raw in enumerate(scores):
        motion = flow.compute(grays[i], grays[i - 1]) if compensate and i else None
        began = time.perf_counter()
        smoothed = smoother.update(raw, grays[i], motion)
        seconds.append(time.perf_counter() - began)
        labels.append(post(smoothed, geometry))
    return {
        "flicker": flicker(labels, masks),
        "agreement": float(np.mean([agreement(a, b) for a, b in zip(labels, reference)])),
        "miou": miou(zip(labels, reference)),
        "ms": float(np.median(seconds) * 1000),
        "resets": dict(smoother.resets),
    }


def flow_costs(images, sides=(180, 240, 360)) -> dict[int, dict[str, float]]:
    """ms per frame for prepare (gray + resize), DIS flow and the label warp at frame size."""
    from streamseg.temporal.flow import warp_labels

    labels = np.zeros(images[0].shape[:2], np.uint8)
    costs = {}
    for side in sides:
        flow = DenseFlow(side)
        key = flow.prepare(images[0])
        parts = {"prepare": [], "flow": [], "warp": []}
        for image in images[1:]:
            t0 = time.perf_counter()
            small = flow.prepare(image)
            t1 = time.perf_counter()
            field = flow.compute(small, key)
            t2 = time.perf_counter()
            warp_labels(labels, field)
            t3 = time.perf_counter()
            for name, dt in zip(parts, (t1 - t0, t2 - t1, t3 - t2)):
                parts[name].append(dt * 1000)
        costs[side] = {name: float(np.median(v)) for name, v in parts.items()}
        costs[side]["total"] = sum(costs[side].values())
    return costs


def speed(path: str, video: str, frames: int = 4) -> float:
    """Median ms of one inference (preprocess + model + decode) at the spec's input size."""
    return run_model(path, video, frames)[5]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("source")
    parser.add_argument("--model", required=True, help="ONNX with an embedded spec: the model whose labels count")
    parser.add_argument("--frames", type=int, default=60)
    parser.add_argument("--start", type=int, default=0, help="first frame used")
    parser.add_argument(
        "--speed-model",
        action="append",
        default=[],
        help="NAME=PATH.onnx: time it for the interval throughput table; repeat",
    )
    parser.add_argument(
        "--speed-ms",
        action="append",
        default=[],
        help="NAME=MS: an inference time measured "
        "elsewhere (e.g. streamseg bench's bare infer p50), for the same table; repeat",
    )
    parser.add_argument("--json", help="also write every figure here")
    args = parser.parse_args()

    began = datetime.now(UTC)
    load = os.getloadavg()
    images, reference, scores, post, geometry, infer_ms = run_model(args.model, args.source, args.frames, args.start)
    h, w = images[0].shape[:2]
    classes = spec_from_onnx(args.model).classes
    counts = np.bincount(np.concatenate([labels.ravel() for labels in reference]), minlength=len(classes))
    report = {
        "date": began.isoformat(timespec="minutes"),
        "machine": platform.processor() or platform.machine(),
        "cores": os.cpu_count(),
        "load_before": load,
        "frames": len(images),
        "start": args.start,
        "frame_size": [w, h],
        "model": args.model,
        "model_input": list(geometry.input_size),
        "infer_ms": infer_ms,
        "class_share": {c: round(float(n / counts.sum()), 4) for c, n in zip(classes, counts) if n},
    }

    report["propagation"] = {}
    for n in INTERVALS:
        for name, mode, chain in (
            ("flow direct", "flow", "direct"),
            ("flow accumulate", "flow", "accumulate"),
            ("hold", "none", "direct"),
        ):
            report["propagation"][f"{n} {name}"] = propagation_quality(images, reference, n, mode, chain)
    grays, masks = static_masks(images)
    report["static_share"] = float(np.mean([m.mean() for m in masks]))
    report["flicker_per_frame"] = flicker(reference, masks)
    report["smoothing"] = {}
    for alpha, compensate in itertools.product(ALPHAS, (True, False)):
        key = f"alpha {alpha} {'flow' if compensate else 'no flow'}"
        report["smoothing"][key] = smoothing_quality(
            images, reference, scores, post, geometry, grays, masks, alpha, compensate
        )
    report["flow_costs"] = flow_costs(images[:30])
    big = np.random.default_rng(0).normal(size=(1, 21, 520, 924)).astype(np.float32)  # fcn_resnet50's scores
    smoother, flow = ScoreSmoother(0.5), DenseFlow()
    field = flow.compute(grays[1], grays[0])
    smoother.update(big, grays[0])
    t0 = time.perf_counter()
    for _ in range(3):
        smoother.update(big, grays[0], field)
    report["smooth_ms_21x520x924"] = (time.perf_counter() - t0) / 3 * 1000
    report["speed"] = {
        f"{name} (ONNX Runtime, here)": speed(path, args.source)
        for name, path in (item.split("=", 1) for item in args.speed_model)
    }
    report["speed"][f"{os.path.basename(args.model)} (here)"] = infer_ms
    given = (item.split("=", 1) for item in args.speed_ms)
    report["speed"].update({f"{name} (given)": float(ms) for name, ms in given})
    report["load_after"] = os.getloadavg()
    print_tables(report)
    if args.json:
        with open(args.json, "w") as out:
            json.dump(report, out, indent=1)


def print_tables(r: dict) -> None:
    print(
        f"frames {r['start']}-{r['start'] + r['frames'] - 1} ({r['frames']}) at {r['frame_size'][0]}x"
        f"{r['frame_size'][1]}, model input "
        f"{r['model_input'][1]}x{r['model_input'][0]}, {r['infer_ms']:.1f} ms per inference; load "
        f"{r['load_before'][0]:.1f} -> {r['load_after'][0]:.1f}; {r['date']}"
    )
    print("per-frame labels by class: " + ", ".join(f"{c} {v:.1%}" for c, v in r["class_share"].items()) + "\n")
    print(
        "| N | labels from | pixel agreement with per-frame inference | worst frame | by age (frames) "
        "| mIoU vs per-frame | ms/frame |"
    )
    print("|---|---|---|---|---|---|---|")
    for key, q in r["propagation"].items():
        n, name = key.split(" ", 1)
        ages = ", ".join(f"{a}: {v:.3f}" for a, v in q["by_age"].items())
        print(f"| {n} | {name} | {q['agreement']:.4f} | {q['min']:.4f} | {ages} | {q['miou']:.4f} | {q['ms']:.1f} |")
    print(f"\nstatic share {r['static_share']:.2f}; per-frame flicker {r['flicker_per_frame']:.4f}\n")
    print(
        "| smoothing | flicker (static px) | vs per-frame | agreement with per-frame | mIoU vs per-frame | ms/update |"
    )
    print("|---|---|---|---|---|---|")
    print(f"| none | {r['flicker_per_frame']:.4f} | 1.00 | 1.0000 | 1.0000 | 0 |")
    for key, q in r["smoothing"].items():
        print(
            f"| {key} | {q['flicker']:.4f} | {q['flicker'] / r['flicker_per_frame']:.2f} | {q['agreement']:.4f} | "
            f"{q['miou']:.4f} | {q['ms']:.1f} |"
        )
    print(f"\nsmoothing 21x520x924 scores with flow: {r['smooth_ms_21x520x924']:.1f} ms/update\n")
    print("| flow short side | prepare ms | DIS ms | warp ms | total ms/frame |")
    print("|---|---|---|---|---|")
    for side, c in r["flow_costs"].items():
        print(f"| {side} | {c['prepare']:.1f} | {c['flow']:.1f} | {c['warp']:.1f} | {c['total']:.1f} |")
    if r["speed"]:
        prop = r["flow_costs"][240]["total"]
        print(f"\noffline interval throughput, (I + (N-1) * {prop:.1f} ms) / N per frame, one worker:\n")
        print("| model | infer ms | N=1 fps | N=2 fps | N=3 fps | N=5 fps |")
        print("|---|---|---|---|---|---|")
        for name, infer in r["speed"].items():
            cells = " | ".join(f"{1000 * n / (infer + (n - 1) * prop):.2f}" for n in (1, 2, 3, 5))
            print(f"| {name} | {infer:.0f} | {cells} |")


if __name__ == "__main__":
    main()
