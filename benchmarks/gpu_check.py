"""The one GPU command: every GPU check and figure in one time-boxed run, one JSON and one log back.

    python benchmarks/gpu_check.py --out "$OUT"          # on a CUDA machine, ~6-8 min
    python benchmarks/gpu_check.py --dry-run --out tmp   # the same steps on the CPU at tiny sizes, ~1-2 min

It first makes PyAV, pydantic and pyzmq importable: where they are missing it
installs the wheels carried in ``.whl/`` into a temporary site and re-runs
itself with that site on PYTHONPATH. Then each step runs as a subprocess with
a timeout, under one overall budget; a step that fails or times out is
recorded and the next one runs. Steps: ``streamseg doctor --json``; a
measured fp16 matmul peak; a generated 1080p30 H.264 clip; fcn_resnet50
exported (random weights); NVDEC decode against CPU decode; an end-to-end
``run --backend auto --precision fp16 --decode gpu``; ``bench`` (bare engine at
batch 1 and 8, with and without CUDA graphs, end-to-end, the FLOP floor, GPU
memory); ``pytest -m gpu``; torch.compile at batch 8; and, once ``run`` takes
several inputs (``--batch``), the most 1080p30 streams held in real time.

``--out`` receives ``gpu-check.json`` (every figure, GPU, driver, date) and
``gpu-check.log`` (every step's command and output). See benchmarks/GPU_CHECK.md.
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import re
import shutil
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
SITE = Path("/tmp/streamseg-gpu-check-site")
NEEDED = ("av", "pydantic", "zmq")
PREREQUISITES = ("doctor", "clip", "export")  # run even with --only: the other steps need their results


def ensure_packages() -> None:
    """Install the carried wheels into a temporary site and re-exec, when a needed package is missing."""
    missing = [name for name in NEEDED if _missing(name)]
    if not missing or os.environ.get("STREAMSEG_GPU_CHECK_SITE"):
        return
    wheels = sorted((ROOT / ".whl").glob("*.whl"))
    if not wheels:
        sys.exit(f"gpu_check: {', '.join(missing)} missing and no wheels in {ROOT / '.whl'} (see GPU_CHECK.md)")
    subprocess.run(
        [
            sys.executable,
            "-m",
            "pip",
            "install",
            "-q",
            "--no-index",
            "--no-deps",
            "--no-compile",
            "--no-cache-dir",
            "--upgrade",
            "--target",
            str(SITE),
            *map(str, wheels),
        ],
        check=True,
    )
    env = {
        **os.environ,
        "STREAMSEG_GPU_CHECK_SITE": str(SITE),
        "PYTHONPATH": os.pathsep.join(filter(None, [str(SITE), os.environ.get("PYTHONPATH")])),
    }
    os.execve(sys.executable, [sys.executable, *sys.argv], env)


def _missing(name: str) -> bool:
    import importlib.util

    return importlib.util.find_spec(name) is None


class Check:
    """Runs steps under one deadline; records each step's status, seconds, figures; logs everything."""

    def __init__(self, out: Path, work: Path, budget_s: float, dry_run: bool, only: set[str] = frozenset()):
        self.out, self.work, self.dry_run, self.only = out, work, dry_run, only
        self.slack = 4 if dry_run else 1  # a shared CPU runs the tiny steps slower than the GPU runs the real ones
        self.deadline = time.monotonic() + budget_s
        self.started = time.monotonic()
        self.log = open(out / "gpu-check.log", "w")  # noqa: SIM115 - open for the whole run
        self.steps: dict[str, dict] = {}
        self.last = ("", "")  # the last step's stdout and stderr
        self.env = {
            **os.environ,
            "PYTHONUNBUFFERED": "1",
            "PYTHONPATH": os.pathsep.join(filter(None, [str(ROOT), os.environ.get("PYTHONPATH")])),
        }
        if (ROOT / ".media" / "car-detection.mp4").is_file():  # the footage carried along (GPU_CHECK.md)
            self.env.setdefault("STREAMSEG_MEDIA", str(ROOT / ".media"))

    def left(self) -> float:
        return self.deadline - time.monotonic()

    def skip(self, name: str, reason: str) -> None:
        self.steps[name] = {"status": "skipped", "reason": reason, "seconds": 0.0, "figures": {}}
        self._say(f"== {name}: skipped: {reason}")

    def wanted(self, name: str) -> bool:
        """Whether ``--only`` (if given) asks for this step; the steps others need always run."""
        return not self.only or name in PREREQUISITES or name.split("_")[0] in self.only or name in self.only

    def run(self, name: str, args: list[str], timeout: float, *, need: float | None = None, cwd: Path = ROOT):
        """Run ``args`` (python -m ... or a script) with at most ``timeout`` s; None when skipped or failed."""
        if not self.wanted(name):
            self.skip(name, "not in --only")
            return None
        timeout *= self.slack
        room = self.left()
        if room < (need or min(timeout, 20)):
            self.skip(name, f"time budget: {room:.0f} s left")
            return None
        timeout = min(timeout, room)
        shown = ["-c", "<" + name + " snippet>", *args[2:]] if args[:1] == ["-c"] else args
        self._say(f"== {name}: python {' '.join(shown)} (timeout {timeout:.0f} s)")
        started = time.monotonic()
        try:
            proc = subprocess.run(
                [sys.executable, *args], cwd=cwd, env=self.env, capture_output=True, text=True, timeout=timeout
            )
            status = "ok" if proc.returncode == 0 else "failed"
            stdout, stderr, rc = proc.stdout, proc.stderr, proc.returncode
        except subprocess.TimeoutExpired as err:
            status, rc = "timeout", None
            stdout = err.stdout.decode(errors="replace") if isinstance(err.stdout, bytes) else (err.stdout or "")
            stderr = err.stderr.decode(errors="replace") if isinstance(err.stderr, bytes) else (err.stderr or "")
        seconds = round(time.monotonic() - started, 1)
        self.log.write(f"-- stdout\n{stdout}\n-- stderr\n{stderr}\n")
        self.last = (stdout, stderr)
        step = {"status": status, "seconds": seconds, "rc": rc, "figures": {}}
        if status != "ok":
            tail = (stderr.strip() or stdout.strip()).splitlines()[-3:]
            step["reason"] = " | ".join(tail)[-400:] or status
        self.steps[name] = step
        self._say(f"== {name}: {status} in {seconds} s")
        return (stdout, stderr) if status == "ok" else None

    def figures(self, name: str, values: dict) -> None:
        self.steps[name]["figures"].update(values)

    def _say(self, line: str) -> None:
        print(line, flush=True)
        self.log.write(line + "\n")
        self.log.flush()


