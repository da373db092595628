"""Soak test: a real-time camera through an RTSP relay on 127.0.0.1, streamseg republishing it, for N minutes.

streamseg reads the relay, writes RTSP back to it, a segmented recording, label maps, ``/metrics`` and the
preview page. The relay is killed and restarted ``--restarts`` times, evenly spread. Every second the script
samples streamseg's RSS, threads and open file descriptors and its frames written (``/metrics``), then
reports growth after the warm-up, the longest stall and how long each restart took to recover (from the
relay listening again to the next frame written).

    python benchmarks/soak.py --model m.onnx --minutes 30 --restarts 5 --json soak.json

Needs the test servers (``.ci/system-deps.sh``: gst-rtsp-server under /usr/bin/python3).
"""

from __future__ import annotations

import argparse
import json
import os
import re
import signal
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # the repository root: tests.support

from tests.support.servers import Camera, RtspRelay, free_port, relay_missing  # noqa: E402


def proc_status(pid: int) -> dict[str, int]:
    """RSS (bytes), threads and open fds of a running process, from /proc."""
    fields = {}
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        key, _, value = line.partition(":")
        if key in ("VmRSS", "Threads"):
            fields[key] = int(value.split()[0])
    return {"rss": fields["VmRSS"] * 1024, "threads": fields["Threads"], "fds": len(os.listdir(f"/proc/{pid}/fd"))}


def frames_written(metrics_url: str) -> int | None:
    try:
        text = urllib.request.urlopen(metrics_url, timeout=2).read().decode()
    except OSError:
        return None
    found = re.search(r'^streamseg_frames_total\{stage="output"\} ([0-9.e+]+)$', text, re.M)
    return int(float(found[1])) if found else None


def soak(model: str, minutes: float, restarts: int, warmup: float, work: Path, fps: int = 15) -> dict:
    relay = RtspRelay("cam", "out").start()
    camera = Camera(relay.url("cam-in"), fps=fps, size="320x192").__enter__()
    port, preview = free_port(), free_port()
    metrics = f"http://127.0.0.1:{port}/metrics"
    args = [
        sys.executable,
        "-m",
        "streamseg",
        "run",
        relay.url("cam"),
        "--model",
        model,
        "--no-progress",
        "-o",
        relay.url("out-in"),
        "-o",
        str(work / "rec" / "%Y%m%d-%H%M%S.mp4"),
        "--segment-seconds",
        "30",
        "--labels-out",
        str(work / "labels"),
        "--metrics-port",
        str(port),
        "--preview",
        str(preview),
        "--reconnect-max-delay",
        "1",
    ]
    (work / "rec").mkdir(parents=True, exist_ok=True)
    started = time.monotonic()
    streamseg = subprocess.Popen(args, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    duration = minutes * 60
    restart_at = [duration * (i + 1) / (restarts + 1) for i in range(restarts)]
    samples, recoveries, pending = [], [], None
    try:
        while time.monotonic() - started < duration and streamseg.poll() is None:
            now = time.monotonic() - started
            if restart_at and now >= restart_at[0]:
                restart_at.pop(0)
                relay.restart(down=2.0)
                pending = (time.monotonic() - started, frames_written(metrics) or 0)
            written = frames_written(metrics)
            sample = {"t": round(now, 2), "frames": written, **proc_status(streamseg.pid)}
            samples.append(sample)
            if pending is not None and written is not None and written > pending[1]:
                recoveries.append(round(sample["t"] - pending[0], 2))
                pending = None
            time.sleep(max(0.0, 1.0 - (time.monotonic() - started - now)))
    finally:
        alive = streamseg.poll() is None
        if alive:
            streamseg.send_signal(signal.SIGINT)
        try:
            _, err = streamseg.communicate(timeout=60)
        except subprocess.TimeoutExpired:
            streamseg.kill()
            _, err = streamseg.communicate()
        camera.__exit__(None, None, None)
        relay.stop()
    if pending is not None:
        recoveries.append(None)  # a restart it never came back from
    return report(samples, recoveries, restarts, warmup, streamseg.returncode, alive, err)


def report(
    samples: list[dict], recoveries: list, restarts: int, warmup: float, code: int, survived: bool, stderr: str
) -> dict:
    settled = [s for s in samples if s["t"] >= warmup and s["frames"] is not None]
    if len(settled) < 4:
        return {"error": "too few samples after the warm-up", "exit_code": code, "stderr_tail": stderr[-2000:]}
    tenth = max(1, len(settled) // 10)
    first_rss = sum(s["rss"] for s in settled[:tenth]) / tenth
    last_rss = sum(s["rss"] for s in settled[-tenth:]) / tenth
    stall, last_change, last_frames = 0.0, settled[0]["t"], settled[0]["frames"]
    for s in settled[1:]:
        if s["frames"] != last_frames:
            stall = max(stall, s["t"] - last_change)
            last_change, last_frames = s["t"], s["frames"]
    stall = max(stall, settled[-1]["t"] - last_change)
    return {
        "seconds": settled[-1]["t"],
        "warmup_s": warmup,
        "samples": len(samples),
        "restarts": restarts,
        "survived": survived,
        "exit_code": code,
        "frames_written": settled[-1]["frames"],
        "rss_mb": {
            "after_warmup": round(first_rss / 2**20, 1),
            "at_end": round(last_rss / 2**20, 1),
            "peak": round(max(s["rss"] for s in settled) / 2**20, 1),
        },
        "rss_growth": round(last_rss / first_rss - 1, 4),
        "threads": sorted({s["threads"] for s in settled}),
        "fds": sorted({s["fds"] for s in settled}),
        "longest_stall_s": round(stall, 2),
        "recovery_s": recoveries,
        "reconnect_lines": len(re.findall(r"reconnected", stderr)),
        "stderr_tail": stderr[-1500:],
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", required=True)
    parser.add_argument("--minutes", type=float, default=30)
    parser.add_argument("--restarts", type=int, default=5)
    parser.add_argument("--warmup", type=float, default=None, help="seconds left out of the growth figures")
    parser.add_argument("--json", help="write the report here too")
    args = parser.parse_args()
    reason = relay_missing()
    if reason:
        print(f"soak: cannot run: {reason}", file=sys.stderr)
        return 2
    warmup = args.warmup if args.warmup is not None else min(120.0, args.minutes * 60 / 6)
    with tempfile.TemporaryDirectory(prefix="streamseg-soak-") as work:
        result = soak(args.model, args.minutes, args.restarts, warmup, Path(work))
    text = json.dumps(result, indent=2)
    print(text)
    if args.json:
        Path(args.json).write_text(text)
    return 0 if result.get("survived") else 1


if __name__ == "__main__":
    sys.exit(main())
