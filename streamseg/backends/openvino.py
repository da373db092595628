"""OpenVINO: Intel's CPU runtime, for BF16 on CPUs that compute it natively (AMX, AVX512-BF16).

ONNX Runtime stays the default on the CPU: in FP32 it is as fast or faster
(FCN-ResNet50 at 520x924 on a 2-core Sapphire Rapids: 2.9–3.4 s ONNX Runtime,
3.2–4.0 s OpenVINO). OpenVINO earns its place with ``precision="bf16"``, where
the convolutions run on AMX tiles: 1.06 s on the same machine, labels 99.95%
equal to FP32 (docs/benchmarks.md). A Q/DQ (``streamseg quantize``) model
runs in INT8 as it is.

The model is compiled for the first input shape it meets, static. A second shape (sources of other sizes)
replaces it with one model of dynamic height, width and batch that serves every shape: compiled per shape,
three sizes held 1.58x the memory of one (FP32; 1.32x BF16), and the dynamic model ran within 0.87-1.07x of
the static ones' time (fcn_resnet50, LR-ASPP, DeepLabV3; FP32, BF16, INT8; docs/cpu-speed.md).

``labels`` (argmax models): a stable TopK(1) over the class axis, cast to uint8, becomes the model's
only result, so ``run`` returns (N, h, w) class ids and no scores leave the engine.

``pictures``: the engine takes the resized RGB frame as it is, (N, H, W, 3) uint8, and converts,
normalizes and lays it out in its own graph (OpenVINO's preprocessing, fused into the first layer): the
preprocess stage then writes no float frame. LR-ASPP at 640x360 in BF16 spent the same engine CPU a frame
either way (26.5 ms, 2 streams), and the float multiply-add left the preprocess stage (0.8 of its 1.4 ms).

``streams``: how many frames the engine works on at once, each on its share of the cores. One stream
puts every thread on one frame (the lowest latency); more streams run frames side by side, which light
models need on a few cores: LR-ASPP at 640x360 in BF16 on 2 cores ran 33-42 fps as one 2-thread stream
and 54-55 fps as two 1-thread streams, and kept 39-48 fps against 24-29 beside other busy threads;
fcn_resnet50 ran 0.7 fps either way (docs/cpu-speed.md). ``streams=None`` lets OpenVINO's THROUGHPUT
hint choose. With several streams the engine holds one infer request more than it has streams
(``queued``), and ``run`` is safe to call from that many threads at once: a stream that finishes finds
the next frame submitted, rather than idling until the infer stage's thread gets a core to submit it.
LR-ASPP at 640x360 in BF16 on 2 cores, end to end: 2 streams and 3 requests 75.5-76.7 fps against
69.9-74.9 with 2 requests; 4 requests gained nothing more (docs/cpu-speed.md).
"""

from __future__ import annotations

import logging
import queue
import threading
from pathlib import Path

import numpy as np

from streamseg.backends.base import Device, Output, check_output_classes, engine_labels_wanted
from streamseg.cores import usable_cores
from streamseg.errors import BackendError, MissingExtraError, ModelError
from streamseg.models.handle import ModelHandle, model_file
from streamseg.models.spec import ModelSpec

log = logging.getLogger(__name__)

# infer requests held beyond the streams where there are several (none for one stream: a live source's
# latency-first run would only have frames wait in the engine)
QUEUED_WITH_STREAMS = 1

# OpenVINO's Python binding fills function-local statics on a process's first inference (its element type ->
# dtype table) inside a C++ static guard, then takes the GIL; a second first inference holding the GIL waits on
# that guard: both wait for good. Seen on one core with two or three calls at once (1 and 6 hangs in 30 fresh
# processes). The process's first inference runs alone; every later one goes straight through.
_FIRST_INFERENCE = threading.Lock()
_first_inference_done = threading.Event()

# streamseg's precision names -> OpenVINO's inference precision hint: what the layers that are not
# quantized compute in (an INT8 Q/DQ model's convolutions run in INT8 whatever the hint)
_HINTS = {"fp32": "f32", "bf16": "bf16", "fp16": "f16", "int8": "f32"}
_DTYPES = {"f32": "float32", "f16": "float16", "u8": "uint8"}


def import_openvino():
    try:
        import openvino
    except ImportError:
        raise MissingExtraError("--backend openvino", "openvino") from None
    return openvino


def one_line(err: Exception) -> str:
    """OpenVINO's errors carry a source location and a stack of context lines: keep the first real one."""
    lines = [line.strip() for line in str(err).splitlines() if line.strip()]
    lines = [line for line in lines if not line.startswith(("Exception from", "Check '"))] or lines
    return lines[0] if lines else type(err).__name__


