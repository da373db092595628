"""INT8 from the user's own footage: sample frames, calibrate, write Q/DQ ONNX and a manifest."""

from __future__ import annotations

import json
import logging
import platform
import time
from pathlib import Path

from streamseg.errors import ConfigError
from streamseg.models.spec import ModelSpec

log = logging.getLogger(__name__)

__all__ = ["manifest_path", "quantize"]


def manifest_path(output: str | Path) -> Path:
    """``OUT.onnx`` -> ``OUT.manifest.json``, beside it."""
    output = Path(output)
    return output.with_name(output.stem + ".manifest.json")


def quantize(
    model: str | Path,
    calib: str | Path,
    output: str | Path,
    *,
    frames: int = 64,
    input_size: int | None = None,
    method: str = "minmax",
    spec: ModelSpec | None = None,
) -> dict:
    """Quantize ``model`` on ``frames`` frames of ``calib`` into ``output``; returns the manifest it wrote."""
    import onnx
    import onnxruntime

    from streamseg import __version__
    from streamseg.models import open_model
    from streamseg.models.export import embed_spec
    from streamseg.models.fetch import sha256_of
    from streamseg.quantize.calibration import media_files, preprocess, sample_frames
    from streamseg.quantize.static import quantize_int8

    if frames < 1:
        raise ConfigError(f"frames: must be at least 1, got {frames}")
    output = Path(output)
    if output.suffix != ".onnx":
        raise ConfigError(f"output must be an .onnx file, got {output}")
    if not output.parent.is_dir():
        raise ConfigError(f"output folder does not exist: {output.parent}")
    handle = open_model(model, spec)
    model_path, spec = handle.path, handle.spec
    if Path(model_path).resolve() == output.resolve():
        raise ConfigError("output would overwrite the model it quantizes")
    spec = spec.with_short_side(input_size)
    files = media_files(calib)
    started = time.perf_counter()
    picked = sample_frames(files, frames, phase=0.25)
    tensors = preprocess(picked, spec)
    log.info("calibrating on %d frames from %d file(s)", len(tensors), len(files))
    settings = quantize_int8(model_path, tensors, output, input_name=spec.input_name, method=method)
    embed_spec(output, spec)
    by_file: dict[Path, list[int]] = {}
    for p in picked:
        by_file.setdefault(p.path, []).append(p.index)
    manifest = {
        "model": {"source": str(model_path), "sha256": handle.sha256, "name": spec.name},
        "output": {"path": str(output), "sha256": sha256_of(output)},
        "calibration": {
            "sources": [{"path": str(f), "sha256": sha256_of(f), "frames": by_file.get(f, [])} for f in files],
            "frame_count": len(tensors),
            "input_shapes": sorted({tuple(t.shape) for t in tensors}),
            "preprocess": "streamseg.preprocess.CpuPreprocessor (the pipeline's)",
            "resize": spec.resize.model_dump(),
        },
        "method": settings,
        "versions": {
            "streamseg": __version__,
            "onnxruntime": onnxruntime.__version__,
            "onnx": onnx.__version__,
            "python": platform.python_version(),
        },
        "seconds": round(time.perf_counter() - started, 1),
        "created": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
    }
    manifest_path(output).write_text(json.dumps(manifest, indent=2) + "\n")
    return manifest
