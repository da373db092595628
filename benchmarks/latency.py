"""Glass-to-glass latency of a live run on loopback: p50/p90 from capture to a reader's decoded frame.

    .venv/bin/python benchmarks/latency.py --model m.onnx [--seconds 20] [--size 640x360] [-- run flags]

A camera simulator (tests/camera.py) draws its capture time (ms) into every
frame and publishes it to an RTSP relay (tests/rtsp_relay.py, gst-rtsp-server);
``streamseg run rtsp://…/cam -o rtsp://…/out-in`` segments and republishes it;
a PyAV reader decodes ``/out`` and subtracts the stamp it reads from the clock.
The same reader on ``/cam`` first gives the transport floor without streamseg.
Target: p50 <= model time (the run's infer p50) + 100 ms.
"""

from __future__ import annotations

import argparse
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests"))
from camera import latency_ms, read_stamp  # noqa: E402
from servers import Camera, RtspRelay, StreamReader, relay_missing  # noqa: E402


def measure(url: str, seconds: float, warmup: float = 2.0) -> list[int]:
    """Latencies (ms) of the frames a reader decodes from ``url`` over ``seconds``, after ``warmup``."""
    samples: list[int] = []
    started = time.monotonic()

    def on_frame(image: np.ndarray) -> None:
        value = latency_ms(read_stamp(image))
        if time.monotonic() - started >= warmup and value < 60_000:  # a misread stamp is far off
            samples.append(value)

    reader = StreamReader(url, options={"rtsp_transport": "tcp"}, keep_images=0)
    reader.on_frame = on_frame
    reader.start()
    time.sleep(warmup + seconds)
    reader.stop()
    return samples


def stats(samples: list[int]) -> str:
    if not samples:
        return "no frames"
    p50, p90 = np.percentile(samples, [50, 90])
    return f"p50 {p50:.0f} ms, p90 {p90:.0f} ms over {len(samples)} frames"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", required=True)
    parser.add_argument("--seconds", type=float, default=20)
    parser.add_argument("--fps", type=int, default=15)
    parser.add_argument("--size", default="640x360", help="camera frame size (the stamp needs 256 px width)")
    parser.add_argument("run_flags", nargs="*", help="extra flags for streamseg run, after --")
    args = parser.parse_args()
    reason = relay_missing()
    if reason:
        sys.exit(f"latency: {reason}")

    with RtspRelay("cam", "out") as relay, Camera(relay.url("cam-in"), fps=args.fps, size=args.size):
        floor = measure(relay.url("cam"), seconds=5)
        proc = subprocess.Popen([sys.executable, "-m", "streamseg", "run", relay.url("cam"), "-o", relay.url("out-in"),
                                 "--model", args.model, "--no-progress", *args.run_flags],
                                stderr=subprocess.PIPE, text=True)
        try:
            through = measure(relay.url("out"), seconds=args.seconds, warmup=4.0)
        finally:
            proc.send_signal(signal.SIGINT)
            _, err = proc.communicate(timeout=60)
    infer = re.search(r"^\s+infer\s+\d+\s+[\d.]+\s+([\d.]+)", err, re.M)
    summary = next((line for line in err.splitlines() if "frames in" in line), err.strip()[-300:])
    model_ms = float(infer[1]) if infer else float("nan")
    print(f"camera {args.size} @ {args.fps} fps, model {Path(args.model).name}")
    print(f"transport floor (camera -> relay -> reader):    {stats(floor)}")
    print(f"glass to glass (camera -> streamseg -> reader): {stats(through)}")
    print(f"model time (infer p50): {model_ms:.0f} ms; streamseg: {summary.strip()}")
    if through:
        p50 = float(np.percentile(through, 50))
        verdict = "met" if p50 <= model_ms + 100 else "NOT met"
        print(f"target p50 <= model + 100 ms = {model_ms + 100:.0f} ms: {verdict} ({p50:.0f} ms)")
    return 0 if proc.returncode == 0 and through else 1


if __name__ == "__main__":
    sys.exit(main())
