"""Inference backends behind one small interface, chosen by name.

``auto`` picks TensorRT, else torch on CUDA, else on the CPU: OpenVINO for ``bf16`` (which ONNX
Runtime cannot run) and for INT8 files (its INT8 kernels ran 1.0-2.0x ONNX Runtime's on every CPU
measured, with VNNI/AMX or AVX2 alone; docs/benchmarks.md), else ONNX Runtime; it logs which one it
chose and why it passed over the others, and warns where a CPU without VNNI or AMX runs INT8.
Every backend says where it computes (``device``); backends on a GPU say ``"cuda"``, and the pipeline
then runs its pre- and postprocessing there too (``streamseg.stages``).
"""

from __future__ import annotations

import importlib.util
import logging
from pathlib import Path

from streamseg.backends.base import Backend
from streamseg.choices import BACKENDS, PRECISIONS
from streamseg.devices import cuda_present
from streamseg.errors import BackendError, ConfigError, MissingExtraError, ModelError
from streamseg.isa import this_cpu_isa
from streamseg.models.handle import ModelHandle, model_file
from streamseg.models.spec import ModelSpec

log = logging.getLogger(__name__)

__all__ = ["BACKENDS", "PRECISIONS", "Backend", "create_backend", "file_precision", "plan_auto"]


def create_backend(
    name: str,
    model: ModelHandle | str | Path,
    spec: ModelSpec | None = None,
    *,
    threads: int | None = None,
    precision: str | None = None,
    cuda_graphs: bool = False,
    engine_dir: str | Path | None = None,
    winograd: bool = True,
    compile: bool = False,
    batch: int = 1,
    labels: bool = False,
    streams: int | None = 1,
    pictures: bool = False,
) -> Backend:
    """Load ``model`` (a handle from ``open_model``; or a file and its spec) on the named backend; ``auto``
    picks the fastest present.

    ``precision`` None runs the model file as it is; fp16 and int8 ask GPU
    backends for that precision (see ``onnx_precision``); bf16 is OpenVINO's,
    on CPUs that compute it natively. ``winograd`` lets ONNX Runtime run the big 3x3
    convolutions of an FP32 model as Winograd F(4x4, 3x3) (``streamseg.backends.winograd``).
    ``compile`` runs the torch backend's model through ``torch.compile`` (inductor).
    ``batch`` is the most frames the pipeline will hand one run (TensorRT builds its profile for it).
    ``labels`` asks the CPU engines for uint8 labels from an ArgMax in the graph (argmax models, where
    nothing needs the scores); ``backend.output`` says what ``run`` returns. ``pictures`` lets an engine
    that can (OpenVINO) take uint8 RGB pictures and normalize them in its graph; ``backend.input_dtype``
    says what ``run`` takes (``base.input_spec``).
    ``streams``: frames OpenVINO may work on at once (None: its throughput choice), with one call more
    queued where there are several (``backend.queued``); the other engines run one at a time
    (``backend.streams``).
    """
    if name not in BACKENDS:
        raise ConfigError(f"backend: unknown backend {name!r} (choose from {', '.join(BACKENDS)})")
    if precision is not None and precision not in PRECISIONS:
        raise ConfigError(f"precision: must be one of {', '.join(PRECISIONS)}, got {precision!r}")
    if precision == "bf16" and name in ("tensorrt", "torch"):
        raise ConfigError(f"precision: bf16 runs on --backend openvino (CPU), not {name}; GPUs take fp16")
    handle = model_file(model, spec)
    if name == "auto":
        backend = _auto(
            handle,
            threads=threads,
            precision=precision,
            cuda_graphs=cuda_graphs,
            engine_dir=engine_dir,
            winograd=winograd,
            compile=compile,
            batch=batch,
            labels=labels,
            streams=streams,
            pictures=pictures,
        )
    elif name == "tensorrt":
        backend = _tensorrt(handle, precision, cuda_graphs, engine_dir, batch)
    elif name == "torch":
        backend = _torch(handle, precision, cuda_graphs, threads, compile)
    elif name == "openvino":
        backend = _openvino(handle, threads, precision, labels, streams, pictures)
    else:
        backend = _onnxruntime(handle, threads, precision, strict=True, winograd=winograd, labels=labels)
    check_fixed_size(handle.spec, backend.fixed_input_size, handle.name)
    warn_slow_int8(handle, backend)
    return backend


