"""torch: the GPU fallback where TensorRT is absent, and the reference TensorRT is checked against.

The network is the torchvision architecture the spec names (``fcn_resnet50``
…), and its weights are read from the ONNX file itself, so the torch and ONNX
models are the same model by construction: random, pretrained or fine-tuned,
whatever was exported. The exporter folds BatchNorm into the convolutions,
so the torchvision module is fused the same way (``torch.fx`` conv+bn fusion)
before each Conv node's weight and bias are copied into the module its
initializer is named after.

On CUDA it runs in FP16 (``precision="fp16"``), channels_last, and can
replay fixed-shape runs from captured CUDA graphs. ``compile=True`` runs the
module through ``torch.compile`` (inductor, default mode: it compiles in about a
minute; ``compile="max-autotune-no-cudagraphs"`` tunes much longer, and leaves
CUDA graphs to our own per-shape capture).
Any batch size runs: input is (N, 3, H, W), and graphs are captured per shape.
It runs on the CPU too (FP32), which is how the tests check it against ONNX Runtime.
"""

from __future__ import annotations

import contextlib
import logging
from pathlib import Path

import numpy as np

from streamseg.backends.base import Device, InputDtype, Output
from streamseg.errors import BackendError, ConfigError, ModelError
from streamseg.models.handle import ModelHandle, model_file
from streamseg.models.out_only import WRAPPER_PREFIX
from streamseg.models.spec import ModelSpec

log = logging.getLogger(__name__)

ARCHITECTURES = (
    "fcn_resnet50",
    "fcn_resnet101",
    "deeplabv3_resnet50",
    "deeplabv3_resnet101",
    "deeplabv3_mobilenet_v3_large",
    "lraspp_mobilenet_v3_large",
)


def architecture_for(spec: ModelSpec) -> str:
    """The torchvision builder for a spec: the zoo's, else the longest builder name the spec name starts with."""
    from streamseg.models import ZOO

    entry = ZOO.get(spec.name)
    if entry is not None and entry.torchvision_builder:
        return entry.torchvision_builder
    for name in sorted(ARCHITECTURES, key=len, reverse=True):
        if spec.name.startswith(name):
            return name
    raise BackendError(
        f"the torch backend builds torchvision architectures ({', '.join(ARCHITECTURES)}); "
        f"model {spec.name!r} is none of them: use --backend onnxruntime or tensorrt"
    )


def load_onnx_weights(module, model: ModelHandle | str | Path):
    """``module`` (wrapped as exported) with the ONNX's weights; BN folded first when the ONNX folded it."""
    import torch
    from onnx import numpy_helper
    from torch.fx.experimental.optimization import fuse

    from streamseg.models.onnx_graph import constants

    handle = model_file(model) if not isinstance(model, ModelHandle) else model
    graph, onnx_path = handle.graph.graph, handle.path
    weights = constants(graph)
    if any(node.op_type == "BatchNormalization" for node in graph.node):
        state = {
            name: torch.from_numpy(numpy_helper.to_array(t).copy())
            for name, t in weights.items()
            if name.startswith(WRAPPER_PREFIX)
        }
        missing = set(module.state_dict()) - set(state) - {k for k in module.state_dict() if "num_batches" in k}
        if missing:
            raise ModelError(f"{Path(onnx_path).name}: no weights for {sorted(missing)[:3]}… in the ONNX")
        module.load_state_dict(state, strict=False)
        return module
    fused = fuse(module)
    convs = {name: m for name, m in fused.named_modules() if isinstance(m, torch.nn.Conv2d)}
    loaded = set()
    for node in graph.node:
        if node.op_type != "Conv" or node.input[1] not in weights:
            continue
        path = node.input[1].removesuffix(".weight")
        conv = convs.get(path)
        if conv is None:
            raise ModelError(
                f"{Path(onnx_path).name}: Conv weight {node.input[1]!r} matches no {type(module).__name__}"
                " convolution: was it exported from this architecture?"
            )
        weight = torch.from_numpy(numpy_helper.to_array(weights[node.input[1]]).astype(np.float32))
        if weight.shape != conv.weight.shape:
            raise ModelError(
                f"{Path(onnx_path).name}: {path} weight is {tuple(weight.shape)}, "
                f"the architecture wants {tuple(conv.weight.shape)}"
            )
        conv.weight.data.copy_(weight)
        bias = weights.get(node.input[2]) if len(node.input) > 2 else None
        value = (
            torch.from_numpy(numpy_helper.to_array(bias).astype(np.float32))
            if bias is not None
            else torch.zeros(conv.out_channels)
        )
        conv.bias = torch.nn.Parameter(value)
        loaded.add(path)
    if loaded != set(convs):
        raise ModelError(f"{Path(onnx_path).name}: the ONNX lacks weights for {sorted(set(convs) - loaded)[:3]}")
    return fused


