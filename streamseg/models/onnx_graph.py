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
