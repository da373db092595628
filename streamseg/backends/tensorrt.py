"""TensorRT: a cached engine run with ``execute_async_v3`` on its own CUDA stream.

I/O buffers are torch CUDA tensors whose addresses go straight to the
execution context, so a tensor made on the GPU (``preprocess.cuda``) is read in
place and the output stays on the GPU for ``postprocess.cuda``. Host numpy
input works too (uploaded, and the output copied back), so the CPU stages and
benchmarks can drive this backend unchanged.

The engine comes from ``trt_build.ensure_engine``: looked up in the cache by
ONNX sha256, precision, profile, TensorRT version and GPU, and built when
missing. Optionally, fixed-shape runs are captured once into a CUDA graph and
replayed.
"""

from __future__ import annotations

import logging
from pathlib import Path

import numpy as np

from streamseg.backends.base import Device, InputDtype, Output, check_output_classes
from streamseg.backends.engine_cache import EngineCache, Profile
from streamseg.backends.trt_build import DEFAULT_WORKSPACE, default_profile, ensure_engine, import_tensorrt
from streamseg.errors import BackendError, ModelError
from streamseg.models.handle import ModelHandle, model_file
from streamseg.models.spec import ModelSpec

log = logging.getLogger(__name__)


def default_engine_dir() -> Path:
    from streamseg.models.fetch import cache_folder

    return cache_folder("engines")


