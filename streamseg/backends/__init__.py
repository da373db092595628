"""Inference backends behind one small interface, chosen by name.

``auto`` picks TensorRT, else torch on CUDA, else ONNX Runtime on the CPU,
and logs which one it chose and why it passed over the others. Backends that
run on a GPU say ``device == "cuda"``; the pipeline then runs its
pre- and postprocessing there too (``streamseg.cuda_stages``).
"""

from __future__ import annotations

import ctypes.util
import importlib.util
import logging
import os
from pathlib import Path

from streamseg.backends.base import Backend
from streamseg.errors import BackendError, ConfigError, MissingExtraError, ModelError
from streamseg.models.spec import ModelSpec

log = logging.getLogger(__name__)

BACKENDS = ("auto", "tensorrt", "torch", "onnxruntime")
PRECISIONS = ("fp32", "fp16", "int8")

__all__ = ["BACKENDS", "PRECISIONS", "Backend", "create_backend", "cuda_present"]


def create_backend(name: str, model_path: str | Path, spec: ModelSpec, *, threads: int | None = None,
                   precision: str | None = None, cuda_graphs: bool = False, engine_dir: str | Path | None = None) -> Backend:
    """Load ``model_path`` on the named backend; ``auto`` picks the fastest present.

    ``precision`` None runs the model file as it is; fp16 and int8 ask GPU
    backends for that precision (see ``onnx_precision``).
    """
    if name not in BACKENDS:
        raise ConfigError(f"backend: unknown backend {name!r} (choose from {', '.join(BACKENDS)})")
    if precision is not None and precision not in PRECISIONS:
        raise ConfigError(f"precision: must be one of {', '.join(PRECISIONS)}, got {precision!r}")
    where = Path(model_path).name
    if name == "auto":
        backend = _auto(model_path, spec, threads=threads, precision=precision, cuda_graphs=cuda_graphs,
                        engine_dir=engine_dir)
    elif name == "tensorrt":
        backend = _tensorrt(model_path, spec, precision, cuda_graphs, engine_dir)
    elif name == "torch":
        backend = _torch(model_path, spec, precision, cuda_graphs, threads)
    else:
        backend = _onnxruntime(model_path, spec, threads, precision, strict=True)
    check_fixed_size(spec, backend.fixed_input_size, where)
    return backend


def cuda_present() -> bool:
    """Whether a CUDA GPU is usable; looks for the driver before paying for ``import torch``."""
    if not (os.path.exists("/proc/driver/nvidia/version") or ctypes.util.find_library("cuda")):
        return False
    if importlib.util.find_spec("torch") is None:
        return False
    import torch

    return torch.cuda.is_available()


def _auto(model_path, spec, *, threads, precision, cuda_graphs, engine_dir) -> Backend:
    passed: list[str] = []
    if cuda_present():
        try:
            backend = _tensorrt(model_path, spec, precision, cuda_graphs, engine_dir)
            log.info("backend auto: chose %s", backend.name)
            return backend
        except (BackendError, MissingExtraError, ModelError) as err:
            passed.append(f"tensorrt ({err})")
        if precision != "int8":
            try:
                backend = _torch(model_path, spec, precision, cuda_graphs, threads)
                log.info("backend auto: chose %s; passed over %s", backend.name, "; ".join(passed))
                return backend
            except (BackendError, MissingExtraError, ModelError) as err:
                passed.append(f"torch ({err})")
        else:
            passed.append("torch (runs fp32/fp16 only)")
    else:
        passed.append("tensorrt and torch (no CUDA GPU)")
    backend = _onnxruntime(model_path, spec, threads, precision, strict=False)
    log.info("backend auto: chose %s; passed over %s", backend.name, "; ".join(passed))
    return backend


def _tensorrt(model_path, spec, precision, cuda_graphs, engine_dir) -> Backend:
    if not cuda_present():
        raise BackendError("tensorrt needs a CUDA GPU and a CUDA build of torch; none is usable here")
    from streamseg.backends.tensorrt import TensorRTBackend

    return TensorRTBackend(model_path, spec, precision=precision, engine_dir=engine_dir, cuda_graphs=cuda_graphs)


def _torch(model_path, spec, precision, cuda_graphs, threads) -> Backend:
    from streamseg.backends.torch_backend import TorchBackend, architecture_for

    architecture_for(spec)  # refuse early, before importing torchvision
    return TorchBackend(model_path, spec, precision=precision or "fp32", cuda_graphs=cuda_graphs, threads=threads)


def _onnxruntime(model_path, spec, threads, precision, *, strict: bool) -> Backend:
    """ONNX Runtime runs the model file as it is: its precision is the file's own."""
    from streamseg.backends.onnxruntime import OnnxRuntimeBackend

    if precision is None:
        return OnnxRuntimeBackend(model_path, spec, threads=threads)
    import onnx

    from streamseg.backends.onnx_precision import onnx_precision

    found = "int8" if onnx_precision(onnx.load(str(model_path), load_external_data=False)).startswith("int8") \
        else None
    found = found or ("fp16" if spec.dtype == "float16" else "fp32")
    if found != precision:
        message = (f"onnxruntime runs {Path(model_path).name} as it is ({found}); for --precision {precision} "
                   f"pass a {precision} model (NAME:int8, `streamseg quantize`) or use --backend tensorrt/torch")
        if strict:
            raise ConfigError(message)
        log.warning("%s: running %s", message, found)
    return OnnxRuntimeBackend(model_path, spec, threads=threads)


def check_fixed_size(spec: ModelSpec, fixed: tuple[int, int] | None, where: str) -> None:
    """A model with a static input size needs a resize rule that produces it."""
    if fixed is None:
        return
    rule = spec.resize
    if rule.mode in ("letterbox", "stretch") and tuple(rule.size) == fixed and fixed[0] % rule.pad_multiple == 0 \
            and fixed[1] % rule.pad_multiple == 0:
        return
    raise ModelError(
        f"{where}: input is fixed at {fixed[0]}x{fixed[1]} but the spec's resize is "
        f"{rule.mode} {rule.size}; use resize: {{mode: letterbox, size: [{fixed[0]}, {fixed[1]}]}}"
    )
