"""Symmetric Q/DQ INT8 ONNX with ONNX Runtime's static quantizer.

The file is the portable kind TensorRT's explicit quantization wants and ONNX
Runtime runs on the CPU: QuantizeLinear/DequantizeLinear pairs, INT8
weights per output channel, INT8 activations per tensor, every zero point 0.

Why ORT ``quantize_static`` rather than NVIDIA ModelOpt: it ships in the
``onnxruntime`` wheel we already depend on, calibrates on the CPU, works
offline, and its QDQ output is what both ORT and TensorRT read. ModelOpt
would add a large NVIDIA-specific dependency whose defaults aim at TensorRT
alone; its output format (Q/DQ, symmetric) is the same.

Two rewrites make the symmetric file fast on ORT's CPU kernels without
changing what it computes (see docs/accuracy.md for the figures):

* ``Relu`` becomes ``LeakyRelu(alpha=0)``, the same function. With zero point
  0, a Q/DQ'd Relu cannot be folded into its Q node (that needs the zero point
  at the bottom of the range), and ORT has no INT8 Relu kernel, so each Relu
  would run in FP32 between a DQ and a Q; ORT does have ``QLinearLeakyRelu``.
* Every consumer gets its own Q/DQ pair (``DedicatedQDQPair``): ORT's CPU EP
  turns S8 activations into U8 (``QDQS8ToU8Transformer``) only for a Q with a
  single DQ. The backend keeps ORT's common-subexpression pass from merging
  the pairs again (``streamseg.backends.onnxruntime``).
"""

from __future__ import annotations

import logging
import tempfile
from pathlib import Path

import numpy as np

from streamseg.errors import ModelError

log = logging.getLogger(__name__)

METHODS = ("minmax", "percentile", "entropy")
_QDQ_OPS = ("QuantizeLinear", "DequantizeLinear")


def quantize_int8(
    model_path: str | Path,
    tensors: list[np.ndarray],
    output: str | Path,
    *,
    input_name: str,
    method: str = "minmax",
    exclude_nodes: tuple[str, ...] = (),
) -> dict:
    """Write ``output``, a symmetric Q/DQ INT8 model calibrated on ``tensors``; returns the settings used."""
    import onnx
    from onnxruntime.quantization import CalibrationMethod, QuantFormat, QuantType, quantize_static
    from onnxruntime.quantization.shape_inference import quant_pre_process

    from streamseg.quantize.calibration import TensorReader

    if method not in METHODS:
        raise ModelError(f"calibration method must be one of {', '.join(METHODS)}, got {method!r}")
    calibrate = {
        "minmax": CalibrationMethod.MinMax,
        "percentile": CalibrationMethod.Percentile,
        "entropy": CalibrationMethod.Entropy,
    }[method]
    extra: dict[str, bool | int] = {
        "ActivationSymmetric": True,  # zero point 0 for activations too
        "WeightSymmetric": True,
        "DedicatedQDQPair": True,
    }
    if method == "minmax":
        extra["CalibStridedMinMax"] = 1  # one frame's activations in memory at a time
    with tempfile.TemporaryDirectory(prefix="streamseg-quantize-") as tmp:
        prepared = Path(tmp) / "prepared.onnx"
        try:
            # shape inference and ORT's basic graph optimizations (BatchNorm folds into Conv), as ORT advises
            quant_pre_process(str(model_path), str(prepared), skip_symbolic_shape=False)
        except Exception as err:  # noqa: BLE001 - symbolic shape inference fails on some graphs; quantize as is
            log.warning("quantization pre-processing failed (%s); quantizing the model as it is", err)
            prepared = Path(model_path)
        model = onnx.load(str(prepared))
        rewritten = relu_as_leaky_relu(model)
        onnx.save(model, str(Path(tmp) / "rewritten.onnx"))
        quantize_static(
            str(Path(tmp) / "rewritten.onnx"),
            str(output),
            TensorReader(input_name, tensors),
            quant_format=QuantFormat.QDQ,
            per_channel=True,
            reduce_range=False,
            activation_type=QuantType.QInt8,
            weight_type=QuantType.QInt8,
            calibrate_method=calibrate,
            nodes_to_exclude=list(exclude_nodes),
            extra_options=extra,
        )
    quantized = onnx.load(str(output), load_external_data=False)
    bad = [name for name, zp in zero_points(quantized).items() if np.any(zp != 0)]
    if bad:
        raise ModelError(f"quantized model has non-zero zero points at {', '.join(bad[:3])}")
    return {
        "tool": "onnxruntime.quantization.quantize_static",
        "format": "QDQ",
        "weights": "int8, symmetric, per output channel",
        "activations": "int8, symmetric, per tensor",
        "calibration": method,
        "extra_options": extra,
        "excluded_nodes": list(exclude_nodes),
        "rewrites": [f"Relu -> LeakyRelu(alpha=0) x{rewritten}"] if rewritten else [],
        "qdq_nodes": sum(1 for n in quantized.graph.node if n.op_type in _QDQ_OPS),
    }


def relu_as_leaky_relu(model) -> int:
    """Replace every ``Relu`` by ``LeakyRelu(alpha=0)`` in place; the same function. Returns how many."""
    from onnx import helper

    count = 0
    for node in model.graph.node:
        if node.op_type == "Relu" and node.domain in ("", "ai.onnx"):
            node.op_type = "LeakyRelu"
            node.attribute.append(helper.make_attribute("alpha", 0.0))
            count += 1
    return count


def zero_points(model) -> dict[str, np.ndarray]:
    """The zero point of every Q/DQ node (an omitted zero point is 0 by the ONNX spec)."""
    from onnx import numpy_helper

    constants = {t.name: t for t in model.graph.initializer}
    for node in model.graph.node:  # zero points may also come from Constant nodes
        if node.op_type == "Constant" and node.attribute:
            constants[node.output[0]] = node.attribute[0].t
    found = {}
    for node in model.graph.node:
        if node.op_type not in _QDQ_OPS:
            continue
        if len(node.input) < 3 or not node.input[2]:
            found[node.name] = np.zeros(1, np.int8)
        elif node.input[2] in constants:
            found[node.name] = numpy_helper.to_array(constants[node.input[2]])
        else:
            raise ModelError(f"{node.name}: zero point {node.input[2]!r} is not a constant")
    return found
