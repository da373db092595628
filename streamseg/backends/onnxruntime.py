"""ONNX Runtime: the embedded default backend, on the CPU everywhere."""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

import numpy as np

from streamseg.backends.base import Device, Output, check_output_classes, engine_labels_wanted
from streamseg.cores import usable_cores
from streamseg.errors import BackendError, ModelError
from streamseg.models.argmax import LABELS_OUTPUT, append_argmax
from streamseg.models.handle import ModelHandle, model_file
from streamseg.models.spec import ModelSpec

log = logging.getLogger(__name__)

_DTYPES = {"tensor(float)": "float32", "tensor(float16)": "float16"}
# CSE would merge the per-consumer Q/DQ pairs of `streamseg quantize` models, and a Q shared by several
# DQs stays INT8, which ORT's x86 QLinearConv does not take: FP32 models lose nothing by skipping it.
_DISABLED_OPTIMIZERS = ["CommonSubexpressionElimination"]


class OnnxRuntimeBackend:
    """``winograd`` (CPU, FP32 models): run the big 3x3 convolutions as Winograd F(4x4, 3x3)
    (``streamseg.backends.winograd``), in one session for every input size.

    One session, not one per size: sources of three sizes then hold one copy of the weights and one
    arena, 1.0x the memory of one size where per-size sessions took 1.9x (docs/cpu-speed.md).

    Takes batches: a batch runs as one call, except on the Winograd session, whose
    rewritten layout holds one image, so its batches run frame by frame
    (on a CPU a batch buys no speed anyway, docs/benchmarks.md).

    ``labels`` (argmax models): the graph gets an ArgMax over the class axis (``models.argmax``) and
    ``run`` returns (N, h, w) uint8 labels, one byte a pixel instead of C float scores.

    One stream: two 1-thread calls at once ran LR-ASPP slower than one 2-thread call (19.5-20.5 against
    22.7-26.4 fps on 2 cores), unlike OpenVINO's streams (docs/cpu-speed.md).
    """

    device: Device = "cpu"
    streams = 1
    queued = 0

    def __init__(
        self,
        model: ModelHandle | str | Path,
        spec: ModelSpec | None = None,
        *,
        threads: int | None = None,
        providers: list[str] | None = None,
        winograd: bool = True,
        labels: bool = False,
    ):
        import onnxruntime as ort

        handle = model_file(model, spec)
        model_path, spec = handle.path, handle.spec
        options = ort.SessionOptions()
        options.intra_op_num_threads = threads or usable_cores()  # every core
        options.inter_op_num_threads = 1
        options.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
        options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
        options.log_severity_level = 3  # errors only: no per-session chatter
        # idle threads sleep instead of spinning: as fast alone (measured), and the spinning would
        # take the cores that decoding, compositing and encoding need between inferences
        options.add_session_config_entry("session.intra_op.allow_spinning", "0")
        # no pre-planned activation block: as fast (measured), and FCN-ResNet50 at 520x924 then holds
        # 528 MiB instead of 713 (1162 instead of 1577 with the Winograd convolutions)
        options.enable_mem_pattern = False
        self._options, self._providers = options, providers or ["CPUExecutionProvider"]
        self._where = Path(model_path).name
        self.output: Output = "labels" if engine_labels_wanted(labels, spec) else "scores"
        self._handle, self.spec = handle, spec
        self._session = self._open(self._as_is())
        self.input_dtype = spec.dtype
        self.fixed_input_size, self.max_batch = check_io(self._session, spec, model_path)
        outputs = {o.name: o.shape for o in self._session.get_outputs()}
        self._classes_checked = check_output_classes(outputs[spec.output_name], spec, self._where)
        self.name = f"onnxruntime ({self._session.get_providers()[0]})"
        self._outputs = [LABELS_OUTPUT if self.output == "labels" else spec.output_name]
        self._one_image = False  # the Winograd layout holds one image: batches then run frame by frame
        if (
            winograd
            and self._providers == ["CPUExecutionProvider"]
            and spec.dtype == "float32"
            and spec.layout == "NCHW"
        ):
            from streamseg.backends.winograd import candidates

            if candidates(handle.graph):
                self._session = None  # the plain session's weights go before the rewritten ones come
                self._session = self._winograd_session()

    def run(self, tensor: np.ndarray) -> np.ndarray:
        out = self._run(tensor)
        # the class axis was dynamic in the file: check the first real output (labels have none)
        if not self._classes_checked and self.output == "scores":
            self._classes_checked = check_output_classes(out.shape, self.spec, self._where)
        return out

    def _run(self, tensor: np.ndarray) -> np.ndarray:
        if len(tensor) == 1 or not self._one_image:
            return self._session.run(self._outputs, {self.spec.input_name: tensor})[0]
        return np.concatenate(
            [self._session.run(self._outputs, {self.spec.input_name: tensor[k : k + 1]})[0] for k in range(len(tensor))]
        )

    def prepare(self, input_shape: tuple[int, ...]) -> None:
        """Nothing: one session serves every input size."""

    def close(self) -> None:
        self._session = None

    def _winograd_session(self) -> Any:
        """The model with its big 3x3 convolutions in Winograd form, or as it is where the rewrite fails."""
        from streamseg.backends.winograd import rewrite

        try:
            rewritten, count = rewrite(self._graph())  # in place: a copy, the handle's stays
            if not count:  # the shapes allowed none (candidates() judged from the weights alone)
                return self._open(self._as_is())
            serialized = rewritten.SerializeToString()
            del rewritten  # before ONNX Runtime makes its own copy
            session = self._open(serialized)
        except Exception as err:  # a graph the rewrite did not foresee still runs, as it is
            log.warning(
                "%s: no Winograd convolutions (%s); running them directly",
                self._where,
                str(err).splitlines()[0] if str(err) else type(err).__name__,
            )
            return self._open(self._as_is())
        self.name += f", Winograd F(4x4,3x3) on {count} convolutions"
        self._one_image = True
        return session

    def _graph(self):
        """A copy of the model's graph to rewrite, with the ArgMax where ``labels`` asked for it."""
        graph = self._handle.graph_copy()
        return append_argmax(graph, self.spec.output_name) if self.output == "labels" else graph

    def _graph_bytes(self) -> bytes:
        graph = self._graph()
        serialized = graph.SerializeToString()
        del graph  # before ONNX Runtime makes its own copy
        return serialized

    def _as_is(self) -> str | bytes:
        """The model without the rewrite: the file, or its graph with the ArgMax."""
        return self._graph_bytes() if self.output == "labels" else str(self._handle.path)

    def _open(self, model: str | bytes) -> Any:
        import onnxruntime as ort

        try:
            return ort.InferenceSession(
                model, self._options, providers=self._providers, disabled_optimizers=_DISABLED_OPTIMIZERS
            )
        except Exception as err:  # ORT raises its own untyped exceptions
            first = str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__
            raise BackendError(f"ONNX Runtime cannot load {self._where}: {first}") from None


