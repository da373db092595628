"""Precision lives in the ONNX: the FP16 conversion and the INT8 (Q/DQ) checks, which need no GPU."""

from __future__ import annotations

import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper, numpy_helper

from streamseg.backends.onnx_precision import model_for_precision, onnx_precision
from streamseg.errors import ModelError
from streamseg.models import ZOO, spec_from_onnx


def test_fp16_copy_runs_and_agrees_with_fp32_on_footage(fcn_onnx, car_video, tmp_path):
    import onnxruntime as ort

    from streamseg.preprocess import CpuPreprocessor
    from streamseg.sources import open_source

    spec = spec_from_onnx(fcn_onnx)
    spec = spec.model_copy(update={"resize": spec.resize.model_copy(update={"size": 96})})
    half_path, half_spec, precision = model_for_precision(fcn_onnx, spec, "fp16", tmp_path)
    assert precision == "fp16" and half_spec.dtype == "float16"
    assert spec_from_onnx(half_path).dtype == "float16"  # the embedded spec says so too
    again, _, _ = model_for_precision(fcn_onnx, spec, "fp16", tmp_path)
    assert again == half_path and len(list(tmp_path.glob("*.onnx"))) == 1  # converted once
    assert onnx_precision(onnx.load(str(half_path))) == "fp16"

    full = ort.InferenceSession(str(fcn_onnx), providers=["CPUExecutionProvider"])
    half = ort.InferenceSession(str(half_path), providers=["CPUExecutionProvider"])
    assert half.get_inputs()[0].type == "tensor(float16)" and half.get_outputs()[0].type == "tensor(float16)"
    pre32, pre16 = CpuPreprocessor(spec), CpuPreprocessor(half_spec)
    source = open_source(str(car_video), max_frames=2)
    try:
        for frame in source.frames():
            reference = full.run(None, {"input": pre32(frame).tensor})[0]
            ours = half.run(None, {"input": pre16(frame).tensor})[0].astype(np.float32)
            relative = np.abs(ours - reference).max() / np.abs(reference).max()
            agreement = (ours.argmax(1) == reference.argmax(1)).mean()
            print(f"fp16 vs fp32 (onnxruntime cpu): relative logit error {relative:.2e}, agreement {agreement:.5f}")
            assert relative < 0.01 and agreement >= 0.995
    finally:
        source.close()


def qdq_model(path, *, qoperator: bool = False):
    """A one-convolution model, quantized as Q/DQ (or as QLinearConv)."""
    weight = numpy_helper.from_array(np.ones((4, 3, 3, 3), np.float32), "w")
    scale = numpy_helper.from_array(np.array(0.05, np.float32), "s")
    zero = numpy_helper.from_array(np.array(0, np.int8), "z")
    if qoperator:
        nodes = [
            helper.make_node("QuantizeLinear", ["input", "s", "z"], ["q"]),
            helper.make_node("QLinearConv", ["q", "s", "z", "wq", "s", "z", "s", "z"], ["qo"]),
            helper.make_node("DequantizeLinear", ["qo", "s", "z"], ["out"]),
        ]
        inits = [scale, zero, numpy_helper.from_array(np.ones((4, 3, 3, 3), np.int8), "wq")]
    else:
        nodes = [
            helper.make_node("QuantizeLinear", ["input", "s", "z"], ["q"]),
            helper.make_node("DequantizeLinear", ["q", "s", "z"], ["dq"]),
            helper.make_node("Conv", ["dq", "w"], ["out"], pads=[1, 1, 1, 1]),
        ]
        inits = [weight, scale, zero]
    graph = helper.make_graph(
        nodes,
        "qdq",
        [helper.make_tensor_value_info("input", TensorProto.FLOAT, [1, 3, 8, 8])],
        [helper.make_tensor_value_info("out", TensorProto.FLOAT, None)],
        initializer=inits,
    )
    onnx.save(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 18)]), str(path))
    return path


def test_int8_needs_a_qdq_model(tmp_path, duc_onnx):
    spec = ZOO["duc_resnet101_hdc"].spec
    qdq = qdq_model(tmp_path / "qdq.onnx")
    path, same_spec, precision = model_for_precision(qdq, spec, "int8", tmp_path)
    assert path == qdq and precision == "int8" and same_spec == spec
    assert model_for_precision(qdq, spec, None, tmp_path)[2] == "int8"  # None: the file's own precision
    with pytest.raises(ModelError, match="needs a Q/DQ INT8 ONNX, but duc_standin.onnx is fp32"):
        model_for_precision(duc_onnx, spec, "int8", tmp_path)
    with pytest.raises(ModelError, match="QOperator form"):
        model_for_precision(qdq_model(tmp_path / "qop.onnx", qoperator=True), spec, "int8", tmp_path)
    with pytest.raises(ModelError, match="--precision fp32 asked, but qdq.onnx is int8"):
        model_for_precision(qdq, spec, "fp32", tmp_path)
