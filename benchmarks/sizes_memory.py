"""Peak memory of one `streamseg run` over sources of 1 and of 3 distinct sizes, and the per-frame speed.

Cuts short clips of three sizes from a real video (PyAV), then runs ``streamseg run`` as a child
process on the first clip alone and on all three at once, reading the child's own VmHWM
(``tests/support/memory.py``). Then times inference per frame at each of the three sizes, in this
process, on the Winograd session and on the direct one (``--no-winograd``) in alternation, so that load
hits both alike: the figure is the ratio of medians.

    python benchmarks/sizes_memory.py --model fcn.onnx [--size 260] [--frames 10] [--rounds 4] [--json out.json]

``fcn.onnx`` from ``streamseg models export fcn_resnet50 --weights none -o fcn.onnx``.
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # the repository root: tests.support

from streamseg.bench.report import machine  # noqa: E402
from tests.support.memory import wait_with_peak_rss  # noqa: E402
from tests.support.paths import MEDIA  # noqa: E402
from tests.support.videos import cut_clip  # noqa: E402

SIZES = [(768, 432), (640, 480), (480, 640)]  # width x height: three input sizes at any --size


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


def per_frame_ms(model: str, clips: list[Path], size: int, rounds: int) -> dict[str, dict[str, float]]:
    """Median inference milliseconds per input size, Winograd and direct, timed in alternation."""
    from streamseg.backends import create_backend
    from streamseg.models import spec_from_onnx
    from streamseg.preprocess import CpuPreprocessor
    from streamseg.sources import open_source

    spec = spec_from_onnx(model)
    spec = spec.model_copy(update={"resize": spec.resize.model_copy(update={"size": size})})
    pre = CpuPreprocessor(spec)
    tensors = []
    for clip in clips:
        source = open_source(str(clip), max_frames=1)
        tensors += [pre(frame).tensor for frame in source.frames()]
        source.close()
    backends = {"winograd": create_backend("onnxruntime", model, spec, winograd=True)}
    backends["direct"] = create_backend("onnxruntime", model, spec, winograd=False)
    times: dict[str, dict[str, list[float]]] = {}
    for round_ in range(rounds + 1):  # the first round warms up
        for tensor in tensors:
            shape = "x".join(map(str, tensor.shape[2:]))
            for name in sorted(backends, reverse=round_ % 2 == 1):  # each goes first every other round
                start = time.perf_counter()
                backends[name].run(tensor)
                if round_:
                    times.setdefault(shape, {}).setdefault(name, []).append(time.perf_counter() - start)
    for backend in backends.values():
        backend.close()
    return {shape: {name: statistics.median(t) * 1e3 for name, t in by.items()} for shape, by in times.items()}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", required=True, help="an exported fcn_resnet50 (or any) ONNX")
    parser.add_argument("--video", default=str(MEDIA / "car-detection.mp4"))
    parser.add_argument("--size", type=int, default=260)
    parser.add_argument("--frames", type=int, default=10, help="frames per clip")
    parser.add_argument("--rounds", type=int, default=4, help="timed inferences per size and engine")
    parser.add_argument("--json", dest="json_path")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as folder:
        root = Path(folder)
        clips = [cut_clip(Path(args.video), root / f"clip_{w}x{h}.mp4", w, h, args.frames) for w, h in SIZES]
        results = {}
        for name, inputs in {"one size": clips[:1], "three sizes": clips}.items():
            out = root / name.replace(" ", "_")
            out.mkdir()
            peak, seconds = measured_run(args.model, inputs, out, args.size)
            results[name] = {"peak_mib": round(peak / 2**20), "seconds": round(seconds, 2)}
            print(f"run, {name:12s} peak {peak / 2**20:6.0f} MiB  ({seconds:.1f} s)")
        ratio = results["three sizes"]["peak_mib"] / results["one size"]["peak_mib"]
        print(f"peak memory, three sizes / one: {ratio:.2f}x")
        speed = per_frame_ms(args.model, clips, args.size, args.rounds)
    for shape, ms in speed.items():
        print(
            f"input {shape:9s} Winograd {ms['winograd']:7.0f} ms  direct {ms['direct']:7.0f} ms  "
            f"Winograd {ms['direct'] / ms['winograd']:.2f}x as fast"
        )
    report = {
        "date": datetime.now(UTC).isoformat(timespec="seconds"),
        "machine": machine(),
        "size": args.size,
        "frames_per_clip": args.frames,
        "runs": results,
        "three_over_one": round(ratio, 3),
        "per_frame_ms": {shape: {k: round(v, 1) for k, v in ms.items()} for shape, ms in speed.items()},
    }
    if args.json_path:
        Path(args.json_path).write_text(json.dumps(report, indent=2))


if __name__ == "__main__":
    main()