def snippet(code: str) -> list[str]:
    return ["-c", code]


MATMUL = """
import json, time, torch
cuda = torch.cuda.is_available()
n, dtype, device = (8192, torch.float16, "cuda") if cuda else (512, torch.float32, "cpu")
a, b = (torch.randn(n, n, device=device, dtype=dtype) for _ in range(2))
for _ in range(3): a @ b
if cuda: torch.cuda.synchronize()
times = []
for _ in range(10):
    t = time.perf_counter(); a @ b
    if cuda: torch.cuda.synchronize()
    times.append(time.perf_counter() - t)
times.sort()
print(json.dumps({"matmul_n": n, "dtype": str(dtype), "device": device,
                  "median_ms": round(1000 * times[5], 3), "tflops": round(2 * n**3 / times[5] / 1e12, 3)}))
"""

CLIP = """
import sys; sys.path.insert(0, ".")
from tests.support.videos import make_video
make_video(sys.argv[1], width=int(sys.argv[2]), height=int(sys.argv[3]), frames=int(sys.argv[4]), fps=30)
"""

NVDEC = """
import json, sys, time
import numpy as np
from streamseg.sources.file import FileSource
from streamseg.sources.nvdec import open_device_source
path, limit = sys.argv[1], int(sys.argv[2])
def timed(source):
    t, frames = time.perf_counter(), list(source.frames())
    return frames, len(frames) / (time.perf_counter() - t)
cpu_frames, cpu_fps = timed(FileSource(path, max_frames=limit))
result = {"cpu_decode_fps": round(cpu_fps, 1), "frames": len(cpu_frames)}
gpu, reason = open_device_source(path, max_frames=limit)
if gpu is None:
    result.update(nvdec=False, reason=reason)
else:
    gpu_frames, gpu_fps = timed(gpu)
    errors = [np.abs(g.image.cpu().numpy().astype(np.int16) - c.image.astype(np.int16)) for g, c in
              zip(gpu_frames[:10], cpu_frames[:10])]
    result.update(nvdec=True, nvdec_fps=round(gpu_fps, 1), nvdec_frames=len(gpu_frames),
                  max_abs_error=int(max(e.max() for e in errors)),
                  mean_abs_error=round(float(np.mean([e.mean() for e in errors])), 3),
                  same_pts=[g.pts for g in gpu_frames] == [c.pts for c in cpu_frames])
print(json.dumps(result))
"""


