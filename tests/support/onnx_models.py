"""Tiny ONNX models built with onnx.helper, for tests that need a model but not a real one."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import onnx
import yaml
from onnx import TensorProto, helper, numpy_helper

from streamseg.models.zoo import ZOO
from tests.support.paths import ROOT

SPEC_21 = ROOT / "configs" / "fcn_resnet50.yaml"  # 21 PASCAL VOC classes, input "input", output "out"
_LRASPP = ZOO["lraspp_mobilenet_v3_large"].spec
HEAD_SPEC = _LRASPP.model_copy(  # head_model's: LR-ASPP's classes and normalization, a 144 short side
    update={"name": "head", "resize": _LRASPP.resize.model_copy(update={"size": 144})}
)


def conv_model(path: Path, channels: int, *, dynamic_classes: bool = False, seed: int = 0) -> Path:
    """A 1x1 convolution from 3 to ``channels`` channels.

    With ``dynamic_classes`` the weight is also a graph input of shape
    (classes, 3, 1, 1), so no shape inference can pin the class axis.
    """

    weight = np.random.default_rng(seed).standard_normal((channels, 3, 1, 1)).astype(np.float32)
    classes = "classes" if dynamic_classes else channels
    inputs = [helper.make_tensor_value_info("input", TensorProto.FLOAT, [1, 3, "height", "width"])]
    if dynamic_classes:
        inputs.append(helper.make_tensor_value_info("weight", TensorProto.FLOAT, [classes, 3, 1, 1]))
    graph = helper.make_graph(
        [helper.make_node("Conv", ["input", "weight"], ["out"])],
        "conv",
        inputs,
        [helper.make_tensor_value_info("out", TensorProto.FLOAT, [1, classes, "height", "width"])],
        [numpy_helper.from_array(weight, "weight")],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    onnx.save(model, str(path))
    return path


RED_WINS_SPEC = {
    "name": "red_wins",
    "normalize": {"range": 1, "mean": [0.0, 0.0, 0.0], "std": [1.0, 1.0, 1.0]},
    "resize": {"mode": "none"},
    "classes": ["background", "class1"],
    "palette": [[0, 0, 0], [255, 0, 0]],
}


def red_wins_model(folder: Path) -> tuple[Path, Path]:
    """A 1x1 convolution whose class 1 wins exactly where the picture is red, and its spec (YAML).

    Scores on 0..1 pixels: background 0.5 everywhere, class1 ``r - g - b``: pure red scores 1, black 0,
    white and grey below 0. So the label map is known from the picture alone.
    """

    weight = np.array([[0.0, 0.0, 0.0], [1.0, -1.0, -1.0]], np.float32).reshape(2, 3, 1, 1)
    bias = np.array([0.5, 0.0], np.float32)
    graph = helper.make_graph(
        [helper.make_node("Conv", ["input", "weight", "bias"], ["out"])],
        "red_wins",
        [helper.make_tensor_value_info("input", TensorProto.FLOAT, [1, 3, "height", "width"])],
        [helper.make_tensor_value_info("out", TensorProto.FLOAT, [1, 2, "height", "width"])],
        [numpy_helper.from_array(weight, "weight"), numpy_helper.from_array(bias, "bias")],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    path, spec = folder / "red_wins.onnx", folder / "red_wins.yaml"
    onnx.save(model, str(path))
    spec.write_text(yaml.safe_dump(RED_WINS_SPEC))
    return path, spec


def head_model(folder: Path, spec) -> Path:
    """A small segmentation head for ``spec`` (21 classes), its spec beside it: input -> 8x8 stride-8 conv to
    512 -> 3x3 conv 512->512 (Winograd takes it) -> 1x1 conv to 21 classes."""
    rng = np.random.default_rng(7)
    weights = {
        "w1": rng.standard_normal((512, 3, 8, 8)) * 0.05,
        "w2": rng.standard_normal((512, 512, 3, 3)) * 0.02,
        "w3": rng.standard_normal((21, 512, 1, 1)) * 0.05,
    }
    nodes = [
        helper.make_node("Conv", ["input", "w1"], ["a"], kernel_shape=[8, 8], strides=[8, 8]),
        helper.make_node("Relu", ["a"], ["b"]),
        helper.make_node("Conv", ["b", "w2"], ["c"], kernel_shape=[3, 3], pads=[1, 1, 1, 1]),
        helper.make_node("Relu", ["c"], ["d"]),
        helper.make_node("Conv", ["d", "w3"], ["out"], kernel_shape=[1, 1]),
    ]
    graph = helper.make_graph(
        nodes,
        "head",
        [helper.make_tensor_value_info("input", TensorProto.FLOAT, [1, 3, "height", "width"])],
        [helper.make_tensor_value_info("out", TensorProto.FLOAT, [1, 21, "h", "w"])],
        [numpy_helper.from_array(w.astype(np.float32), name) for name, w in weights.items()],
    )
    path = folder / "head.onnx"
    onnx.save(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)], ir_version=9), str(path))
    (folder / "head.yaml").write_text(yaml.safe_dump(spec.model_dump(mode="json")))
    return path
