"""Cost vs. pixels: bare engine and end-to-end fps over 360p/720p/1080p for each model.

The footage is rescaled to each height first (PyAV, libx264 ultrafast). FCN runs at
the frame's own size (``--size`` = short side, as the Hub example feeds it); the DUC
model's input is fixed at 800x800, so only decode, pre/postprocess and encode grow.

    python benchmarks/scaling.py INPUT OUT_DIR --model fcn_resnet50=m.onnx --model duc_resnet101_hdc=duc.onnx
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import av

from streamseg.bench import run_benchmark

HEIGHTS = {"360p": (640, 360), "720p": (1280, 720), "1080p": (1920, 1080)}


def rescale(source: str, target: Path, size: tuple[int, int], frames: int) -> Path:
    with av.open(source) as inp, av.open(str(target), "w") as out:
        video = inp.streams.video[0]
        stream = out.add_stream("libx264", rate=video.average_rate or 25, options={"preset": "ultrafast"})
        stream.width, stream.height, stream.pix_fmt = *size, "yuv420p"
        stream.time_base = video.time_base
        for index, frame in enumerate(inp.decode(video)):
            if index >= frames:
                break
            scaled = frame.reformat(width=size[0], height=size[1], format="yuv420p")
            scaled.pts, scaled.time_base = frame.pts, frame.time_base
            for packet in stream.encode(scaled):
                out.mux(packet)
        for packet in stream.encode(None):
            out.mux(packet)
    return target


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("source")
    parser.add_argument("out_dir", type=Path)
    parser.add_argument("--model", action="append", required=True, help="NAME=PATH.onnx; repeat")
    parser.add_argument("--frames", type=int, default=4)
    args = parser.parse_args()
    args.out_dir.mkdir(parents=True, exist_ok=True)
    rows = []
    for label, size in HEIGHTS.items():
        video = rescale(args.source, args.out_dir / f"{label}.mp4", size, args.frames + 1)
        for item in args.model:
            name, path = item.split("=", 1)
            short = size[1] if name.startswith("fcn") else None
            report = run_benchmark(str(video), path, frames=args.frames, size=short, modes=("bare", "end-to-end"))
            report["scale"] = label
            rows.append(report)
            (args.out_dir / f"{name}-{label}.json").write_text(json.dumps(report, indent=1))
    print("| input | model | model input | GMACs/frame | bare fps | end-to-end fps | e2e/bare | bare ms per Mpixel |")
    print("|---|---|---|---:|---:|---:|---:|---:|")
    for r in rows:
        h, w = r["input_size"]
        bare_ms = 1000 / r["bare_fps"] if r["bare_fps"] else float("nan")
        print(
            f"| {r['scale']} | {r['spec']} | {h}x{w} | {r['flops']['gmacs']:.1f} | {r['bare_fps']:.3f} | "
            f"{r['end_to_end_fps']:.3f} | {r['ratios']['end_to_end/bare']:.2f} | {bare_ms / (h * w / 1e6):.0f} |"
        )


if __name__ == "__main__":
    main()