def check_io(session, spec: ModelSpec, model_path: str | Path) -> tuple[tuple[int, int] | None, int | None]:
    """Refuse a model whose inputs and outputs don't match its spec.

    Returns the static input (H, W) if the model has one, else None, and its
    static batch size if it has one (the most frames a run takes), else None.
    """
    inputs = {i.name: i for i in session.get_inputs()}
    outputs = {o.name for o in session.get_outputs()}
    where = Path(model_path).name
    if spec.input_name not in inputs:
        raise ModelError(f"{where}: spec input {spec.input_name!r} not in the model's inputs {sorted(inputs)}")
    if spec.output_name not in outputs:
        raise ModelError(f"{where}: spec output {spec.output_name!r} not in the model's outputs {sorted(outputs)}")
    arg = inputs[spec.input_name]
    if len(arg.shape) != 4:
        raise ModelError(f"{where}: input {arg.name!r} has rank {len(arg.shape)}, expected 4 ({spec.layout})")
    dtype = _DTYPES.get(arg.type)
    if dtype != spec.dtype:
        raise ModelError(f"{where}: input {arg.name!r} is {arg.type}, spec says {spec.dtype}")
    c_axis, hw_axes = (1, (2, 3)) if spec.layout == "NCHW" else (3, (1, 2))
    channels = arg.shape[c_axis]
    if isinstance(channels, int) and channels != 3:
        raise ModelError(
            f"{where}: input {arg.name!r} has {channels} channels at axis {c_axis}, expected 3 ({spec.layout})"
        )
    h, w = (arg.shape[a] for a in hw_axes)
    batch = arg.shape[0] if isinstance(arg.shape[0], int) else None
    return ((h, w) if isinstance(h, int) and isinstance(w, int) else None), batch