class TensorRTBackend:
    device: Device = "cuda"
    streams = 1  # one execution context
    queued = 0
    output: Output = "scores"  # the CUDA stages take the argmax on the GPU

    def __init__(
        self,
        model: ModelHandle | str | Path,
        spec: ModelSpec | None = None,
        *,
        precision: str | None = None,
        engine_dir: str | Path | None = None,
        profile: Profile | None = None,
        rebuild: str = "auto",
        workspace: int = DEFAULT_WORKSPACE,
        cuda_graphs: bool = False,
    ):
        import torch

        trt = import_tensorrt()
        self._torch = torch
        handle = model_file(model, spec)
        spec = handle.spec
        profile = profile or default_profile(spec)
        cache = EngineCache(engine_dir or default_engine_dir())
        built, self.spec = ensure_engine(
            handle, spec, precision=precision, profile=profile, cache=cache, rebuild=rebuild, workspace=workspace
        )
        self.engine_path = built.path
        self.profile = profile
        self._logger = trt.Logger(trt.Logger.WARNING)
        self._runtime = trt.Runtime(self._logger)
        self.engine = self._runtime.deserialize_cuda_engine(built.path.read_bytes())
        if self.engine is None:  # the manifest matched, yet TensorRT refuses the bytes
            raise BackendError(f"TensorRT refused engine {built.path.name}; delete it and run `streamseg build-engine`")
        self.context = self.engine.create_execution_context()
        self.stream = torch.cuda.Stream()
        self._io = self._describe_io(trt)
        if spec.input_name not in self._io or spec.output_name not in self._io:
            raise ModelError(
                f"engine {built.path.name}: spec names {spec.input_name!r}/{spec.output_name!r} "
                f"not among its tensors {sorted(self._io)}"
            )
        self._input_torch_dtype = self._io[spec.input_name][1]
        self.input_dtype: InputDtype = "float16" if self._input_torch_dtype == torch.float16 else "float32"
        self.max_batch: int | None = profile.max[0]
        self._where = f"engine {built.path.name}"
        self._classes_checked = check_output_classes(
            list(self.engine.get_tensor_shape(spec.output_name)), spec, self._where
        )
        same = profile.min[2:] == profile.max[2:]
        self.fixed_input_size = (profile.min[2], profile.min[3]) if same else None
        self.cuda_graphs = cuda_graphs
        self._graphs: dict[tuple[int, ...], tuple] = {}  # shape -> (graph, static input, static outputs)
        gpu = built.key.gpu_name
        self.precision = built.key.precision
        self.name = f"{trt.__name__} {trt.__version__} ({self.precision}, {gpu})"

    def _describe_io(self, trt) -> dict[str, tuple[bool, object]]:
        """name -> (is_input, torch dtype) for every I/O tensor of the engine."""
        torch = self._torch
        io = {}
        for i in range(self.engine.num_io_tensors):
            name = self.engine.get_tensor_name(i)
            is_input = self.engine.get_tensor_mode(name) == trt.TensorIOMode.INPUT
            np_dtype = np.dtype(trt.nptype(self.engine.get_tensor_dtype(name)))
            io[name] = (is_input, _TORCH_DTYPES(torch)[np_dtype])
        return io

    def run(self, tensor):
        """The spec's output: a CUDA tensor for CUDA input, numpy for numpy input."""
        torch = self._torch
        on_host = isinstance(tensor, np.ndarray)
        with torch.cuda.stream(self.stream):
            x = torch.from_numpy(tensor).cuda() if on_host else tensor
            if x.dtype != self._input_torch_dtype:
                x = x.to(self._input_torch_dtype)
            x = x.contiguous()
            shape = tuple(x.shape)
            if not self.profile.accepts(shape):
                raise BackendError(
                    f"input {shape} is outside the engine's profile {self.profile.describe()}; "
                    "build an engine for it (streamseg build-engine --min-shape/--max-shape)"
                )
            if self.cuda_graphs:
                out = self._replay(x)
            else:
                outputs = self._bind(x)
                if not self.context.execute_async_v3(self.stream.cuda_stream):
                    raise BackendError("TensorRT execute_async_v3 failed (see the TensorRT log above)")
                out = outputs[self.spec.output_name]
        self.stream.synchronize()  # the next stage runs in another thread, on its own stream
        if not self._classes_checked:  # a dynamic class axis: check the first real output
            self._classes_checked = check_output_classes(tuple(out.shape), self.spec, self._where)
        return out.cpu().numpy() if on_host else out

    def prepare(self, input_shape: tuple[int, ...]) -> None:
        if not self.profile.accepts(tuple(input_shape)):
            raise BackendError(
                f"input {tuple(input_shape)} is outside the engine's profile "
                f"{self.profile.describe()}; build an engine for it (streamseg build-engine)"
            )

    def _bind(self, x) -> dict:
        """Set the input shape and every tensor address; returns fresh output tensors."""
        torch = self._torch
        self.context.set_input_shape(self.spec.input_name, tuple(x.shape))
        self.context.set_tensor_address(self.spec.input_name, x.data_ptr())
        outputs = {}
        for name, (is_input, dtype) in self._io.items():
            if is_input:
                continue
            shape = tuple(self.context.get_tensor_shape(name))
            outputs[name] = torch.empty(shape, dtype=dtype, device="cuda")
            self.context.set_tensor_address(name, outputs[name].data_ptr())
        return outputs

    def _replay(self, x):
        """Fixed shapes run as a captured CUDA graph: copy in, replay, clone out."""
        torch = self._torch
        shape = tuple(x.shape)
        entry = self._graphs.get(shape)
        if entry is None:
            static_in = torch.empty_like(x)
            static_in.copy_(x)
            outputs = self._bind(static_in)
            self.context.execute_async_v3(self.stream.cuda_stream)  # the first run sets up shape-bound state
            self.stream.synchronize()
            graph = torch.cuda.CUDAGraph()
            with torch.cuda.graph(graph, stream=self.stream):
                self.context.execute_async_v3(self.stream.cuda_stream)
            entry = self._graphs[shape] = (graph, static_in, outputs)
            log.info("tensorrt: captured a CUDA graph for input %s", shape)
        graph, static_in, outputs = entry
        if len(self._graphs) > 1:  # addresses are per shape: rebind this one's before replay
            self._bind_static(static_in, outputs)
        static_in.copy_(x)
        graph.replay()
        return outputs[self.spec.output_name].clone()

    def _bind_static(self, static_in, outputs) -> None:
        self.context.set_input_shape(self.spec.input_name, tuple(static_in.shape))
        self.context.set_tensor_address(self.spec.input_name, static_in.data_ptr())
        for name, tensor in outputs.items():
            self.context.set_tensor_address(name, tensor.data_ptr())

    def close(self) -> None:
        self._graphs.clear()
        self.context = None
        self.engine = None


def _TORCH_DTYPES(torch) -> dict:  # noqa: N802 - a table, built once torch is imported
    return {
        np.dtype("float32"): torch.float32,
        np.dtype("float16"): torch.float16,
        np.dtype("int8"): torch.int8,
        np.dtype("int32"): torch.int32,
        np.dtype("int64"): torch.int64,
        np.dtype("bool"): torch.bool,
        np.dtype("uint8"): torch.uint8,
    }