def last_json(stdout: str) -> dict:
    for line in reversed(stdout.strip().splitlines()):
        if line.startswith("{"):
            return json.loads(line)
    return json.loads(stdout)


def run_summary(stderr: str) -> dict:
    """Figures from ``run``'s closing line: frames in/out, dropped, fps, backend; and how it decoded."""
    found = re.search(r"(\d+) frames in, (\d+) out, (\d+) dropped, ([\d.]+) fps over ([\d.]+) s on (.+)", stderr)
    figures = {
        "nvdec_used": "decode: NVDEC" in stderr,
        "cpu_decode_line": next((line.strip() for line in stderr.splitlines() if "not NVDEC" in line), None),
    }
    if found:
        figures.update(
            frames_in=int(found[1]),
            frames_out=int(found[2]),
            dropped=int(found[3]),
            fps=float(found[4]),
            seconds=float(found[5]),
            backend=found[6].strip(),
        )
    return figures


def bench_figures(report: dict) -> dict:
    bare, floor = report.get("bare") or {}, report.get("floor") or {}
    keep = {
        "bare_fps": report.get("bare_fps"),
        "end_to_end_fps": report.get("end_to_end_fps"),
        "end_to_end_over_bare": (report.get("ratios") or {}).get("end_to_end/bare"),
        "batch": bare.get("batch"),
        "engine": bare.get("engine"),
        "precision": bare.get("precision"),
        "engine_p50_ms": ((bare.get("stages") or {}).get("infer") or {}).get("p50_ms"),
        "floor_ms": floor.get("floor_ms"),
        "engine_over_floor": floor.get("engine_over_floor"),
        "gmacs_per_frame": (report.get("flops") or {}).get("gmacs"),
        "input_size": report.get("input_size"),
        "frame_size": report.get("frame_size"),
        "warnings": report.get("warnings"),
    }
    for mode in ("bare", "end_to_end"):
        for key in ("gpu_peak_allocated_mb", "gpu_peak_reserved_mb", "gpu_device_used_mb"):
            if key in (report.get(mode) or {}):
                keep[f"{mode}_{key}"] = report[mode][key]
    return {k: v for k, v in keep.items() if v is not None}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--out", type=Path, default=Path(os.environ.get("OUT") or "gpu-check-out"))
    parser.add_argument("--dry-run", action="store_true", help="CPU, tiny sizes: checks the script, not a GPU")
    parser.add_argument("--model", type=Path, help="an exported fcn_resnet50 ONNX to reuse [default: export one]")
    parser.add_argument("--budget", type=float, help="seconds for all steps [default: 480; dry run 900]")
    parser.add_argument("--only", default="", help="comma-separated steps to run (a rerun), e.g. pytest_gpu,run_fp16")
    parser.add_argument("--work", type=Path, default=Path("/tmp/streamseg-gpu-check"), help="scratch folder")
    args = parser.parse_args(argv)
    ensure_packages()
    dry = args.dry_run
    args.out.mkdir(parents=True, exist_ok=True)
    args.work.mkdir(parents=True, exist_ok=True)
    only = {name.strip() for name in args.only.split(",") if name.strip()}
    check = Check(args.out, args.work, args.budget or (900 if dry else 480), dry, only)
    width, height, frames = (128, 72, 8) if dry else (1920, 1080, 300)
    size = ["--size", "64", "--no-winograd"] if dry else []  # the Winograd rewrite costs a CPU run seconds
    bench_frames = "4" if dry else "60"
    cli = ["-m", "streamseg"]

    got = check.run("doctor", [*cli, "doctor", "--json"], 90)
    doctor = json.loads(got[0]) if got else {}
    if got:
        check.figures(
            "doctor",
            {"auto_fp16": doctor.get("auto_backend", {}).get("fp16"), "nvdec": doctor.get("pyav", {}).get("nvdec")},
        )
    got = check.run("matmul_peak", snippet(MATMUL), 60)
    if got:
        check.figures("matmul_peak", last_json(got[0]))

    clip = args.work / f"moving-{width}x{height}.mp4"
    if check.run("clip", [*snippet(CLIP), str(clip), str(width), str(height), str(frames)], 120):
        check.figures(
            "clip",
            {"path": str(clip), "size": [width, height], "frames": frames, "fps": 30, "bytes": clip.stat().st_size},
        )
    model = args.model
    if model is None:
        model = args.work / "fcn_resnet50.onnx"
        check.run(
            "export", [*cli, "models", "export", "fcn_resnet50", "--weights", "none", "--output", str(model)], 180
        )
    else:
        check.skip("export", f"reusing {model}")
    ready = clip.is_file() and model.is_file()

    if clip.is_file():
        got = check.run("nvdec", [*snippet(NVDEC), str(clip), str(frames)], 90)
        if got:
            check.figures("nvdec", last_json(got[0]))
    else:
        check.skip("nvdec", "no clip")

    if ready:
        decode = "auto" if dry else "gpu"
        got = check.run(
            "run_fp16",
            [
                *cli,
                "-v",
                "run",
                str(clip),
                "--model",
                str(model),
                "--backend",
                "auto",
                "--precision",
                "fp16",
                "--decode",
                decode,
                "-o",
                str(args.work / "run.mp4"),
                "--no-progress",
                *size,
            ],
            180,
        )
        if got:
            check.figures("run_fp16", run_summary(got[1]))
        bench = [*cli, "bench", str(clip), "--model", str(model), "--json", *size]
        torch_precision = "fp32" if dry else "fp16"  # FP16 convolutions crawl on a CPU
        plans = [
            (
                "bench_auto_b1",
                ["--backend", "auto", "--precision", "fp16", "--modes", "bare,end-to-end", "--frames", bench_frames],
            ),
            (
                "bench_torch_graphs_b1",
                [
                    "--backend",
                    "torch",
                    "--precision",
                    torch_precision,
                    "--modes",
                    "bare",
                    "--cuda-graphs",
                    "--frames",
                    bench_frames,
                ],
            ),
            (
                "bench_torch_graphs_b8",
                [
                    "--backend",
                    "torch",
                    "--precision",
                    torch_precision,
                    "--modes",
                    "bare",
                    "--cuda-graphs",
                    "--batch",
                    "2" if dry else "8",
                    "--frames",
                    "3" if dry else "30",
                ],
            ),
        ]
        for name, extra in plans:
            got = check.run(name, [*bench, *extra], 150)
            if got:
                check.figures(name, bench_figures(last_json(got[0])))
    else:
        for name in ("run_fp16", "bench_auto_b1", "bench_torch_graphs_b1", "bench_torch_graphs_b8"):
            check.skip(name, "no clip or no model")

    gpu_tests = sorted(
        str(p.relative_to(ROOT))
        for p in (ROOT / "tests").rglob("test_*.py")
        if re.search(r"mark\.gpu\b", p.read_text())
    )
    per_test = ["--timeout", "150"] if not _missing("pytest_timeout") else []  # one hung test must not eat it all
    got = check.run(
        "pytest_gpu",
        ["-m", "pytest", "-m", "gpu", "-q", "-rs", "-p", "no:cacheprovider", *per_test, *gpu_tests],
        270 if not dry else 120,
        need=60,
    )
    if check.steps["pytest_gpu"]["status"] != "skipped":  # counts from the last line, passed or not
        counts = re.findall(r"(\d+) (passed|failed|skipped|errors?|deselected)", check.last[0].strip()[-300:])
        check.figures("pytest_gpu", {kind: int(n) for n, kind in counts})

    if ready:
        multistream(check, cli, clip, model, size)
    else:
        check.skip("multistream", "no clip or no model")
    if dry:
        check.skip(
            "bench_torch_compile_b8", "dry run: inductor needs minutes on a CPU (tests/backends/test_torch_options.py)"
        )
    elif ready:
        got = check.run(
            "bench_torch_compile_b8",
            [
                *cli,
                "bench",
                str(clip),
                "--model",
                str(model),
                "--precision",
                "fp16",
                "--json",
                "--backend",
                "torch",
                "--modes",
                "bare",
                "--compile",
                "--cuda-graphs",
                "--batch",
                "8",
                "--frames",
                "30",
            ],
            240,
            need=120,
        )
        if got:
            check.figures("bench_torch_compile_b8", bench_figures(last_json(got[0])))
    return write_report(check, doctor)


