"""``streamseg bench``: the pipeline against the bare engine, the naive Hub loop and the same-engine loop."""

from __future__ import annotations

import importlib.util
import os
import tempfile
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from streamseg.bench.floor import floor_report
from streamseg.bench.flops import count_macs
from streamseg.bench.modes import decode, measure_bare, measure_end_to_end, measure_naive
from streamseg.bench.report import REPORTED, commit, machine, now
from streamseg.bench.same_engine import measure_same_engine
from streamseg.errors import ConfigError, SourceError
from streamseg.models import ZOO, open_model
from streamseg.models.spec import ModelSpec
from streamseg.preprocess import plan_geometry

MODES = ("bare", "end-to-end", "naive", "same-engine")

__all__ = ["MODES", "run_benchmark"]


def run_benchmark(
    source: str,
    model: str,
    *,
    frames: int = 30,
    backend: str = "auto",
    threads: int | None = None,
    precision: str | None = None,
    winograd: bool = True,
    engine_labels: bool = True,
    engine_normalize: bool = True,
    size: int | None = None,
    modes: Sequence[str] = MODES,
    naive_weights: str = "none",
    seed: int = 0,
    peak_tflops: float | None = None,
    spec: ModelSpec | None = None,
    output: str | Path | None = None,
    compile: bool = False,
    batch: int = 1,
    cuda_graphs: bool = False,
    engine_streams: int | None = None,
    progress: Callable[[str], None] = lambda mode: None,
) -> dict:
    """Measure the chosen modes on the first ``frames`` frames of ``source``; returns the report.

    ``batch`` > 1 runs the bare engine on batches of that many frames (the floor counts them all);
    ``compile`` runs the torch backend through torch.compile; ``cuda_graphs`` replays the bare engine's
    captured CUDA graphs (TensorRT, torch). ``engine_streams``: as ``run --engine-streams`` (None: what a run
    of a file gets), in bare and end-to-end alike; the same-engine loop runs one frame at a time, one stream.
    """
    unknown = sorted(set(modes) - set(MODES))
    if unknown or not modes:
        raise ConfigError(f"modes: choose from {', '.join(MODES)} (got {', '.join(unknown) or 'none'})")
    if frames < 2:
        raise ConfigError(f"frames: at least 2 are needed to measure a rate, got {frames}")
    handle = open_model(model, spec)
    spec = handle.spec.with_short_side(size, "size")
    model_path = handle.with_spec(spec)  # the model, its graph parsed at most once for every mode
    probe = decode(source, 1)
    if not probe:
        raise SourceError(f"{source}: no frames")
    height, width = probe[0].image.shape[:2]
    geometry = plan_geometry(spec.resize, height, width)
    shape = (1, 3, *geometry.input_size) if spec.layout == "NCHW" else (1, *geometry.input_size, 3)
    flops = count_macs(model_path, shape)
    report: dict[str, Any] = {
        "date": now(),
        "commit": commit(),
        "machine": machine(),
        "input": str(source),
        "model": str(model),
        "spec": spec.name,
        "frames": frames,
        "frame_size": [height, width],
        "input_size": list(geometry.input_size),
        "flops": flops.as_dict(),
        "reference_gflops": _reference(spec.name),
        "skipped": {},
    }
    check = None
    if "bare" in modes:
        progress("bare")
        report["bare"], tensor, first = measure_bare(
            model_path,
            spec,
            decode(source, frames),
            backend=backend,
            threads=threads,
            precision=precision,
            winograd=winograd,
            compile=compile,
            batch=batch,
            cuda_graphs=cuda_graphs,
            labels=engine_labels,
            streams=engine_streams,
            pictures=engine_normalize,
        )
        check = (tensor, first)
        bare = report["bare"]
        bare["gmacs_per_s"] = round(flops.gmacs * bare["fps"], 2)
        # the floor next to the engine's time: on a listed GPU by itself, elsewhere from --peak-tflops
        report["floor"] = floor_report(
            batch * flops.gmacs,
            bare["precision"],
            bare["stages"]["infer"]["p50_ms"],
            device_name=bare.get("gpu") or bare["device"],
            peak_tflops=peak_tflops,
        )
    with tempfile.TemporaryDirectory(prefix="streamseg-bench-") as scratch:
        if "end-to-end" in modes:
            progress("end-to-end")
            target = Path(output) if output else Path(scratch) / "end_to_end.mp4"
            report["end_to_end"] = measure_end_to_end(
                source,
                model_path,
                spec,
                frames=frames,
                output=target,
                backend=backend,
                threads=threads,
                precision=precision,
                size=size,
                winograd=winograd,
                compile=compile,
                engine_labels=engine_labels,
                engine_normalize=engine_normalize,
                streams=engine_streams,
            )
        if "naive" in modes:
            reason = _naive_unavailable(spec.name)
            if reason:
                report["skipped"]["naive"] = reason
            else:
                progress("naive")
                report["naive"] = measure_naive(
                    source,
                    spec,
                    frames=frames,
                    output=Path(scratch) / "naive.mp4",
                    weights=naive_weights,
                    seed=seed,
                    check=check,
                    engine_precision=report["bare"]["precision"] if "bare" in report else "fp32",
                )
        if "same-engine" in modes:
            progress("same-engine")
            report["same_engine"] = measure_same_engine(
                source,
                model_path,
                spec,
                frames=frames,
                output=Path(scratch) / "same_engine.mp4",
                backend=backend,
                threads=threads,
                precision=precision,
                winograd=winograd,
                compile=compile,
            )
    fps = {mode: report[mode]["fps"] if mode in report else None for mode in REPORTED}
    report.update({f"{mode}_fps": value for mode, value in fps.items()})
    report["ratios"] = {
        "end_to_end/bare": _divide(fps["end_to_end"], fps["bare"]),
        "end_to_end/naive": _divide(fps["end_to_end"], fps["naive"]),
        "end_to_end/same_engine": _divide(fps["end_to_end"], fps["same_engine"]),
    }
    report["machine"]["load_average_after"] = [round(x, 2) for x in os.getloadavg()]
    report["warnings"] = _contention(report)
    return report


