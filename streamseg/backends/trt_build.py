"""Build TensorRT engines from ONNX: strongly typed, one optimization profile, a workspace limit.

Works with ``tensorrt`` (10.x, 11.x) and ``tensorrt_rtx``, which share this
API. The network is strongly typed, so the precision is the ONNX's own (see
``onnx_precision``): no FP16/INT8 builder flags and no calibrator, which
TensorRT 11 removed.
"""

from __future__ import annotations

import logging
import types
from dataclasses import dataclass
from pathlib import Path

from streamseg.backends.engine_cache import EngineCache, EngineKey, Profile
from streamseg.backends.onnx_precision import model_for_precision
from streamseg.errors import BackendError, ConfigError, MissingExtraError
from streamseg.models.fetch import sha256_of
from streamseg.models.handle import ModelHandle, model_file
from streamseg.models.spec import ModelSpec

log = logging.getLogger(__name__)

TRT_MODULES = ("tensorrt", "tensorrt_rtx")
DEFAULT_WORKSPACE = 4 << 30  # bytes of scratch memory TensorRT tactics may use


def import_tensorrt() -> types.ModuleType:
    """``tensorrt``, else ``tensorrt_rtx``; neither: one line saying what to install."""
    import importlib

    for name in TRT_MODULES:
        try:
            return importlib.import_module(name)
        except ImportError:
            continue
    raise MissingExtraError(
        "TensorRT engines",
        "tensorrt",
        package="tensorrt (NVIDIA TensorRT 10+; or tensorrt-rtx) and a CUDA build of torch",
    )


def gpu_identity() -> tuple[str, str]:
    """(name, compute capability) of the current CUDA device, as the cache key records them."""
    import torch

    if not torch.cuda.is_available():
        raise BackendError("TensorRT needs a CUDA GPU, and torch sees none (torch.cuda.is_available() is False)")
    index = torch.cuda.current_device()
    major, minor = torch.cuda.get_device_capability(index)
    return torch.cuda.get_device_name(index), f"{major}.{minor}"


def engine_key(trt: types.ModuleType, onnx_path: str | Path, precision: str, profile: Profile) -> EngineKey:
    name, capability = gpu_identity()
    return EngineKey(
        onnx_sha256=sha256_of(onnx_path),
        precision=precision,
        profile=profile,
        trt_module=trt.__name__,
        trt_version=trt.__version__,
        gpu_name=name,
        compute_capability=capability,
    )


def parse_shape(text: str, *, batch: int | None = None) -> tuple[int, int, int, int]:
    """``HxW``, ``CxHxW`` or ``NxCxHxW`` to (N, C, H, W); C defaults to 3 and N to ``batch`` (or 1)."""
    try:
        dims = tuple(int(p) for p in text.lower().replace(",", "x").split("x"))
    except ValueError:
        raise ConfigError(f"shape {text!r}: expected HxW, CxHxW or NxCxHxW") from None
    if len(dims) == 2:
        dims = (3, *dims)
    if len(dims) == 3:
        dims = (batch or 1, *dims)
    if len(dims) != 4 or min(dims) < 1:
        raise ConfigError(f"shape {text!r}: expected HxW, CxHxW or NxCxHxW with positive sizes")
    return dims


