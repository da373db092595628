"""`streamseg quantize`: symmetric Q/DQ INT8 that ONNX Runtime runs and that agrees with FP32."""

from __future__ import annotations

import hashlib
import json
import logging
from pathlib import Path

import numpy as np
import onnx
import pytest
from onnx import numpy_helper

from streamseg.backends import create_backend
from streamseg.isa import this_cpu_isa
from streamseg.models import spec_from_onnx
from streamseg.quantize.static import zero_points
from tests.support.cli import run_cli


@pytest.fixture(scope="module")
def int8_model(trained_model, tmp_path_factory) -> Path:
    """The trained fcn_tiny, calibrated on 8 frames of its held-out video (agreement runs on 8 others)."""
    out = tmp_path_factory.mktemp("int8") / "model-int8.onnx"
    run_cli(
        "quantize",
        "--model",
        str(trained_model.onnx),
        "--calib",
        str(trained_model.video),
        "--frames",
        "8",
        "--output",
        str(out),
        check=True,
    )
    return out


def test_every_zero_point_is_zero_and_scales_are_per_channel_for_weights(int8_model):
    model = onnx.load(str(int8_model))
    zps = zero_points(model)
    assert len(zps) > 20
    assert all(np.all(zp == 0) for zp in zps.values())
    assert {zp.dtype for zp in zps.values()} <= {np.dtype(np.int8), np.dtype(np.int32)}  # int32: conv biases
    inits = {t.name: numpy_helper.to_array(t) for t in model.graph.initializer}
    convs = [n for n in model.graph.node if n.op_type == "Conv"]
    producers = {o: n for n in model.graph.node for o in n.output}
    assert convs
    for conv in convs:
        x_dq, w_dq = producers[conv.input[0]], producers[conv.input[1]]
        assert x_dq.op_type == w_dq.op_type == "DequantizeLinear"
        weight = inits[w_dq.input[0]]
        assert weight.dtype == np.int8
        assert inits[w_dq.input[1]].shape == (weight.shape[0],)  # a scale per output channel
        assert inits[x_dq.input[1]].shape == ()  # activations: one scale per tensor


def test_spec_and_manifest_travel_with_the_model(int8_model, trained_model):
    spec = spec_from_onnx(int8_model)
    assert spec == spec_from_onnx(trained_model.onnx)
    manifest = json.loads(int8_model.with_name("model-int8.manifest.json").read_text())
    assert manifest["output"]["sha256"] == hashlib.sha256(int8_model.read_bytes()).hexdigest()
    source = manifest["calibration"]["sources"][0]
    assert source["sha256"] == hashlib.sha256(trained_model.video.read_bytes()).hexdigest()
    assert manifest["calibration"]["frame_count"] == len(source["frames"]) == 8
    assert len(set(source["frames"])) == 8 and max(source["frames"]) > 20  # spread over the 30 frames
    assert manifest["method"]["activations"].startswith("int8, symmetric")
    assert {"onnxruntime", "onnx", "streamseg"} <= set(manifest["versions"])


def test_int8_agrees_with_fp32_on_held_out_frames(int8_model, trained_model):
    proc = run_cli(
        "eval",
        "--reference",
        str(trained_model.onnx),
        "--candidate",
        str(int8_model),
        "--video",
        str(trained_model.video),
        "--frames",
        "8",
        "--json",
        check=True,
    )
    report = json.loads(proc.stdout)
    assert report["candidate_backend"].startswith("onnxruntime")
    assert report["agreement"] >= 98.0, report
    assert report["miou_vs_reference"] >= 90.0, report
    assert 0 < report["mean_logit_error"] <= report["max_logit_error"]  # INT8 really differs from FP32
    assert report["reference_fps"] > 0 and report["candidate_fps"] > 0
    # evaluation frames are not the calibration frames
    manifest = json.loads(int8_model.with_name("model-int8.manifest.json").read_text())
    assert not set(report["frame_indices"]) & set(manifest["calibration"]["sources"][0]["frames"])


def test_int8_warns_on_a_cpu_without_vnni_or_amx(int8_model, caplog):
    """On AVX2 alone, INT8 ran slower than FP32 for the light models (docs/benchmarks.md): the user is told."""
    isa = set(this_cpu_isa() or [])
    with caplog.at_level(logging.WARNING, logger="streamseg.backends"):
        create_backend("onnxruntime", int8_model).close()
    warned = [r.getMessage() for r in caplog.records if "without VNNI or AMX" in r.getMessage()]
    assert len(warned) == ("AVX2" in isa and not isa & {"VNNI", "AMX"})


def test_bad_inputs_give_one_line(tmp_path, trained_model, int8_model):
    proc = run_cli(
        "quantize",
        "--model",
        str(trained_model.onnx),
        "--calib",
        str(tmp_path / "nope.mp4"),
        "--output",
        str(tmp_path / "x.onnx"),
    )
    assert proc.returncode != 0 and proc.stderr.strip().splitlines() == [
        f"streamseg: error: calibration input not found: {tmp_path / 'nope.mp4'}"
    ]
    plan = tmp_path / "engine.plan"
    plan.write_bytes(b"not an engine")
    proc = run_cli(
        "eval",
        "--reference",
        str(trained_model.onnx),
        "--candidate",
        str(plan),
        "--video",
        str(trained_model.video),
        "--frames",
        "2",
    )
    lines = proc.stderr.strip().splitlines()
    assert proc.returncode != 0 and len(lines) == 1 and "tensorrt" in lines[0].lower(), proc.stderr