class TorchBackend:
    """A torchvision model on CUDA (or the CPU), weights from the ONNX file."""

    output: Output = "scores"  # the CUDA stages take the argmax on the GPU
    streams = 1  # one CUDA stream, its graphs captured for it
    queued = 0

    def __init__(
        self,
        model: ModelHandle | str | Path,
        spec: ModelSpec | None = None,
        *,
        precision: str = "fp32",
        device: Device | None = None,
        channels_last: bool = True,
        cuda_graphs: bool = False,
        threads: int | None = None,
        compile: bool | str = False,
    ):
        from streamseg.models.export import build_fcn
        from streamseg.models.out_only import out_only
        from streamseg.models.torch_compat import import_torch

        torch = import_torch()
        handle = model_file(model, spec)
        spec = handle.spec
        if precision not in ("fp32", "fp16"):
            raise ConfigError(
                f"precision: the torch backend runs fp32 or fp16, not {precision} "
                "(int8: use --backend tensorrt or onnxruntime with a Q/DQ model)"
            )
        self._torch = torch
        self.precision = precision
        self.device: Device = device or ("cuda" if torch.cuda.is_available() else "cpu")
        if self.device == "cpu" and threads:
            torch.set_num_threads(threads)
        arch = architecture_for(spec)
        # build_fcn builds any torchvision segmentation builder by name, randomly initialized
        module = load_onnx_weights(out_only(build_fcn(arch, None, num_classes=spec.num_classes)), handle)
        self.dtype = torch.float16 if precision == "fp16" else torch.float32
        self.input_dtype: InputDtype = "float16" if precision == "fp16" else "float32"  # what preprocessing writes
        self.memory_format = torch.channels_last if channels_last else torch.contiguous_format
        self.model = module.eval().to(self.device, self.dtype, memory_format=self.memory_format)
        self.compiled = bool(compile)
        if compile:  # True: inductor's default mode; a string names the mode, e.g. "max-autotune-no-cudagraphs"
            self.model = _compiled(torch, self.model, compile if isinstance(compile, str) else None)
        self.spec = spec
        self.fixed_input_size: tuple[int, int] | None = None
        self.max_batch: int | None = None
        self.cuda_graphs = cuda_graphs and self.device == "cuda"
        self._graphs: dict[tuple[int, ...], tuple] = {}
        self.stream = torch.cuda.Stream() if self.device == "cuda" else None
        traits = f"{precision}{', channels_last' * channels_last}{', compiled' * self.compiled}"
        self.name = f"torch {torch.__version__.split('+')[0]} ({self.device}, {traits})"

    def run(self, tensor):
        """The model's scores: a device tensor for tensor input, float32 numpy for numpy input."""
        torch = self._torch
        on_host = isinstance(tensor, np.ndarray)
        x = torch.from_numpy(tensor) if on_host else tensor
        with torch.inference_mode(), _on_stream(torch, self.stream):
            x = x.to(self.device, self.dtype, non_blocking=True).contiguous(memory_format=self.memory_format)
            out = self._replay(x) if self.cuda_graphs else self._forward(x)
        if self.stream is not None:
            self.stream.synchronize()  # the next stage runs in another thread, on its own stream
        return out.float().cpu().numpy() if on_host else out

    def prepare(self, input_shape: tuple[int, ...]) -> None:
        """Nothing to build ahead: a CUDA graph is captured at the first batch of each shape."""

    def _forward(self, x):
        if not self.compiled:
            return self.model(x)
        try:  # inductor compiles on the first call of each shape: its failures surface here
            return self.model(x)
        except Exception as err:  # noqa: BLE001 - dynamo/inductor raise many kinds
            first = str(err).strip().splitlines()[0] if str(err).strip() else ""
            raise BackendError(
                f"torch.compile failed on input {tuple(x.shape)} ({type(err).__name__}: {first}); run without --compile"
            ) from None

    def _replay(self, x):
        """Fixed shapes replay a captured CUDA graph; a new shape is warmed up and captured once."""
        torch = self._torch
        shape = tuple(x.shape)
        entry = self._graphs.get(shape)
        if entry is None:
            stream = self.stream
            if stream is None:  # cuda_graphs is only set on CUDA, where the stream exists
                raise BackendError("torch: CUDA graphs need a CUDA device")
            static_in = x.clone()
            for _ in range(2):  # warm-up on the side stream, as CUDA graph capture requires (and compiles)
                self._forward(static_in)
            stream.synchronize()
            graph = torch.cuda.CUDAGraph()
            with torch.cuda.graph(graph, stream=stream):
                static_out = self.model(static_in)
            entry = self._graphs[shape] = (graph, static_in, static_out)
            log.info("torch: captured a CUDA graph for input %s", shape)
        graph, static_in, static_out = entry
        static_in.copy_(x)
        graph.replay()
        return static_out.clone()

    def close(self) -> None:
        self._graphs.clear()
        self.model = None


def _compiled(torch, model, mode: str | None):
    """``model`` through inductor; compilation itself happens lazily, on the first call of each shape."""
    try:
        return torch.compile(model, mode=mode, dynamic=False)
    except Exception as err:  # noqa: BLE001 - any torch.compile set-up failure means: not here
        raise BackendError(
            f"torch.compile failed to set up ({type(err).__name__}: {err}); run without --compile"
        ) from None


def _on_stream(torch, stream):
    return torch.cuda.stream(stream) if stream is not None else contextlib.nullcontext()
