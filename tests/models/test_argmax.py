"""The engine's own labels (an ArgMax appended to the graph) against numpy's argmax of its scores, on real frames."""

from __future__ import annotations

import av
import cv2
import numpy as np
import onnx
import onnxruntime as ort
import pytest

from streamseg.errors import ModelError
from streamseg.models.argmax import LABELS_OUTPUT, append_argmax, with_labels
from tests.support.cli import run_cli
from tests.support.extras import HAS_TORCH
from tests.support.onnx_models import conv_model


@pytest.fixture(scope="module")
def tensors(car_video):
    """Four decoded frames as (1, 3, 180, 320) float32 tensors, ImageNet-normalized."""
    mean = np.array([0.485, 0.456, 0.406], np.float32)[:, None, None]
    std = np.array([0.229, 0.224, 0.225], np.float32)[:, None, None]
    out = []
    with av.open(str(car_video)) as container:
        for k, frame in enumerate(container.decode(video=0)):
            if k == 4:
                break
            rgb = cv2.resize(frame.to_ndarray(format="rgb24"), (320, 180), interpolation=cv2.INTER_AREA)
            out.append(((rgb.transpose(2, 0, 1).astype(np.float32) / 255 - mean) / std)[None])
    return out


def labels_and_scores(model: bytes, tensor: np.ndarray, scores: str = "out") -> tuple[np.ndarray, np.ndarray]:
    session = ort.InferenceSession(model, providers=["CPUExecutionProvider"])
    labels, out = session.run([LABELS_OUTPUT, scores], {"input": tensor})
    return labels, out


@pytest.mark.parametrize("dynamic_classes", [False, True])
def test_engine_labels_equal_numpy_argmax_of_the_scores(tmp_path, tensors, dynamic_classes):
    path = conv_model(tmp_path / "conv.onnx", 21, dynamic_classes=dynamic_classes)
    model = with_labels(path, "out")
    for tensor in tensors:
        labels, scores = labels_and_scores(model, tensor)
        assert labels.dtype == np.uint8 and labels.shape == (1, 180, 320)
        assert len(np.unique(labels)) > 2  # the frame's content picks different classes
        np.testing.assert_array_equal(labels, scores.argmax(axis=1).astype(np.uint8))


def test_the_labels_output_declares_uint8_without_the_class_axis(tmp_path):
    model = append_argmax(onnx.load(str(conv_model(tmp_path / "conv.onnx", 21))), "out")
    onnx.checker.check_model(model)
    labels = next(o for o in model.graph.output if o.name == LABELS_OUTPUT)
    assert labels.type.tensor_type.elem_type == onnx.TensorProto.UINT8
    assert [d.dim_value or d.dim_param for d in labels.type.tensor_type.shape.dim] == [1, "height", "width"]
    assert [o.name for o in model.graph.output] == ["out", LABELS_OUTPUT]  # the scores stay


def test_refuses_a_missing_scores_output_a_clash_and_too_many_classes(tmp_path):
    model = onnx.load(str(conv_model(tmp_path / "conv.onnx", 21)))
    with pytest.raises(ModelError, match="no output 'scores'"):
        append_argmax(model, "scores")
    with pytest.raises(ModelError, match="already has an output 'out'"):
        append_argmax(model, "out", labels="out")
    wide = onnx.load(str(conv_model(tmp_path / "wide.onnx", 300)))
    with pytest.raises(ModelError, match="300 classes"):
        append_argmax(wide, "out")


@pytest.mark.slow
def test_export_with_labels_on_a_zoo_model(tmp_path, tensors):
    if not HAS_TORCH:
        pytest.skip("needs the export extra (torch, torchvision)")
    path = tmp_path / "lraspp.onnx"
    done = run_cli("models", "export", "lraspp_mobilenet_v3_large", "--labels", "--output", str(path))
    assert done.returncode == 0, done.stderr
    assert "labels output" in done.stdout
    model = path.read_bytes()
    for tensor in tensors[:2]:
        labels, scores = labels_and_scores(model, tensor)
        np.testing.assert_array_equal(labels, scores.argmax(axis=1).astype(np.uint8))
