"""``streamseg bench --batch``: the bare engine on batches, counted in frames, with the floor scaled to match."""

from __future__ import annotations

import json

import pytest

from tests.support.cli import run_cli


@pytest.mark.slow
def test_batch_on_a_one_frame_model_is_one_line(car_video, duc_onnx):
    proc = run_cli(
        "bench",
        str(car_video),
        "--model",
        str(duc_onnx),
        "--frames",
        "2",
        "--modes",
        "bare",
        "--batch",
        "2",
        "--backend",
        "onnxruntime",
    )
    assert proc.returncode == 2 and "Traceback" not in proc.stderr
    assert proc.stderr.strip().splitlines()[-1].startswith("streamseg: error: --batch 2: onnxruntime")


@pytest.mark.slow
@pytest.mark.export
def test_torch_batches_count_frames_and_scale_the_floor(car_video, fcn_onnx):
    args = [
        str(car_video),
        "--model",
        str(fcn_onnx),
        "--backend",
        "torch",
        "--modes",
        "bare",
        "--size",
        "64",
        "--frames",
        "3",
        "--peak-tflops",
        "1",
        "--json",
    ]
    single = json.loads(run_cli("bench", *args, check=True).stdout)
    batched = json.loads(run_cli("bench", *args, "--batch", "2", check=True).stdout)
    assert single["bare"]["batch"] == 1 and single["bare"]["frames"] == 3
    assert batched["bare"]["batch"] == 2 and batched["bare"]["frames"] == 6 and batched["bare_fps"] > 0
    assert batched["floor"]["floor_ms"] == pytest.approx(2 * single["floor"]["floor_ms"], rel=1e-3)
    assert batched["floor"]["floor_ms"] == pytest.approx(2 * 2 * batched["flops"]["gmacs"] / 1, rel=1e-3)