def plan_auto(
    precision: str | None = None, spec: ModelSpec | None = None, file_precision: str | None = None
) -> tuple[str, list[str]]:
    """Which backend ``auto`` would try first, and why it passes over the others, without loading a model.

    Only what can be known up front counts (a CUDA GPU, installed packages, the
    precision, the model's architecture); ``create_backend`` still falls
    through to the next candidate when loading fails (e.g. an engine build).
    """
    order, passed = auto_candidates(precision, spec, file_precision)
    return order[0], passed


def auto_candidates(
    precision: str | None, spec: ModelSpec | None = None, file_precision: str | None = None
) -> tuple[list[str], list[str]]:
    """Backends ``auto`` tries, in order (onnxruntime always last), and the reasons it skips the others.

    ``file_precision`` is what the model file computes in (``ModelHandle.precision``), where known.
    """
    order: list[str] = []
    passed: list[str] = []
    if precision == "bf16":
        passed.append("tensorrt and torch (bf16 is a CPU precision here)")
    elif not cuda_present():
        passed.append("tensorrt and torch (no CUDA GPU)")
    else:
        if any(importlib.util.find_spec(name) for name in ("tensorrt", "tensorrt_rtx")):
            order.append("tensorrt")
        else:
            passed.append('tensorrt (not installed: pip install "streamseg[tensorrt]")')
        reason = _torch_unfit(precision, spec)
        if reason:
            passed.append(f"torch ({reason})")
        else:
            order.append("torch")
    computes = precision or file_precision
    if precision == "int8" and file_precision not in (None, "int8"):
        computes = file_precision  # an FP32 file stays FP32 (onnxruntime says so), whatever the flag
    openvino_why = _openvino_fit(computes, bool(order))
    if openvino_why is not None:
        if importlib.util.find_spec("openvino") is not None:
            order.append("openvino")
            passed.append(f"onnxruntime (openvino first: {openvino_why})")
        else:
            passed.append(f'openvino ({openvino_why}, but not installed: pip install "streamseg[openvino]")')
    elif (
        computes in (None, "fp32") and not order and (native := _bf16_native()) and importlib.util.find_spec("openvino")
    ):
        # the file's precision is the default; say what the user may ask for (docs/benchmarks.md: 1.3-2.7x)
        passed.append(f"openvino (--precision bf16 would compute on this CPU's {native})")
    order.append("onnxruntime")
    return order, passed


def _bf16_native() -> str | None:
    """The ISA that computes bf16 natively on this CPU (AMX, AVX512_BF16), if any."""
    isa = this_cpu_isa() or []
    return next((name for name in ("AMX", "AVX512_BF16") if name in isa), None)


def _openvino_fit(precision: str | None, gpu_first: bool) -> str | None:
    """Why OpenVINO beats ONNX Runtime on this CPU for ``precision``, or None where it does not."""
    if precision == "bf16":
        return "bf16 runs on openvino only"
    if precision != "int8" or gpu_first:
        return None
    fast = _int8_isa(this_cpu_isa() or [])
    if fast:
        return f"int8 on this CPU's {' and '.join(fast)}"
    # AVX2 alone, measured: openvino's int8 1.0-1.6x onnxruntime's on the three zoo models (docs/benchmarks.md)
    return "its int8 kernels beat onnxruntime's without VNNI or AMX too"


def _int8_isa(isa: list[str]) -> list[str]:
    """The ISAs of ``isa`` for int8 dot products (AMX, VNNI); empty on AVX2 alone."""
    return [name for name in ("AMX", "VNNI") if name in isa]


def warn_slow_int8(handle: ModelHandle, backend: Backend) -> None:
    """Warn where an int8 file runs on an x86 CPU without VNNI or AMX: light models ran slower there than in fp32."""
    if backend.device != "cpu":
        return
    isa = this_cpu_isa() or []
    # the ISA first: the file's precision may parse the graph, which most CPUs need not pay for here
    if "AVX2" in isa and not _int8_isa(isa) and handle.precision == "int8":
        log.warning(
            "int8 on a CPU without VNNI or AMX: on AVX2 alone the MobileNetV3 models ran at 0.84-0.89x their fp32 "
            "speed on openvino, fcn_resnet50 at 1.9x (docs/benchmarks.md); compare: streamseg bench -m FILE --json"
        )


def _torch_unfit(precision: str | None, spec: ModelSpec | None) -> str | None:
    if precision == "int8":
        return "runs fp32/fp16 only"
    if importlib.util.find_spec("torchvision") is None:
        return 'needs torchvision: pip install "streamseg[export]"'
    if spec is not None:
        from streamseg.backends.torch_backend import architecture_for

        try:
            architecture_for(spec)
        except BackendError as err:
            return str(err)
    return None


