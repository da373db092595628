"""Labels out of the engine: an ArgMax over the class axis appended to any segmentation ONNX graph.

The engine then hands back one uint8 per pixel instead of C float scores, and
runs the argmax in its own threads. The scores output stays: ``--smooth``,
``scores=True`` and the agreement tools need it, and a session that is asked
for the labels only never copies the scores out.

ArgMax keeps the first maximum (``select_last_index`` 0), as ``np.argmax`` does.
"""

from __future__ import annotations

from pathlib import Path

import onnx
from onnx import TensorProto, helper

from streamseg.errors import ModelError

LABELS_OUTPUT = "labels"


def append_argmax(
    model: onnx.ModelProto, scores: str, *, labels: str = LABELS_OUTPUT, axis: int = 1
) -> onnx.ModelProto:
    """``model`` with an extra output ``labels``: uint8 argmax of output ``scores`` over ``axis``, dropped.

    The graph is changed in place and returned. Refuses a graph whose output
    names clash, or whose class axis is known to hold more than 256 classes.
    """
    graph = model.graph
    outputs = {o.name: o for o in graph.output}
    if scores not in outputs:
        raise ModelError(f"argmax: no output {scores!r} in the model (outputs: {', '.join(outputs) or 'none'})")
    if labels in outputs:
        raise ModelError(f"argmax: the model already has an output {labels!r}")
    dims = list(outputs[scores].type.tensor_type.shape.dim)
    if dims and not -len(dims) <= axis < len(dims):
        raise ModelError(f"argmax: axis {axis} outside the {len(dims)}-d output {scores!r}")
    if dims and dims[axis].HasField("dim_value") and dims[axis].dim_value > 256:
        raise ModelError(f"argmax: {dims[axis].dim_value} classes do not fit uint8 labels")
    indices = f"{labels}.int64"
    graph.node.extend(
        [
            helper.make_node("ArgMax", [scores], [indices], axis=axis, keepdims=0, name=f"{labels}.argmax"),
            helper.make_node("Cast", [indices], [labels], to=TensorProto.UINT8, name=f"{labels}.cast"),
        ]
    )
    shape = None
    if dims:
        kept = [d for k, d in enumerate(dims) if k != axis % len(dims)]
        shape = [d.dim_value if d.HasField("dim_value") else (d.dim_param or None) for d in kept]
    graph.output.append(helper.make_tensor_value_info(labels, TensorProto.UINT8, shape))
    return model


def with_labels(source: str | Path, scores: str, *, labels: str = LABELS_OUTPUT, axis: int = 1) -> bytes:
    """The ONNX file ``source`` with the argmax appended, serialized for an engine to load."""
    try:
        model = onnx.load(str(source))
    except Exception as err:  # onnx raises DecodeError, OSError...: the user sees one line either way
        raise ModelError(f"cannot read ONNX {source}: {err}") from err
    return append_argmax(model, scores, labels=labels, axis=axis).SerializeToString()


def add_labels_output(path: str | Path, scores: str, *, labels: str = LABELS_OUTPUT, axis: int = 1) -> None:
    """Append the argmax to the ONNX file at ``path``, in place (for files this tool wrote)."""
    path = Path(path)
    model = append_argmax(onnx.load(str(path)), scores, labels=labels, axis=axis)
    onnx.checker.check_model(model)
    onnx.save(model, str(path))