def multistream(check: Check, cli: list[str], clip: Path, model: Path, size: list[str]) -> None:
    """N real-time 1080p30 streams batched into one engine: the largest N kept up, labels only and with encode.

    N doubles until a run drops frames or falls under 95% of N x 30 fps; each stream is its own copy of the
    clip (its own name), played as a camera (``--realtime``) for 150 frames.
    """
    if not check.wanted("multistream"):
        check.skip("multistream", "not in --only")
        return
    helptext = subprocess.run(
        [sys.executable, *cli, "run", "--help"], env=check.env, capture_output=True, text=True, timeout=60, cwd=ROOT
    ).stdout
    if "--batch" not in helptext:
        check.skip("multistream", "`streamseg run` takes one input here (no --batch): multi-stream not merged yet")
        return
    counts = (1, 2) if check.dry_run else (2, 4, 8, 16)
    streams = []
    for i in range(1, max(counts) + 1):
        copy = check.work / "streams" / f"cam{i:02d}.mp4"
        copy.parent.mkdir(parents=True, exist_ok=True)
        if not copy.exists():
            shutil.copyfile(clip, copy)
        streams.append(str(copy))
    held = {}
    for kind in ("labels", "overlay"):
        held[kind] = 0
        for n in counts:
            name = f"multistream_{kind}_{n}"
            out = check.work / f"ms-{kind}-{n}"
            out.mkdir(parents=True, exist_ok=True)  # -o wants its folder to exist
            target = ["--labels-out", str(out / "{name}")] if kind == "labels" else ["-o", str(out / "{name}.mp4")]
            got = check.run(
                name,
                [
                    *cli,
                    "-v",
                    "run",
                    *streams[:n],
                    "--model",
                    str(model),
                    "--batch",
                    str(n),
                    "--realtime",
                    "--backend",
                    "auto",
                    "--precision",
                    "fp16",
                    "--max-frames",
                    "150",
                    *target,
                    "--no-progress",
                    *size,
                ],
                90,
                need=45,
            )
            if not got:
                break
            figures = run_summary(got[1])
            figures["realtime"] = figures.get("dropped") == 0 and figures.get("fps", 0) >= 0.95 * 30 * n
            check.figures(name, figures)
            if figures["realtime"]:
                held[kind] = n
            elif not check.dry_run:  # a dry run goes on, to run every step once
                break
    check.steps["multistream"] = {
        "status": "ok",
        "seconds": 0.0,
        "figures": {
            "largest_n_held_realtime_labels": held["labels"],
            "largest_n_held_realtime_overlay": held["overlay"],
        },
    }
    check._say(
        f"== multistream: ok: largest N held in real time {held['labels']} (labels), {held['overlay']} (overlay)"
    )


