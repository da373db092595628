"""Winograd F(4x4, 3x3) convolutions for ONNX Runtime: the graph rewrite against direct convolution."""

from __future__ import annotations

import numpy as np
import onnx
import onnxruntime as ort
import pytest
from onnx import TensorProto, helper, numpy_helper

from streamseg.backends import create_backend
from streamseg.backends.winograd import candidates, rewrite
from streamseg.models import spec_from_onnx
from tests.support.cli import run_cli
from tests.support.footage import compare_on_footage


def conv_model(
    channels: int,
    out_channels: int,
    *,
    dilation: int = 1,
    stride: int = 1,
    group: int = 1,
    bias: bool = True,
    batch: int = 1,
    seed: int = 0,
) -> onnx.ModelProto:
    """One 'same'-padded 3x3 convolution and a ReLU, on an input of any height and width."""
    rng = np.random.default_rng(seed)
    weight = (rng.standard_normal((out_channels, channels // group, 3, 3)) * 0.1).astype(np.float32)
    inits, inputs = [numpy_helper.from_array(weight, "w")], ["x", "w"]
    if bias:
        inits.append(numpy_helper.from_array(rng.standard_normal(out_channels).astype(np.float32), "b"))
        inputs.append("b")
    conv = helper.make_node(
        "Conv",
        inputs,
        ["c"],
        pads=[dilation] * 4,
        dilations=[dilation] * 2,
        strides=[stride] * 2,
        group=group,
        kernel_shape=[3, 3],
    )
    graph = helper.make_graph(
        [conv, helper.make_node("Relu", ["c"], ["y"])],
        "conv",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, [batch, channels, "h", "w"])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, [batch, out_channels, "h", "w"])],
        inits,
    )
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)], ir_version=9)


def session(model: onnx.ModelProto) -> ort.InferenceSession:
    return ort.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"])


@pytest.mark.parametrize(
    "dilation,sizes,bias,chunk",
    [
        (1, [(17, 23), (16, 16), (5, 9)], True, 64),  # sides multiples of the 4x4 tile, and not
        (1, [(1, 1)], False, 64),  # one pixel: all halo
        (2, [(65, 116), (33, 59)], True, 64),  # FCN's layer3 geometry at 520x924 and at 260x462
        (3, [(9, 5), (12, 12)], True, 64),  # a dilation that divides neither side, and both
        (4, [(30, 31), (7, 3)], False, 64),
        (1, [(17, 23), (8, 12)], True, 16),  # input channels in chunks of 16, 16 and 8
        (2, [(30, 31), (17, 8)], False, 16),
    ],
)
def test_rewrite_computes_the_same_convolution_at_every_size(dilation, sizes, bias, chunk):
    """One rewritten graph, inputs of several sizes: its shapes come from the input at run time."""
    model = conv_model(40, 48, dilation=dilation, bias=bias)
    rewritten, count = rewrite(
        conv_model(40, 48, dilation=dilation, bias=bias), min_channel_product=1, channel_chunk=chunk
    )
    onnx.checker.check_model(rewritten)
    ops = [n.op_type for n in rewritten.graph.node]
    assert count == 1 and ops.count("MatMul") == -(-40 // chunk) + 1  # products per chunk, output transform
    assert ("Sum" in ops) == (chunk < 40)
    direct, winograd = session(model), session(rewritten)
    for height, width in sizes:
        x = np.random.default_rng(height).random((1, 40, height, width), dtype=np.float32)
        expected, got = direct.run(None, {"x": x})[0], winograd.run(None, {"x": x})[0]
        assert got.shape == expected.shape == (1, 48, height, width)
        # rounding only: direct FP32 convolution differs from float64 by ~1e-7, Winograd by a few 1e-6
        assert np.abs(got - expected).max() <= 2e-5 * np.abs(expected).max()


@pytest.mark.parametrize("kind", ["stride 2", "grouped", "two images", "few channels"])
def test_rewrite_leaves_other_convolutions_alone(kind):
    model = {
        "stride 2": lambda: conv_model(32, 32, stride=2),
        "grouped": lambda: conv_model(32, 32, group=2),
        "two images": lambda: conv_model(32, 32, batch=2),
        "few channels": lambda: conv_model(32, 32),
    }[kind]()
    threshold = 32 * 32 + 1 if kind == "few channels" else 1
    rewritten, count = rewrite(model, min_channel_product=threshold)
    assert count == 0 and [n.op_type for n in rewritten.graph.node] == ["Conv", "Relu"]
    assert candidates(model, min_channel_product=threshold) == (1 if kind == "two images" else 0)


@pytest.mark.export
def test_fcn_on_winograd_matches_direct_convolution_on_footage(fcn_onnx, car_video):
    """FCN-ResNet50's four big 3x3 convolutions (head, layer4) rewritten, on decoded frames, at two sizes."""
    spec = spec_from_onnx(fcn_onnx)
    direct = create_backend("onnxruntime", fcn_onnx, spec, winograd=False)
    fast = create_backend("onnxruntime", fcn_onnx, spec)
    assert "Winograd" not in direct.name and fast.name.endswith("Winograd F(4x4,3x3) on 4 convolutions")
    try:
        for size in (96, 160):  # a new input size: a new rewrite and session in the same backend
            sized = spec.model_copy(update={"resize": spec.resize.model_copy(update={"size": size})})
            for relative, agreement in compare_on_footage(fast, direct, sized, car_video, frames=2):
                assert relative < 1e-4 and agreement > 0.999
    finally:
        fast.close()
        direct.close()


@pytest.mark.export
@pytest.mark.parametrize("flag", ["--winograd", "--no-winograd"])
def test_run_turns_winograd_on_and_off(fcn_onnx, car_video, tmp_path, flag):
    out = tmp_path / "out.mp4"
    proc = run_cli(
        "run",
        str(car_video),
        "-o",
        str(out),
        "--model",
        str(fcn_onnx),
        "--size",
        "96",
        "--max-frames",
        "2",
        "--no-progress",
        flag,
        check=True,
    )
    done = next(line for line in proc.stderr.splitlines() if line.startswith("streamseg: done:"))
    assert "2 out" in done and ("Winograd F(4x4,3x3) on 4 convolutions" in done) == (flag == "--winograd")
    assert out.stat().st_size > 0
