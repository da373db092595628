"""End-to-end throughput for --interval N and a paced live source with and without --latency-budget.

    python benchmarks/temporal_live.py ../shared/media/car-detection.mp4 \\
        --model fcn_resnet50=fcn.onnx --model lraspp_mobilenet_v3_large=lraspp.onnx --json out.json

Throughput: the first ``--frames`` frames of INPUT (at its own size) through the whole pipeline
(``Pipeline(..., interval=N, propagate="flow")``, no outputs), for each interval, one model after the other
in one process; fps = frames / wall time, and its ratio to interval 1.

Live: INPUT scaled to 640x360 and re-timed to 25 fps (a new file in ``--work``), played as a camera
(``realtime``, ``loop``) for ``--seconds``, through a plain run (live inputs drop the oldest frame) and a
``latency_budget`` run. Per run: input and output fps over the stream's time, the share of camera frames
inferred, the age of each output frame's mask (capture of the frame minus capture of its inferred key frame)
and the latency from a frame's capture to its result reaching the reader (the pipeline's whole path, no
encoder or network: benchmarks/latency.py measures those over RTSP). ``uptime``'s load average is recorded
with each run: the machine is shared.

Prints markdown tables.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import threading
import time
from datetime import UTC, datetime
from pathlib import Path

import av
import cv2
import numpy as np

from streamseg import Pipeline


def load() -> str:
    return "/".join(f"{x:.1f}" for x in os.getloadavg())


def make_clip(
    source: str,
    out: Path,
    *,
    width: int | None = None,
    height: int | None = None,
    fps: int | None = None,
    frames: int | None = None,
) -> Path:
    """``source`` re-encoded (H.264, no audio): scaled, re-timed to ``fps`` (every frame kept), cut to ``frames``."""
    if out.exists():
        return out
    with av.open(source) as inp, av.open(str(out), "w") as dst:
        stream_in = inp.streams.video[0]
        rate = fps or stream_in.average_rate
        w, h = width or stream_in.codec_context.width, height or stream_in.codec_context.height
        stream = dst.add_stream("libx264", rate=rate)
        stream.width, stream.height, stream.pix_fmt = w, h, "yuv420p"
        stream.options = {"crf": "18", "preset": "veryfast", "g": str(int(rate))}
        n = 0
        for frame in inp.decode(stream_in):
            image = frame.to_ndarray(format="rgb24")
            if (image.shape[1], image.shape[0]) != (w, h):
                image = cv2.resize(image, (w, h), interpolation=cv2.INTER_AREA)
            picture = av.VideoFrame.from_ndarray(image, format="rgb24")
            picture.pts = n
            for packet in stream.encode(picture):
                dst.mux(packet)
            n += 1
            if frames is not None and n >= frames:
                break
        for packet in stream.encode():
            dst.mux(packet)
    return out


def throughput(model: str, clip: Path, intervals: tuple[int, ...], size: int | None = None) -> dict[int, float]:
    fps = {}
    for n in intervals:
        with Pipeline(str(clip), model=model, interval=n, propagate="flow", input_size=size) as pipeline:
            count = sum(1 for _ in pipeline)
            fps[n] = count / pipeline.summary().wall_seconds
        print(f"  interval {n}: {fps[n]:.3f} fps (load {load()})", flush=True)
    return fps


def live(
    model: str, clip: Path, seconds: float, budget: float | None, sizes: str | None = None, prefer: str = "detail"
) -> dict:
    """One paced run of ``seconds``: rates, share inferred, mask age and capture-to-result latency."""
    options: dict = {"latency_budget": budget, "latency_prefer": prefer} if budget else {}
    if budget and sizes:
        options["latency_sizes"] = sizes
    arrived, latency, age, origins = [], [], [], []
    started_load = load()
    with Pipeline(str(clip), model=model, live={"realtime": True, "loop": True}, **options) as pipeline:
        timer = threading.Timer(seconds, pipeline.stop)
        timer.start()
        try:
            for r in pipeline:
                now = time.time()
                arrived.append(now)
                latency.append(1000 * (now - r.capture_time))
                age.append(r.age_ms)
                origins.append(r.origin)
        finally:
            timer.cancel()
        summary = pipeline.summary()
    row = summary.sources[0]
    stream_s = seconds  # the camera's time: frames_in / 25 over the timer
    settings = row.get("settings", "")
    return {
        "budget": budget,
        "sizes": sizes if budget else None,
        "prefer": prefer if budget else None,
        "frames_in": summary.frames_in,
        "frames_out": summary.frames_out,
        "dropped": sum(summary.dropped.values()),
        "fps_in": summary.frames_in / stream_s,
        "fps_out": len(arrived) / stream_s,
        "fps_out_steady": (len(arrived) - 1) / (arrived[-1] - arrived[0]) if len(arrived) > 1 else 0.0,
        "inferred_share": origins.count("inferred") / max(1, summary.frames_in),
        "age_p50_ms": float(np.percentile(age, 50)) if age else 0.0,
        "age_max_ms": max(age, default=0.0),
        "latency_p50_ms": float(np.percentile(latency, 50)) if latency else 0.0,
        "latency_p90_ms": float(np.percentile(latency, 90)) if latency else 0.0,
        "latency_max_ms": max(latency, default=0.0),
        "over_budget_share": (sum(x > budget for x in latency) / len(latency)) if budget and latency else None,
        "settings": settings,
        "infer_p50_ms": summary.stages.get("infer", {}).get("p50_ms"),
        "load": f"{started_load} -> {load()}",
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("source", help="real footage, e.g. ../shared/media/car-detection.mp4")
    parser.add_argument("--model", action="append", required=True, help="NAME=PATH.onnx (repeat)")
    parser.add_argument("--frames", type=int, default=30, help="throughput: frames of the footage")
    parser.add_argument("--intervals", default="1,2,3,5")
    parser.add_argument("--seconds", type=float, default=30, help="live: seconds per run")
    parser.add_argument("--budget", type=float, default=300)
    parser.add_argument("--size", type=int, help="throughput: input short side (default: the model's)")
    parser.add_argument(
        "--budget-sizes",
        action="append",
        default=[],
        help="NAME=S1,S2,...: one more budget run of model NAME with these --latency-sizes",
    )
    parser.add_argument(
        "--prefer-fresh",
        action="append",
        default=[],
        help="NAME[=S1,S2,...]: one more budget run of model NAME with --latency-prefer fresh (and these sizes)",
    )
    parser.add_argument("--skip", choices=["throughput", "live"], action="append", default=[])
    parser.add_argument("--work", default="/tmp/streamseg-temporal-live", help="folder for the prepared clips")
    parser.add_argument("--json", help="also write every figure here")
    args = parser.parse_args()
    work = Path(args.work)
    work.mkdir(parents=True, exist_ok=True)
    models = dict(m.split("=", 1) for m in args.model)
    intervals = tuple(int(n) for n in args.intervals.split(","))
    result: dict = {
        "machine": f"{platform.machine()}, {os.cpu_count()} cores",
        "size": args.size,
        "date": datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC"),
        "throughput": {},
        "live": {},
    }
    if "throughput" not in args.skip:
        clip = make_clip(args.source, work / f"first{args.frames}.mp4", frames=args.frames)
        for name, path in models.items():
            print(f"throughput {name} ({args.frames} frames of {clip.name}, load {load()})", flush=True)
            result["throughput"][name] = throughput(path, clip, intervals, args.size)
    if "live" not in args.skip:
        cam = make_clip(args.source, work / "cam640x360at25.mp4", width=640, height=360, fps=25)
        extra = [tuple(b.split("=", 1)) for b in args.budget_sizes]
        fresh = [(*f.split("=", 1), None)[:2] for f in args.prefer_fresh]
        runs = [(name, budget, None, "detail") for name in models for budget in (None, args.budget)]
        runs += [(name, args.budget, sizes, "detail") for name, sizes in extra]
        runs += [(name, args.budget, sizes, "fresh") for name, sizes in fresh]
        for name, budget, sizes, prefer in runs:
            print(f"live {name} budget {budget} sizes {sizes} prefer {prefer} (load {load()})", flush=True)
            row = live(models[name], cam, args.seconds, budget, sizes, prefer)
            result["live"].setdefault(name, []).append(row)
            print("  " + json.dumps(row), flush=True)
    print_tables(result)
    if args.json:
        Path(args.json).write_text(json.dumps(result, indent=1, default=str))


def print_tables(r: dict) -> None:
    print(f"\nMachine: {r['machine']}; {r['date']}")
    if r["throughput"]:
        names = list(r["throughput"])
        print("\n| interval | " + " | ".join(f"{n} fps | vs 1" for n in names) + " |")
        print("|---|" + "---:|---:|" * len(names))
        for n in next(iter(r["throughput"].values())):
            cells = []
            for name in names:
                fps = r["throughput"][name]
                cells.append(f"{fps[n]:.2f} | {fps[n] / fps[min(fps)]:.2f}x")
            print(f"| {n} | " + " | ".join(cells) + " |")
    if r["live"]:
        print(
            "\n| model | budget | fps in | fps out | inferred | mask age p50 / max ms | latency p50 / p90 / max ms "
            "| settings used | load |"
        )
        print("|---|---|---:|---:|---:|---|---|---|---|")
        for name, rows in r["live"].items():
            for x in rows:
                budget = f"{x['budget']:.0f} ms" if x["budget"] else "none (drop oldest)"
                if x.get("sizes"):
                    budget += f", sizes {x['sizes']}"
                if x.get("prefer") == "fresh":
                    budget += ", prefer fresh"
                print(
                    f"| {name} | {budget} | {x['fps_in']:.1f} | {x['fps_out']:.1f} | {x['inferred_share']:.0%} | "
                    f"{x['age_p50_ms']:.0f} / {x['age_max_ms']:.0f} | {x['latency_p50_ms']:.0f} / "
                    f"{x['latency_p90_ms']:.0f} / {x['latency_max_ms']:.0f} | {x['settings']} | {x['load']} |"
                )


if __name__ == "__main__":
    main()