def _auto(
    model: ModelHandle,
    *,
    threads,
    precision,
    cuda_graphs,
    engine_dir,
    winograd,
    compile=False,
    batch=1,
    labels=False,
    streams: int | None = 1,
    pictures: bool = False,
) -> Backend:
    order, passed = auto_candidates(precision, model.spec, model.precision)
    for name in order[:-1]:
        try:
            if name == "tensorrt":
                backend = _tensorrt(model, precision, cuda_graphs, engine_dir, batch)
            elif name == "torch":
                backend = _torch(model, precision, cuda_graphs, threads, compile)
            else:
                backend = _openvino(model, threads, precision, labels, streams, pictures)
        except (BackendError, MissingExtraError, ModelError) as err:
            passed.append(f"{name} ({err})")
            continue
        log.info("backend auto: chose %s%s", backend.name, f"; passed over {'; '.join(passed)}" if passed else "")
        return backend
    backend = _onnxruntime(model, threads, precision, strict=False, winograd=winograd, labels=labels)
    log.info("backend auto: chose %s; passed over %s", backend.name, "; ".join(passed))
    return backend


def _tensorrt(model: ModelHandle, precision, cuda_graphs, engine_dir, batch=1) -> Backend:
    if not cuda_present():
        raise BackendError("tensorrt needs a CUDA GPU and a CUDA build of torch; none is usable here")
    from streamseg.backends.tensorrt import TensorRTBackend
    from streamseg.backends.trt_build import default_profile

    return TensorRTBackend(
        model,
        precision=precision,
        engine_dir=engine_dir,
        cuda_graphs=cuda_graphs,
        profile=default_profile(model.spec, batch=batch),
    )


def _torch(model: ModelHandle, precision, cuda_graphs, threads, compile=False) -> Backend:
    from streamseg.backends.torch_backend import TorchBackend, architecture_for

    architecture_for(model.spec)  # refuse early, before importing torchvision
    return TorchBackend(model, precision=precision or "fp32", cuda_graphs=cuda_graphs, threads=threads, compile=compile)


def _onnxruntime(
    model: ModelHandle, threads, precision, *, strict: bool, winograd: bool = True, labels: bool = False
) -> Backend:
    """ONNX Runtime runs the model file as it is: its precision is the file's own."""
    from streamseg.backends.onnxruntime import OnnxRuntimeBackend

    if precision is not None:
        found = model.precision
        if found != precision:
            others = "openvino" if precision == "bf16" else "tensorrt/torch"
            message = (
                f"onnxruntime runs {model.name} as it is ({found}); for --precision {precision} "
                f"pass a {precision} model (NAME:int8, `streamseg quantize`) or use --backend {others}"
            )
            if strict:
                raise ConfigError(message)
            log.warning("%s: running %s", message, found)
    return OnnxRuntimeBackend(model, threads=threads, winograd=winograd, labels=labels)


def _openvino(
    model: ModelHandle, threads, precision, labels: bool = False, streams: int | None = 1, pictures: bool = False
) -> Backend:
    """OpenVINO computes an FP32 file in fp32 or bf16; INT8 and FP16 come from the file, as on ONNX Runtime."""
    from streamseg.backends.openvino import OpenVinoBackend

    found = model.precision
    if precision not in (None, "bf16", found):
        raise ConfigError(
            f"openvino runs {model.name} as it is ({found}) or in bf16; for --precision "
            f"{precision} pass a {precision} model (NAME:int8, `streamseg quantize`)"
        )
    computes = "bf16" if precision == "bf16" else found
    return OpenVinoBackend(
        model, threads=threads, precision=computes, labels=labels, streams=streams, pictures=pictures
    )


def file_precision(model: ModelHandle | str | Path, spec: ModelSpec | None = None) -> str:
    """The precision an ONNX file computes in as it is: int8 (Q/DQ), fp16 or fp32 (``ModelHandle.precision``)."""
    return model_file(model, spec).precision


def check_fixed_size(spec: ModelSpec, fixed: tuple[int, int] | None, where: str) -> None:
    """A model with a static input size needs a resize rule that produces it."""
    if fixed is None:
        return
    rule = spec.resize
    if (
        rule.mode in ("letterbox", "stretch")
        and rule.fixed_size == fixed
        and fixed[0] % rule.pad_multiple == 0
        and fixed[1] % rule.pad_multiple == 0
    ):
        return
    raise ModelError(
        f"{where}: input is fixed at {fixed[0]}x{fixed[1]} but the spec's resize is "
        f"{rule.mode} {rule.size}; use resize: {{mode: letterbox, size: [{fixed[0]}, {fixed[1]}]}}"
    )