def default_profile(spec: ModelSpec, *, batch: int = 1) -> Profile:
    """Shapes the spec's resize rule produces: fixed sizes exactly, short_side from 0.5x to 1080p-wide frames."""
    rule = spec.resize
    if rule.mode in ("letterbox", "stretch"):
        h, w = rule.fixed_size
        return Profile((1, 3, h, w), (batch, 3, h, w), (batch, 3, h, w))
    if rule.mode == "short_side":
        s, m = rule.short_side, rule.pad_multiple
        # portrait or landscape up to 21:9 at the target short side; smaller inputs down to s/2
        long_side = -(-int(s * 21 / 9) // m) * m
        return Profile(
            (1, 3, max(32, s // 2), max(32, s // 2)),
            (batch, 3, s, -(-s * 16 // 9 // m) * m),
            (batch, 3, long_side, long_side),
        )
    return Profile((1, 3, 64, 64), (batch, 3, 720, 1280), (batch, 3, 1088, 1920))


@dataclass(frozen=True)
class BuiltEngine:
    path: Path
    key: EngineKey
    built: bool  # False when the cache already held it


def ensure_engine(
    model: ModelHandle | str | Path,
    spec: ModelSpec,
    *,
    precision: str | None,
    profile: Profile,
    cache: EngineCache,
    rebuild: str = "auto",
    workspace: int = DEFAULT_WORKSPACE,
) -> tuple[BuiltEngine, ModelSpec]:
    """The cached engine for this ONNX, precision, profile, TensorRT and GPU; built when missing.

    ``rebuild``: ``auto`` rebuilds a missing, stale or corrupt engine;
    ``never`` refuses with an error instead; ``always`` builds anew.
    """
    if rebuild not in ("auto", "never", "always"):
        raise ConfigError(f"rebuild: must be auto, never or always, got {rebuild!r}")
    trt = import_tensorrt()
    handle = model_file(model, spec)
    onnx_path = handle.path
    typed_path, typed_spec, precision = model_for_precision(handle, spec, precision, cache.folder / "onnx")
    key = engine_key(trt, typed_path, precision, profile)
    stem = onnx_path.stem
    found = cache.lookup(key, stem)
    if found.ok and rebuild != "always":
        return BuiltEngine(found.path, key, built=False), typed_spec
    if not found.ok and found.state != "missing":
        if rebuild == "never":
            raise BackendError(
                f"engine {found.path.name} is {found.state} ({found.reason}); rebuild it with `streamseg build-engine`"
            )
        log.warning("engine %s is %s (%s): rebuilding", found.path.name, found.state, found.reason)
    elif rebuild == "never":
        raise BackendError(
            f"no {precision} engine for {onnx_path.name} in {cache.folder} for this GPU and "
            f"TensorRT: build it with "
            f"`streamseg build-engine --model {onnx_path} --precision {precision}`"
        )
    log.info(
        "building a %s TensorRT engine for %s, profile %s (minutes)", precision, onnx_path.name, profile.describe()
    )
    engine = build_serialized(trt, typed_path, typed_spec.input_name, profile, workspace=workspace)
    return BuiltEngine(cache.store(key, stem, engine), key, built=True), typed_spec


def build_serialized(
    trt: types.ModuleType, onnx_path: Path, input_name: str, profile: Profile, *, workspace: int = DEFAULT_WORKSPACE
) -> bytes:
    """Parse the ONNX into a strongly typed network and build it; parser errors are reported one by one."""
    logger = trt.Logger(trt.Logger.WARNING)
    builder = trt.Builder(logger)
    strongly_typed = getattr(trt.NetworkDefinitionCreationFlag, "STRONGLY_TYPED", None)
    network = builder.create_network(0 if strongly_typed is None else 1 << int(strongly_typed))
    parser = trt.OnnxParser(network, logger)
    if not parser.parse_from_file(str(onnx_path)):  # from the file: external weights resolve beside it
        errors = [_parser_error(parser.get_error(i)) for i in range(parser.num_errors)]
        raise BackendError(f"TensorRT cannot parse {onnx_path.name}: " + "; ".join(errors or ["unknown error"]))
    inputs = [network.get_input(i) for i in range(network.num_inputs)]
    if input_name not in {t.name for t in inputs}:
        raise BackendError(f"{onnx_path.name}: no input {input_name!r} (inputs: {', '.join(t.name for t in inputs)})")
    config = builder.create_builder_config()
    config.set_memory_pool_limit(trt.MemoryPoolType.WORKSPACE, workspace)
    optimization = builder.create_optimization_profile()
    optimization.set_shape(input_name, profile.min, profile.opt, profile.max)
    config.add_optimization_profile(optimization)
    serialized = builder.build_serialized_network(network, config)
    if serialized is None:
        raise BackendError(
            f"TensorRT could not build an engine for {onnx_path.name} "
            f"(profile {profile.describe()}); rerun with -vv for TensorRT's log"
        )
    return bytes(memoryview(serialized))


def _parser_error(error) -> str:
    """One parser error as ``node N (Op): message``."""
    where = ""
    try:
        node, op = error.node(), error.node_operator()
        if node >= 0:
            where = f"node {node} ({op}): " if op else f"node {node}: "
    except AttributeError:  # older bindings lack node_operator()
        pass
    return f"{where}{error.desc()}"
