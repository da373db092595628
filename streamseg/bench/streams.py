"""``streamseg bench --streams N``: N streams through one process (batched) against N separate processes.

Both sides get the same N sources, frames and options, one after the other
in the same run. The one-process side reports aggregate and per-stream fps,
the histogram of frames per inference call and its peak RSS; the other side
runs N ``streamseg run`` processes at once and reports their aggregate fps and
the sum of their resident memory at its peak.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from streamseg.bench.resources import ResourceSampler

_PAGE_KB = os.sysconf("SC_PAGE_SIZE") // 1024 if hasattr(os, "sysconf") else 4


def measure_streams(
    sources: list[str],
    model_path: Path,
    *,
    frames: int,
    backend: str,
    threads: int | None,
    size: int | None,
    precision: str | None = None,
    winograd: bool = True,
    batch: int | None = None,
) -> dict:
    """Run ``sources`` as one batched pipeline, then as one process each; returns both sides' figures."""
    with tempfile.TemporaryDirectory(prefix="streamseg-bench-streams-") as scratch:
        together = _one_process(
            sources,
            model_path,
            frames=frames,
            backend=backend,
            threads=threads,
            size=size,
            precision=precision,
            winograd=winograd,
            batch=batch,
            out=Path(scratch) / "one",
        )
        apart = _separate_processes(
            sources,
            model_path,
            frames=frames,
            backend=backend,
            threads=threads,
            size=size,
            precision=precision,
            winograd=winograd,
            out=Path(scratch) / "apart",
        )
    return {
        "streams": len(sources),
        "one_process": together,
        "separate_processes": apart,
        "ratios": {
            "fps one/separate": _divide(together["aggregate_fps"], apart["aggregate_fps"]),
            "peak rss one/separate": _divide(together["peak_rss_mb"], apart["peak_rss_mb"]),
        },
    }


def _one_process(sources, model_path, *, frames, backend, threads, size, precision, winograd, batch, out) -> dict:
    from streamseg.pipeline import Pipeline

    out.mkdir(parents=True)
    pipeline = Pipeline(
        sources,
        model_path,
        backend=backend,
        threads=threads,
        input_size=size,
        precision=precision,
        winograd=winograd,
        batch=batch,
        max_frames=frames,
        outputs=[str(out / "{index}.mp4")],
    )
    with ResourceSampler() as resources:
        started = time.perf_counter()
        summary = pipeline.run()
        wall = time.perf_counter() - started
    used = resources.report()
    return {
        "aggregate_fps": round(summary.frames_out / wall, 4),
        "frames": summary.frames_out,
        "wall_s": round(wall, 3),
        "per_stream_fps": {row["name"]: row["fps"] for row in summary.sources},
        "batch_sizes": {str(k): v for k, v in summary.batches.items()},
        "engine": summary.backend,
        "peak_rss_mb": used["peak_rss_mb"],
        "cpu_percent": used["cpu_percent"],
    }


def _separate_processes(sources, model_path, *, frames, backend, threads, size, precision, winograd, out) -> dict:
    out.mkdir(parents=True)
    common = ["--model", str(model_path), "--backend", backend, "--max-frames", str(frames), "--no-progress"]
    common += [] if threads is None else ["--threads", str(threads)]
    common += [] if size is None else ["--size", str(size)]
    common += [] if precision is None else ["--precision", precision]
    common += [] if winograd else ["--no-winograd"]
    started = time.perf_counter()
    procs = [
        subprocess.Popen(
            [sys.executable, "-m", "streamseg", "run", source, "-o", str(out / f"{i}.mp4"), *common],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
            text=True,
        )
        for i, source in enumerate(sources)
    ]
    peak_total, peaks = 0, [0] * len(procs)
    while any(p.poll() is None for p in procs):
        rss = [_rss_kb(p.pid) for p in procs]
        peaks = [max(a, b) for a, b in zip(peaks, rss)]
        peak_total = max(peak_total, sum(rss))
        time.sleep(0.1)
    wall = time.perf_counter() - started
    written = 0
    for proc in procs:
        assert proc.stderr is not None  # opened with stderr=PIPE
        err = proc.stderr.read()
        proc.stderr.close()
        if proc.returncode != 0:
            raise RuntimeError(f"a separate `streamseg run` failed: {err.strip().splitlines()[-1:]}")
        written += _frames_out(err)
    return {
        "aggregate_fps": round(written / wall, 4),
        "frames": written,
        "wall_s": round(wall, 3),
        "peak_rss_mb": round(peak_total / 1024, 1),
        "per_process_peak_rss_mb": [round(p / 1024, 1) for p in peaks],
    }


def _rss_kb(pid: int) -> int:
    try:
        return int(Path(f"/proc/{pid}/statm").read_text().split()[1]) * _PAGE_KB
    except (OSError, IndexError, ValueError):
        return 0


def _frames_out(stderr: str) -> int:
    found = re.search(r"(\d+) out,", stderr)
    return int(found[1]) if found else 0


def _divide(a: float | None, b: float | None) -> float | None:
    return round(a / b, 4) if a and b else None


def as_text(report: dict) -> str:
    one, apart = report["one_process"], report["separate_processes"]
    lines = [
        f"{report['streams']} streams on {one['engine']}",
        f"  one process:        {one['aggregate_fps']:.3f} fps aggregate, peak RSS {one['peak_rss_mb']:.0f} MB, "
        f"frames per call {one['batch_sizes']}",
        "  per stream:         " + ", ".join(f"{k} {v:.3f}" for k, v in one["per_stream_fps"].items()),
        f"  separate processes: {apart['aggregate_fps']:.3f} fps aggregate, "
        f"peak RSS {apart['peak_rss_mb']:.0f} MB (sum)",
        "  one/separate:       " + ", ".join(f"{k} {v}x" for k, v in report["ratios"].items()),
    ]
    return "\n".join(lines)
