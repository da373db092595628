"""A model whose output does not have one channel per spec class is refused, at load or at its first output."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import numpy as np
import pytest
from conftest import ROOT, run_cli
from videos import make_video

from streamseg.backends import create_backend
from streamseg.errors import ModelError
from streamseg.models.spec import ModelSpec

onnx = pytest.importorskip("onnx")
SPEC_21 = ROOT / "configs" / "fcn_resnet50.yaml"  # 21 PASCAL VOC classes, input "input", output "out"


def conv_model(path: Path, channels: int, *, dynamic_classes: bool = False, seed: int = 0) -> Path:
    """A 1x1 convolution from 3 to ``channels`` channels.

    With ``dynamic_classes`` the weight is also a graph input of shape
    (classes, 3, 1, 1), so no shape inference can pin the class axis.
    """
    from onnx import TensorProto, helper, numpy_helper

    weight = np.random.default_rng(seed).standard_normal((channels, 3, 1, 1)).astype(np.float32)
    classes = "classes" if dynamic_classes else channels
    inputs = [helper.make_tensor_value_info("input", TensorProto.FLOAT, [1, 3, "height", "width"])]
    if dynamic_classes:
        inputs.append(helper.make_tensor_value_info("weight", TensorProto.FLOAT, [classes, 3, 1, 1]))
    graph = helper.make_graph(
        [helper.make_node("Conv", ["input", "weight"], ["out"])], "conv", inputs,
        [helper.make_tensor_value_info("out", TensorProto.FLOAT, [1, classes, "height", "width"])],
        [numpy_helper.from_array(weight, "weight")])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    onnx.save(model, str(path))
    return path


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
    proc = run_cli("run", str(video), "--model", str(model), "--spec", str(SPEC_21), "-o", str(out), "--size", "64",
                   "--no-progress", timeout=120)
    assert proc.returncode == 2, proc.stderr
    assert proc.stderr.strip() == ("streamseg: error: conv30.onnx: output 'out' has 30 class channels, "
                                   "but the spec names 21 classes")
    assert not out.exists()  # refused before any output opened
