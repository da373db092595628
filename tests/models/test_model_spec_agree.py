"""A model whose output does not have one channel per spec class is refused, at load or at its first output."""

from __future__ import annotations

import importlib.util

import numpy as np
import pytest

from streamseg.backends import create_backend
from streamseg.errors import ModelError
from streamseg.models.spec import ModelSpec
from tests.support.cli import run_cli
from tests.support.onnx_models import SPEC_21, conv_model
from tests.support.videos import make_video

onnx = pytest.importorskip("onnx")


@pytest.fixture(scope="module")
def spec21() -> ModelSpec:
    return ModelSpec.from_yaml(SPEC_21)


def test_30_channels_under_a_21_class_spec_is_refused_at_load(spec21, tmp_path):
    model = conv_model(tmp_path / "conv30.onnx", 30)
    with pytest.raises(ModelError, match=r"conv30.onnx: output 'out' has 30 class channels, but the spec names 21"):
        create_backend("onnxruntime", model, spec21)


@pytest.mark.skipif(importlib.util.find_spec("openvino") is None, reason="needs the openvino extra")
def test_openvino_refuses_it_too(spec21, tmp_path):
    model = conv_model(tmp_path / "conv30.onnx", 30)
    with pytest.raises(ModelError, match=r"has 30 class channels, but the spec names 21"):
        create_backend("openvino", model, spec21)


def test_a_dynamic_class_axis_is_checked_on_the_first_output(spec21, tmp_path):
    loaded = create_backend("onnxruntime", conv_model(tmp_path / "dyn30.onnx", 30, dynamic_classes=True), spec21)
    with pytest.raises(ModelError, match=r"dyn30.onnx: output 'out' has 30 class channels, but the spec names 21"):
        loaded.run(np.zeros((1, 3, 16, 16), np.float32))
    matching = create_backend("onnxruntime", conv_model(tmp_path / "dyn21.onnx", 21, dynamic_classes=True), spec21)
    assert matching.run(np.zeros((1, 3, 16, 16), np.float32)).shape == (1, 21, 16, 16)


@pytest.mark.skipif(importlib.util.find_spec("openvino") is None, reason="needs the openvino extra")
def test_openvino_checks_a_dynamic_class_axis_at_load_or_first_output(spec21, tmp_path):
    # OpenVINO may fold the weight into a constant and know the axis at load: either moment is a refusal
    with pytest.raises(ModelError, match=r"dyn30.onnx: output 'out' has 30 class channels, but the spec names 21"):
        loaded = create_backend("openvino", conv_model(tmp_path / "dyn30.onnx", 30, dynamic_classes=True), spec21)
        loaded.run(np.zeros((1, 3, 16, 16), np.float32))


def test_cli_refuses_the_mismatch_in_one_line(tmp_path):
    video = make_video(tmp_path / "in.mp4", frames=3)
    model = conv_model(tmp_path / "conv30.onnx", 30)
    out = tmp_path / "out.mp4"
    proc = run_cli(
        "run",
        str(video),
        "--model",
        str(model),
        "--spec",
        str(SPEC_21),
        "-o",
        str(out),
        "--size",
        "64",
        "--no-progress",
        timeout=120,
    )
    assert proc.returncode == 2, proc.stderr
    assert proc.stderr.strip() == (
        "streamseg: error: conv30.onnx: output 'out' has 30 class channels, but the spec names 21 classes"
    )
    assert not out.exists()  # refused before any output opened
