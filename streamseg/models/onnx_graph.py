"""Reading an ONNX graph's constants the way its exporters lay them out."""

from __future__ import annotations

import onnx


def constants(graph: onnx.GraphProto) -> dict[str, onnx.TensorProto]:
    """The initializers by name, and by the name of an Identity that passes one on: the TorchScript exporter
    shares equal tensors that way (the zero biases of a random-weights model's folded BatchNorm, say)."""
    found = {init.name: init for init in graph.initializer}
    for node in graph.node:
        if node.op_type == "Identity" and node.input[0] in found:
            found[node.output[0]] = found[node.input[0]]
    return found


_QDQ = {"QuantizeLinear", "DequantizeLinear"}
_QOPERATOR = {"QLinearConv", "QLinearMatMul", "ConvInteger", "MatMulInteger", "QLinearAdd"}


def onnx_precision(model: onnx.ModelProto) -> str:
    """What an ONNX graph computes in: ``int8`` (Q/DQ), ``int8-qoperator``, ``fp16`` or ``fp32``."""
    ops = {node.op_type for node in model.graph.node}
    if ops & _QOPERATOR:
        return "int8-qoperator"
    if ops & _QDQ:
        return "int8"
    inputs = [i for i in model.graph.input if i.name not in {t.name for t in model.graph.initializer}]
    if inputs and inputs[0].type.tensor_type.elem_type == onnx.TensorProto.FLOAT16:
        return "fp16"
    return "fp32"
