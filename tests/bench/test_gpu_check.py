"""``benchmarks/gpu_check.py --dry-run``: the GPU check's every step runs on the CPU, so the script can't rot."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

from streamseg.devices import cuda_present
from tests.support.paths import ROOT

STEPS = (
    "doctor",
    "matmul_peak",
    "clip",
    "export",
    "nvdec",
    "run_fp16",
    "bench_auto_b1",
    "bench_torch_graphs_b1",
    "bench_torch_graphs_b8",
    "pytest_gpu",
    "bench_torch_compile_b8",
    "multistream",
)


@pytest.mark.slow
@pytest.mark.export
def test_dry_run_completes_every_step_with_figures(tmp_path, fcn_onnx):
    out = tmp_path / "out"
    proc = subprocess.run(
        [
            sys.executable,
            str(ROOT / "benchmarks" / "gpu_check.py"),
            "--dry-run",
            "--out",
            str(out),
            "--model",
            str(fcn_onnx),
            "--work",
            str(tmp_path / "work"),
        ],
        capture_output=True,
        text=True,
        timeout=1500,
        cwd=ROOT,
    )
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-2000:]
    report = json.loads((out / "gpu-check.json").read_text())
    assert sorted(p.name for p in out.iterdir()) == ["gpu-check.json", "gpu-check.log"]
    steps = report["steps"]
    assert set(STEPS) <= set(steps)
    for name, step in steps.items():
        assert step["status"] in ("ok", "skipped"), (name, step)
        assert step["status"] == "ok" or step["reason"], name
    for name in (
        "doctor",
        "matmul_peak",
        "clip",
        "nvdec",
        "run_fp16",
        "bench_auto_b1",
        "bench_torch_graphs_b1",
        "bench_torch_graphs_b8",
        "pytest_gpu",
    ):
        assert steps[name]["status"] == "ok", (name, steps[name])
    figures = {name: step["figures"] for name, step in steps.items()}
    assert figures["doctor"]["auto_fp16"]["backend"] in ("onnxruntime", "torch", "tensorrt")
    assert figures["matmul_peak"]["tflops"] > 0
    assert figures["clip"]["size"] == [128, 72] and figures["clip"]["bytes"] > 0
    assert figures["nvdec"]["cpu_decode_fps"] > 0 and figures["nvdec"]["frames"] == 8
    if not cuda_present():
        assert figures["nvdec"]["nvdec"] is False and figures["nvdec"]["reason"]
        assert figures["run_fp16"]["nvdec_used"] is False
    assert figures["run_fp16"]["frames_out"] == 8 and figures["run_fp16"]["fps"] > 0
    auto = figures["bench_auto_b1"]
    assert auto["bare_fps"] > 0 and auto["end_to_end_fps"] > 0 and auto["end_to_end_over_bare"] > 0
    assert figures["bench_torch_graphs_b1"]["engine"].startswith("torch")
    assert figures["bench_torch_graphs_b8"]["batch"] == 2 and figures["bench_torch_graphs_b8"]["bare_fps"] > 0
    assert figures["pytest_gpu"].get("failed", 0) == 0 and figures["pytest_gpu"].get("errors", 0) == 0
    assert report["summary"]["bare_fps_b1"] == auto["bare_fps"] and report["summary"]["failed"] == []
    log = (out / "gpu-check.log").read_text()
    assert all(f"== {name}:" in log for name in STEPS)
