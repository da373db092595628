"""Multiply-accumulate count of an ONNX graph at a given input size: the FLOP floor.

Shapes come from ONNX shape inference with the input's free dimensions pinned
to the actual size. Only Conv, ConvTranspose, Gemm and MatMul are counted: they
hold all but a fraction of a percent of a segmentation network's arithmetic.
One MAC is one multiply plus one add; torchvision's "GFLOPS" column counts MACs
(fcn_resnet50 at 520x520: 152.7), so ``gmacs`` is comparable with it.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from pathlib import Path

from streamseg.errors import ModelError
from streamseg.models.handle import ModelHandle, load_graph

COUNTED = ("Conv", "ConvTranspose", "Gemm", "MatMul")


@dataclass
class FlopCount:
    input_shape: tuple[int, ...]
    macs: int
    by_op: dict[str, int] = field(default_factory=dict)
    uncounted: int = 0  # counted-kind nodes whose shapes inference could not resolve

    @property
    def gmacs(self) -> float:
        return self.macs / 1e9

    @property
    def gflops(self) -> float:
        """Floating-point operations, two per MAC."""
        return 2 * self.macs / 1e9

    def as_dict(self) -> dict:
        return {
            "input_shape": list(self.input_shape),
            "gmacs": round(self.gmacs, 3),
            "gflops_2x": round(self.gflops, 3),
            "by_op_gmacs": {k: round(v / 1e9, 3) for k, v in self.by_op.items()},
            "uncounted_nodes": self.uncounted,
        }


def count_macs(path: str | Path | ModelHandle, input_shape: tuple[int, ...]) -> FlopCount:
    """MACs of the model at ``path`` for an input of ``input_shape`` (e.g. (1, 3, 520, 924))."""
    import onnx

    model = path.graph_copy() if isinstance(path, ModelHandle) else load_graph(path)  # its input is fixed below
    graph = model.graph
    weights = {init.name for init in graph.initializer}
    first = next((i for i in graph.input if i.name not in weights), None)
    if first is None:
        raise ModelError(f"{path}: the graph has no input")
    dims = first.type.tensor_type.shape.dim
    if len(dims) != len(input_shape):
        raise ModelError(f"{path}: input {first.name!r} has rank {len(dims)}, not {len(input_shape)}")
    for dim, size in zip(dims, input_shape):
        if dim.HasField("dim_value") and dim.dim_value != size:
            raise ModelError(f"{path}: input {first.name!r} is fixed at {dim.dim_value}, not {size}")
        dim.Clear()
        dim.dim_value = size
    inferred = onnx.shape_inference.infer_shapes(model, data_prop=True)
    shapes = {init.name: tuple(init.dims) for init in inferred.graph.initializer}
    for info in [*inferred.graph.input, *inferred.graph.value_info, *inferred.graph.output]:
        tensor_shape = info.type.tensor_type.shape
        if all(d.HasField("dim_value") for d in tensor_shape.dim):
            shapes[info.name] = tuple(d.dim_value for d in tensor_shape.dim)
    total, uncounted = 0, 0
    by_op: dict[str, int] = {}
    for node in inferred.graph.node:
        if node.op_type not in COUNTED:
            continue
        macs = _node_macs(node, shapes)
        if macs is None:
            uncounted += 1
            continue
        total += macs
        by_op[node.op_type] = by_op.get(node.op_type, 0) + macs
    return FlopCount(tuple(input_shape), total, by_op, uncounted)


def _node_macs(node, shapes: dict[str, tuple[int, ...]]) -> int | None:
    a, b, out = (shapes.get(name) for name in (*node.input[:2], node.output[0]))
    if a is None or b is None or out is None:
        return None
    if node.op_type == "Conv":  # each output element: Cin/group * kH * kW MACs
        return math.prod(out) * math.prod(b[1:])
    if node.op_type == "ConvTranspose":  # each input element spreads over Cout/group * kH * kW outputs
        return math.prod(a) * math.prod(b[1:])
    if node.op_type == "Gemm":
        trans_a = next((attr.i for attr in node.attribute if attr.name == "transA"), 0)
        return math.prod(out) * (a[0] if trans_a else a[-1])
    return math.prod(out) * a[-1]  # MatMul: broadcast batch dims live in the output