class OpenVinoBackend:
    device: Device = "cpu"

    def __init__(
        self,
        model: ModelHandle | str | Path,
        spec: ModelSpec | None = None,
        *,
        threads: int | None = None,
        precision: str = "fp32",
        labels: bool = False,
        streams: int | None = 1,
        pictures: bool = False,
    ):
        """``precision``: bf16, or the file's own (fp32, fp16, int8) as ``ModelHandle.precision`` finds it;
        ``streams``: frames at once (None: as many as OpenVINO finds best for throughput); ``pictures``:
        take uint8 RGB pictures and normalize them in the graph (a float32 input only)."""
        handle = model_file(model, spec)
        model_path, spec = handle.path, handle.spec
        ov = import_openvino()
        self.core = ov.Core()
        hint = _HINTS[precision]
        supported = self.core.get_property("CPU", "OPTIMIZATION_CAPABILITIES")
        needs = {"bf16": "BF16", "f16": "FP16"}.get(hint)
        if needs and needs not in supported:
            raise BackendError(
                f"openvino: this CPU does not compute {precision} ({', '.join(supported)}); "
                f"run fp32 or use another machine"
            )
        try:
            self.model = self.core.read_model(str(model_path))
        except Exception as err:  # noqa: BLE001 - OpenVINO raises RuntimeError and friends, multi-line
            raise BackendError(f"OpenVINO cannot load {model_path}: {one_line(err)}") from None
        self.spec = spec
        self.input_dtype = spec.dtype
        self.fixed_input_size, self.max_batch = check_io(self.model, spec, model_path)
        self._where = Path(model_path).name
        output = next(port for port in self.model.outputs if spec.output_name in port.get_names())
        self._classes_checked = check_output_classes(
            [d.get_length() if d.is_static else None for d in output.get_partial_shape()]
            if output.get_partial_shape().rank.is_static
            else [],
            spec,
            self._where,
        )
        self.output: Output = "labels" if engine_labels_wanted(labels, spec) else "scores"
        self._result_name = spec.output_name
        if self.output == "labels":
            self.model, self._result_name = labels_model(ov, self.model, spec.output_name), "labels"
        if pictures and spec.dtype == "float32":
            self.model, self.input_dtype = pictures_model(self.model, spec), "uint8"
        self._input_layout = "NHWC" if self.input_dtype == "uint8" else spec.layout
        self.config = {
            "INFERENCE_PRECISION_HINT": hint,
            # one stream: every thread on one request; more: frames side by side, a share of the threads each
            "PERFORMANCE_HINT": "LATENCY" if streams == 1 else "THROUGHPUT",
            "INFERENCE_NUM_THREADS": threads or usable_cores(),
            # decoding, compositing and encoding share these cores: pinned threads would fight them (measured:
            # two pinned streams ran LR-ASPP end to end 6-16% slower than unpinned ones)
            "ENABLE_CPU_PINNING": False,
        }
        if streams is not None and streams > 1:
            self.config["NUM_STREAMS"] = streams
        # None: OpenVINO's choice, known once the first model is compiled; one until then
        self.streams, self._streams_chosen = streams or 1, streams is not None
        self.precision = precision
        self.name = self._named()
        self._compiled: dict[tuple[int, ...], tuple] = {}  # input shape -> (infer requests, output port)
        self._any_shape: tuple | None = None  # (infer requests, output port) of the dynamic model, once it is made
        self._compiling = threading.Lock()  # run() may be called from `streams` threads at once
        if self.fixed_input_size is not None:  # compile now, not on a live stream's first frame
            h, w = self.fixed_input_size
            self._compile((1, 3, h, w) if self._input_layout == "NCHW" else (1, h, w, 3))

    @property
    def queued(self) -> int:
        """Infer requests held beside the streams' own: one where there are several streams."""
        return QUEUED_WITH_STREAMS if self.streams > 1 else 0

    def _named(self) -> str:
        return f"openvino (CPU, {self.precision}" + (f", {self.streams} streams)" if self.streams > 1 else ")")

    def _compile(self, shape: tuple[int, ...]) -> tuple:
        if self._compiled and self.fixed_input_size is None:  # a second shape: one model for every shape
            self._compiled.clear()
            self._any_shape = self._compiled_for(shape, dynamic=True)
            return self._any_shape
        entry = self._compiled[shape] = self._compiled_for(shape, dynamic=False)
        return entry

    def _compiled_for(self, shape: tuple[int, ...], *, dynamic: bool) -> tuple:
        """(infer requests, output port) of the model compiled for ``shape``, or for any batch and size."""
        channels = 1 if self._input_layout == "NCHW" else 3
        wanted = [d if (k == channels or not dynamic) else -1 for k, d in enumerate(shape)]
        self.model.reshape({self.spec.input_name: wanted})
        try:
            compiled = self.core.compile_model(self.model, "CPU", self.config)
        except Exception as err:  # noqa: BLE001 - as above
            raise BackendError(f"OpenVINO cannot compile the model for input {wanted}: {one_line(err)}") from None
        if not self._streams_chosen:
            self.streams = max(1, int(compiled.get_property("OPTIMAL_NUMBER_OF_INFER_REQUESTS")))
            self._streams_chosen, self.name = True, self._named()
        log.debug("openvino: compiled for %s in %s, %d stream(s)", wanted, self.precision, self.streams)
        requests: queue.SimpleQueue = queue.SimpleQueue()  # one per call in flight; a run borrows one
        for _ in range(self.streams + self.queued):
            requests.put(compiled.create_infer_request())
        return requests, compiled.output(self._result_name)

    def prepare(self, input_shape: tuple[int, ...]) -> None:
        self._compiled_entry(tuple(input_shape))

    def _compiled_entry(self, shape: tuple[int, ...]) -> tuple:
        with self._compiling:
            return self._any_shape or self._compiled.get(shape) or self._compile(shape)

    def run(self, tensor: np.ndarray) -> np.ndarray:
        requests, output = self._any_shape or self._compiled.get(tensor.shape) or self._compiled_entry(tensor.shape)
        request = requests.get()
        try:
            result = self._infer(request, tensor)
        finally:
            requests.put(request)
        out = result[output]
        # the class axis was dynamic in the file: check the first real output (labels have none)
        if not self._classes_checked and self.output == "scores":
            self._classes_checked = check_output_classes(out.shape, self.spec, self._where)
        return out

    def _infer(self, request, tensor: np.ndarray):
        # inputs are read in place (the caller keeps the array until run returns); outputs are copied, since
        # the request's buffer is overwritten by the next run while later stages still read this one
        inputs = {self.spec.input_name: tensor}
        if _first_inference_done.is_set():
            return request.infer(inputs, share_inputs=True, share_outputs=False)
        with _FIRST_INFERENCE:
            result = request.infer(inputs, share_inputs=True, share_outputs=False)
            _first_inference_done.set()
            return result

    def close(self) -> None:
        self._compiled.clear()
        self._any_shape = None
        self.model = None