def write_report(check: Check, doctor: dict) -> int:
    gpus = (doctor.get("torch") or {}).get("gpus") or []
    report = {
        "kind": "dry run (CPU, tiny sizes)" if check.dry_run else "GPU check",
        "date": datetime.datetime.now(datetime.UTC).isoformat(timespec="seconds"),
        "commit": _commit(),
        "gpu": gpus[0]["name"] if gpus else None,
        "compute_capability": gpus[0]["compute_capability"] if gpus else None,
        "gpu_memory_gib": gpus[0]["memory_gib"] if gpus else None,
        "driver": (doctor.get("torch") or {}).get("driver"),
        "torch": (doctor.get("torch") or {}).get("version"),
        "pyav": (doctor.get("pyav") or {}).get("version"),
        "seconds": round(time.monotonic() - check.started, 1),
        "steps": check.steps,
        "doctor": doctor,
    }
    steps = check.steps
    report["summary"] = {
        "bare_fps_b1": steps.get("bench_auto_b1", {}).get("figures", {}).get("bare_fps"),
        "bare_fps_b1_graphs": steps.get("bench_torch_graphs_b1", {}).get("figures", {}).get("bare_fps"),
        "bare_fps_b8_graphs": steps.get("bench_torch_graphs_b8", {}).get("figures", {}).get("bare_fps"),
        "bare_fps_b8_compiled": steps.get("bench_torch_compile_b8", {}).get("figures", {}).get("bare_fps"),
        "end_to_end_fps": steps.get("bench_auto_b1", {}).get("figures", {}).get("end_to_end_fps"),
        "end_to_end_over_bare": steps.get("bench_auto_b1", {}).get("figures", {}).get("end_to_end_over_bare"),
        "engine_over_floor_b8": steps.get("bench_torch_graphs_b8", {}).get("figures", {}).get("engine_over_floor"),
        "nvdec_used_in_run": steps.get("run_fp16", {}).get("figures", {}).get("nvdec_used"),
        **steps.get("multistream", {}).get("figures", {}),
        "failed": sorted(name for name, s in steps.items() if s["status"] in ("failed", "timeout")),
    }
    report["summary"]["engine_over_measured_floor_b8"] = _over_measured_floor(steps)
    (check.out / "gpu-check.json").write_text(json.dumps(report, indent=2) + "\n")
    check.log.close()
    width = max(map(len, steps))
    print(
        "\n".join(
            f"{name:<{width}}  {s['status']:<8} {s['seconds']:>6.1f} s  {s.get('reason', '')[:80]}"
            for name, s in steps.items()
        )
    )
    print(json.dumps(report["summary"]))
    return 1 if report["summary"]["failed"] else 0


def _over_measured_floor(steps: dict) -> float | None:
    """Engine time at batch 8 over the floor at the matmul rate measured on this GPU (not the datasheet's)."""
    peak = steps.get("matmul_peak", {}).get("figures", {})
    b8 = steps.get("bench_torch_graphs_b8", {}).get("figures", {})
    if peak.get("device") != "cuda" or not peak.get("tflops") or not b8.get("engine_p50_ms"):
        return None
    floor_ms = 2 * b8["gmacs_per_frame"] * b8["batch"] / peak["tflops"]  # GMAC -> ms at TFLOP/s
    return round(b8["engine_p50_ms"] / floor_ms, 2)


def _commit() -> str | None:
    try:
        return (
            subprocess.run(
                ["git", "-C", str(ROOT), "rev-parse", "--short=12", "HEAD"],
                capture_output=True,
                text=True,
                timeout=10,
                check=True,
            ).stdout.strip()
            or None
        )
    except (OSError, subprocess.SubprocessError):
        return None


if __name__ == "__main__":
    sys.exit(main())
