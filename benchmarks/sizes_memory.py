"""Peak memory of one `streamseg run` over sources of 1 and of 3 distinct sizes, and the per-frame speed.

Cuts short clips of three sizes from a real video (PyAV), then runs ``streamseg run`` as a child
process on the first clip alone and on all three at once, reading the child's own VmHWM
(``tests/support/memory.py``), and the frames per second of each run from its wall time. With
``--compare-direct`` it also runs the three clips with ``--no-winograd``, the plain model's speed.

    python benchmarks/sizes_memory.py --model fcn.onnx [--size 260] [--frames 10] [--json out.json]

``fcn.onnx`` from ``streamseg models export fcn_resnet50 --weights none -o fcn.onnx``.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path

import av

from streamseg.bench.report import machine
from tests.support.memory import wait_with_peak_rss
from tests.support.paths import MEDIA

SIZES = [(768, 432), (640, 480), (480, 640)]  # width x height: three input sizes at any --size


def cut_clip(video: Path, path: Path, width: int, height: int, frames: int) -> Path:
    """The first ``frames`` pictures of ``video`` scaled to ``width`` x ``height``, as H.264."""
    with av.open(str(video)) as source, av.open(str(path), "w") as target:
        stream = target.add_stream("libx264", rate=10)
        stream.width, stream.height, stream.pix_fmt = width, height, "yuv420p"
        stream.options = {"preset": "ultrafast"}
        for index, frame in enumerate(source.decode(video=0)):
            if index == frames:
                break
            picture = frame.reformat(width=width, height=height, format="yuv420p")
            picture.pts = index
            target.mux(stream.encode(picture))
        target.mux(stream.encode(None))
    return path


def measured_run(model: str, clips: list[Path], out: Path, size: int, *extra: str) -> tuple[int, float]:
    """``streamseg run`` over ``clips``: (peak resident bytes, seconds)."""
    args = [sys.executable, "-m", "streamseg", "run", *map(str, clips), "-m", model, "--size", str(size)]
    args += ["-o", f"{out}/{{name}}.mp4", "--backend", "onnxruntime", *extra]
    start = time.perf_counter()
    with (out / "stderr.txt").open("w") as err:
        proc = subprocess.Popen(args, stdout=subprocess.DEVNULL, stderr=err)
        peak = wait_with_peak_rss(proc, timeout=900)
    seconds = time.perf_counter() - start
    if proc.returncode:
        raise SystemExit(f"streamseg run failed ({proc.returncode}): {(out / 'stderr.txt').read_text()[-2000:]}")
    return peak, seconds


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", required=True, help="an exported fcn_resnet50 (or any) ONNX")
    parser.add_argument("--video", default=str(MEDIA / "car-detection.mp4"))
    parser.add_argument("--size", type=int, default=260)
    parser.add_argument("--frames", type=int, default=10, help="frames per clip")
    parser.add_argument("--compare-direct", action="store_true", help="also run the 3 clips with --no-winograd")
    parser.add_argument("--json", dest="json_path")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as folder:
        root = Path(folder)
        clips = [cut_clip(Path(args.video), root / f"clip_{w}x{h}.mp4", w, h, args.frames) for w, h in SIZES]
        runs = {"one size": ([clips[0]], ()), "three sizes": (clips, ())}
        if args.compare_direct:
            runs["three sizes, --no-winograd"] = (clips, ("--no-winograd",))
        results = {}
        for name, (inputs, extra) in runs.items():
            out = root / name.replace(" ", "_").replace(",", "")
            out.mkdir()
            peak, seconds = measured_run(args.model, inputs, out, args.size, *extra)
            results[name] = {
                "peak_mib": round(peak / 2**20),
                "seconds": round(seconds, 2),
                "fps": round(len(inputs) * args.frames / seconds, 3),
            }
            print(f"{name:28s} peak {peak / 2**20:7.0f} MiB  {seconds:6.1f} s  {results[name]['fps']:.3f} fps")
    ratio = results["three sizes"]["peak_mib"] / results["one size"]["peak_mib"]
    print(f"peak memory, three sizes / one: {ratio:.2f}x")
    report = {
        "date": datetime.now(UTC).isoformat(timespec="seconds"),
        "machine": machine(),
        "size": args.size,
        "frames_per_clip": args.frames,
        "runs": results,
        "three_over_one": round(ratio, 3),
    }
    if args.json_path:
        Path(args.json_path).write_text(json.dumps(report, indent=2))


if __name__ == "__main__":
    main()