def _contention(report: dict) -> list[str]:
    """Signs that something outside this process shared the cores while it measured."""
    cores = report["machine"]["cores"]
    warnings = []
    bare = report.get("bare")
    check = (report.get("naive") or {}).get("same_weights_check")
    if bare and check and bare["precision"] != "fp32":
        warnings.append(
            f"the engine computes in {bare['precision']}, the naive loop in fp32: their labels agree "
            f"on {check['label_agreement']:.2%} of pixels"
        )
    if bare and bare["cpu_percent"] < 85 * cores:
        warnings.append(
            f"bare engine got {bare['cpu_percent']:.0f}% CPU of {100 * cores}%: other processes "
            "competed for the cores; compare ratios only from quiet runs"
        )
    if max(report["machine"]["load_average_after"][0], report["machine"]["load_average"][0]) > cores + 0.5:
        warnings.append(
            f"load average {report['machine']['load_average'][0]} -> "
            f"{report['machine']['load_average_after'][0]} on {cores} cores"
        )
    return warnings


def _divide(a: float | None, b: float | None) -> float | None:
    return round(a / b, 4) if a and b else None


def _reference(name: str) -> dict | None:
    entry = ZOO.get(name)
    if entry is None or entry.gflops is None or entry.gflops_input is None:
        return None
    return {
        "gflops": entry.gflops,
        "input": list(entry.gflops_input),
        "source": "torchvision (multiply-adds, aux head included)",
    }


def _naive_unavailable(name: str) -> str | None:
    entry = ZOO.get(name)
    if entry is None or entry.torchvision_builder is None:
        return f"{name} has no torchvision (PyTorch Hub) counterpart"
    if importlib.util.find_spec("torch") is None:
        return "needs the export extra (torch, torchvision)"
    return None
