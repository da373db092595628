"""Where and when a benchmark ran, and its report as text."""

from __future__ import annotations

import datetime
import os
import platform
import subprocess
import sys
from importlib import metadata
from pathlib import Path

from streamseg.cores import usable_cores
from streamseg.isa import this_cpu_isa

REPO = Path(__file__).resolve().parents[2]
# each mode's key in the report, in the order the summary lists them
REPORTED = ("bare", "end_to_end", "naive", "same_engine")


def machine() -> dict:
    model = platform.processor() or platform.machine()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            key, _, value = line.partition(":")
            if key.strip() == "model name":
                model = value.strip()
                break
    except OSError:
        pass
    cores = usable_cores()
    versions = {}
    for package in ("onnxruntime", "torch", "torchvision", "av", "numpy", "opencv-python-headless"):
        try:
            versions[package] = metadata.version(package)
        except metadata.PackageNotFoundError:
            pass
    return {
        "cpu": model,
        "cores": cores,
        "isa": this_cpu_isa(),  # None: no /proc/cpuinfo flags to read
        "platform": platform.platform(),
        "python": sys.version.split()[0],
        "versions": versions,
        "load_average": [round(x, 2) for x in os.getloadavg()],
    }


def commit() -> str | None:
    """The checkout's commit, ``+dirty`` when tracked files differ from it."""
    try:
        head = subprocess.run(
            ["git", "-C", str(REPO), "rev-parse", "--short=12", "HEAD"],
            capture_output=True,
            text=True,
            timeout=10,
            check=True,
        ).stdout.strip()
        dirty = (
            subprocess.run(
                ["git", "-C", str(REPO), "diff", "--quiet", "HEAD", "--", "streamseg", "benchmarks"], timeout=10
            ).returncode
            != 0
        )
    except (OSError, subprocess.SubprocessError):
        return None
    return head + ("+dirty" if dirty else "")


def now() -> str:
    return datetime.datetime.now(datetime.UTC).isoformat(timespec="seconds")


def _fps(value: float | None) -> str:
    return "n/a" if value is None else f"{value:.3f} fps"


def _ratio(report: dict, key: str) -> str:
    value = report["ratios"].get(key)
    return "n/a" if value is None else f"{value:.2f}x"


def as_text(report: dict) -> str:
    """A human summary: fps and ratios, then per-stage latencies and resources per mode."""
    lines = [
        f"streamseg bench: {report['model']} on {report['input']} ({report['frames']} frames, input "
        f"{report['input_size'][0]}x{report['input_size'][1]}, {report['flops']['gmacs']:.1f} GMACs/frame)",
        f"  machine: {report['machine']['cpu']}, {report['machine']['cores']} cores, "
        f"ISA {' '.join(report['machine'].get('isa') or ['unknown'])}; commit {report['commit']}; {report['date']}",
        "  " + " | ".join(f"{mode.replace('_', '-')} {_fps(report.get(f'{mode}_fps'))}" for mode in REPORTED),
        "  " + "   ".join(f"{key} {_ratio(report, key)}" for key in report["ratios"]),
    ]
    for mode in REPORTED:
        result = report.get(mode)
        if not result:
            continue
        lines.append(
            f"  {mode}: {result['fps']:.3f} fps on {result['engine']}, CPU {result['cpu_percent']:.0f}%, "
            f"peak RSS {result['peak_rss_mb']:.0f} MiB"
        )
        if "gpu" in result:
            lines.append(
                f"    GPU memory: peak {result['gpu_peak_allocated_mb']:.0f} MiB allocated, "
                f"{result['gpu_device_used_mb']:.0f} MiB used on the {result['gpu']}"
            )
        for stage, s in result["stages"].items():
            cpu = f"  cpu {s['cpu_ms']:7.1f} ms/frame" if "cpu_ms" in s else ""  # the pipeline's stage threads
            lines.append(f"    {stage:<12} p50 {s['p50_ms']:9.1f} ms  p99 {s['p99_ms']:9.1f} ms{cpu}")
        if "process_cpu_ms" in result:
            lines.append(f"    process CPU {result['process_cpu_ms']:.1f} ms/frame (every thread: engine, codecs)")
        if mode == "end_to_end":
            occupancy = ", ".join(f"{n} {q['mean']:.1f}/{q['maxsize']}" for n, q in result["queue_occupancy"].items())
            lines.append(f"    queues (mean depth/size): {occupancy}; dropped {result['dropped']}")
    floor = report.get("floor")
    if floor:
        tf32 = f" ({floor['floor_ms_tf32']:.2f} ms on TF32 tensor cores)" if "floor_ms_tf32" in floor else ""
        lines.append(
            f"  FLOP floor: {floor['floor_ms']:.2f} ms{tf32} at {floor['peak_tflops']:g} TFLOPS "
            f"{floor['precision']} ({floor['source']}); engine p50 {floor['engine_ms']:.1f} ms = "
            f"{floor['engine_over_floor']:.1f}x the floor"
        )
    for mode, reason in report.get("skipped", {}).items():
        lines.append(f"  {mode}: skipped: {reason}")
    for warning in report.get("warnings", ()):
        lines.append(f"  warning: {warning}")
    return "\n".join(lines)
