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
    (``streamseg.backends.winograd``), with a session built for each input size as it arrives.

    Takes batches: a batch runs as one call, except on Winograd sessions, whose
    rewritten layout holds one image, so their batches run frame by frame
    (on a CPU a batch buys no speed anyway, docs/benchmarks.md).

    ``labels`` (argmax models): the graph gets an ArgMax over the class axis (``models.argmax``) and
    ``run`` returns (N, h, w) uint8 labels, one byte a pixel instead of C float scores.
    """

    device: Device = "cpu"

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
        session = self._session(self._graph_bytes() if self.output == "labels" else str(model_path))
        self.input_dtype = spec.dtype
        self.fixed_input_size, self.max_batch = check_io(session, spec, model_path)
        outputs = {o.name: o.shape for o in session.get_outputs()}
        self._classes_checked = check_output_classes(outputs[spec.output_name], spec, self._where)
        self.name = self._direct_name = f"onnxruntime ({session.get_providers()[0]})"
        self._outputs = [LABELS_OUTPUT if self.output == "labels" else spec.output_name]
        self._direct = session  # the model as it is; None while Winograd sessions serve every size
        self._winograd_from: ModelHandle | None = None  # the model, its graph rewritten for each new input size
        self._sessions: dict[tuple[int, ...], Any] = {}  # input (H, W) -> its Winograd session
        if (
            winograd
            and self._providers == ["CPUExecutionProvider"]
            and spec.dtype == "float32"
            and spec.layout == "NCHW"
        ):
            from streamseg.backends.winograd import candidates

            count = candidates(handle.graph)
            if count:
                self._winograd_from, self._direct = handle, None  # the plain session's weights go now
                self.name += f", Winograd F(4x4,3x3) on {count} convolutions"
                if self.fixed_input_size is not None:
                    self._rewrite_for(self.fixed_input_size)

    def run(self, tensor: np.ndarray) -> np.ndarray:
        out = self._run(tensor)
        # the class axis was dynamic in the file: check the first real output (labels have none)
        if not self._classes_checked and self.output == "scores":
            self._classes_checked = check_output_classes(out.shape, self.spec, self._where)
        return out

    def _run(self, tensor: np.ndarray) -> np.ndarray:
        if self._winograd_from is None:
            return self._direct.run(self._outputs, {self.spec.input_name: tensor})[0]
        session = self._sessions.get(tuple(tensor.shape[2:])) or self._rewrite_for(tuple(tensor.shape[2:]))
        if self._winograd_from is None:  # the rewrite failed: the direct session took over
            return self._run(tensor)
        if len(tensor) == 1:
            return session.run(self._outputs, {self.spec.input_name: tensor})[0]
        return np.concatenate(
            [session.run(self._outputs, {self.spec.input_name: tensor[k : k + 1]})[0] for k in range(len(tensor))]
        )

    def prepare(self, input_shape: tuple[int, ...]) -> None:
        """Rewrite for a new input size now, not at its first frame (2-3 s for FCN-ResNet50)."""
        size = tuple(input_shape[2:])
        if self._winograd_from is not None and size not in self._sessions:
            self._rewrite_for(size)

    def close(self) -> None:
        self._direct = None
        self._sessions.clear()
        self._winograd_from = None

    def _rewrite_for(self, size: tuple[int, ...]) -> Any:
        """A Winograd session for ``size``, kept for as long as the backend lives: each source keeps its size."""
        from streamseg.backends.winograd import rewrite

        source = self._winograd_from
        if source is None:  # the direct session serves every size
            return None
        try:
            rewritten, count = rewrite(self._graph(), *size)  # in place: a copy, the handle's stays
            serialized = rewritten.SerializeToString()
            del rewritten  # before ONNX Runtime makes its own copy
            session = self._sessions[size] = self._session(serialized)
        except Exception as err:  # a graph the rewrite did not foresee still runs, as it is
            log.warning(
                "%s: no Winograd convolutions at %dx%d (%s); running them directly",
                self._where,
                *size,
                str(err).splitlines()[0] if str(err) else type(err).__name__,
            )
            direct = self._graph_bytes() if self.output == "labels" else str(source.path)
            self._direct, self._winograd_from, count, session = self._session(direct), None, 0, None
            self._sessions.clear()
        # the count the shapes allowed (candidates() judged from the weights alone)
        self.name = f"{self._direct_name}, Winograd F(4x4,3x3) on {count} convolutions" if count else self._direct_name
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

    def _session(self, model: str | bytes) -> Any:
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