def labels_model(ov, model, scores: str):
    """``model`` with one result, ``labels``: the class of the first maximum (as np.argmax) as uint8."""
    from openvino import opset13 as ops

    result = next(port for port in model.outputs if scores in port.get_names()).get_node()
    # k = 1: "sorting" costs nothing, and stable picks the lowest class among equal scores
    best = ops.topk(result.input_value(0), 1, axis=1, mode="max", sort="value", index_element_type="i32", stable=True)
    labels = ops.convert(ops.squeeze(best.output(1), [1]), "u8")
    labels.output(0).get_tensor().set_names({"labels"})
    return ov.Model([labels], model.get_parameters(), "labels")


def pictures_model(model, spec: ModelSpec):
    """``model`` taking (N, H, W, 3) uint8 RGB: conversion, channel order and ``spec.normalize`` in its graph."""
    import openvino as ov
    from openvino.preprocess import PrePostProcessor

    ppp = PrePostProcessor(model)
    put = ppp.input(spec.input_name)
    put.tensor().set_element_type(ov.Type.u8).set_layout(ov.Layout("NHWC"))
    steps = put.preprocess().convert_element_type(ov.Type.f32)
    if spec.color_order == "BGR":
        steps.reverse_channels()
    norm = spec.normalize  # (pixel * range / 255 - mean) / std = (pixel - mean * k) / (std * k), k = 255 / range
    k = 255.0 / norm.range
    steps.mean([m * k for m in norm.mean]).scale([s * k for s in (norm.std or (1.0, 1.0, 1.0))])
    put.model().set_layout(ov.Layout(spec.layout))
    return ppp.build()


def check_io(model, spec: ModelSpec, model_path: str | Path) -> tuple[tuple[int, int] | None, int | None]:
    """Refuse a model whose inputs and outputs don't match its spec; the static input (H, W) and batch if any."""
    where = Path(model_path).name
    inputs = {name: port for port in model.inputs for name in port.get_names()}
    outputs = {name for port in model.outputs for name in port.get_names()}
    if spec.input_name not in inputs:
        raise ModelError(f"{where}: spec input {spec.input_name!r} not in the model's inputs {sorted(inputs)}")
    if spec.output_name not in outputs:
        raise ModelError(f"{where}: spec output {spec.output_name!r} not in the model's outputs {sorted(outputs)}")
    port = inputs[spec.input_name]
    shape = port.get_partial_shape()
    if shape.rank.is_dynamic or shape.rank.get_length() != 4:
        raise ModelError(f"{where}: input {spec.input_name!r} has rank {shape.rank}, expected 4 ({spec.layout})")
    dtype = _DTYPES.get(port.get_element_type().get_type_name())
    if dtype != spec.dtype:
        raise ModelError(f"{where}: input {spec.input_name!r} is {port.get_element_type()}, spec says {spec.dtype}")
    hw_axes = (2, 3) if spec.layout == "NCHW" else (1, 2)
    dims = [shape[a] for a in hw_axes]
    batch = shape[0].get_length() if shape[0].is_static else None
    if all(d.is_static for d in dims):
        return (dims[0].get_length(), dims[1].get_length()), batch
    return None, batch
