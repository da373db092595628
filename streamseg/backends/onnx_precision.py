"""Precision lives in the ONNX: FP16 converts the FP32 graph, INT8 must already carry Q/DQ nodes.

TensorRT builds strongly typed networks here (TensorRT 11 knows no other
kind), so every tensor's type comes from the ONNX and no builder flag picks a
precision.

FP16 I/O choice: the converted model takes and returns ``float16`` tensors
(``keep_io_types=False``). The GPU preprocessor writes its input straight in
FP16 (half the bytes), the argmax reads FP16 scores, and no Cast layers sit at
the edges. The spec embedded in the FP16 file says ``dtype: float16``, so the
CPU preprocessor produces the same dtype when ONNX Runtime runs the file.
The converter is ONNX Runtime's copy of onnxconverter-common's ``float16``
(shipped in the onnxruntime wheel), so it adds no dependency.
"""

from __future__ import annotations

import logging
import os
import tempfile
from pathlib import Path

from streamseg.errors import ConfigError, ModelError
from streamseg.models.cache import private_dir
from streamseg.models.handle import ModelHandle, model_file
from streamseg.models.onnx_graph import onnx_precision
from streamseg.models.spec import ModelSpec

__all__ = ["PRECISIONS", "convert_to_fp16", "model_for_precision", "onnx_precision"]

log = logging.getLogger(__name__)

PRECISIONS = ("fp32", "fp16", "int8")


def model_for_precision(
    model: ModelHandle | str | Path, spec: ModelSpec, precision: str | None, folder: str | Path
) -> tuple[Path, ModelSpec, str]:
    """The ONNX file, its spec and precision for ``precision`` (None: the file's own).

    An FP16 copy of an FP32 file is made in ``folder`` once.
    """
    if precision is not None and precision not in PRECISIONS:
        raise ConfigError(f"precision: must be one of {', '.join(PRECISIONS)}, got {precision!r}")
    handle = model_file(model, spec)
    onnx_path, found, name = handle.path, handle.graph_precision, handle.name
    if found == "int8-qoperator":
        raise ModelError(
            f"{name} is quantized in QOperator form (QLinearConv…), which TensorRT cannot parse: "
            "quantize to Q/DQ with `streamseg quantize`"
        )
    precision = precision or found
    if precision == "int8":
        if found != "int8":
            raise ModelError(
                f"--precision int8 needs a Q/DQ INT8 ONNX, but {name} is {found}: "
                f"make one with `streamseg quantize --model {name} --calib VIDEO --output OUT.onnx`"
            )
        return onnx_path, spec, precision
    if found == precision:
        return onnx_path, _spec_dtype(spec, "float16" if precision == "fp16" else "float32"), precision
    if precision == "fp32" or found != "fp32":
        raise ModelError(
            f"--precision {precision} asked, but {name} is {found}: pass the matching model (or --precision {found})"
        )
    return convert_to_fp16(handle, spec, folder), _spec_dtype(spec, "float16"), precision


def convert_to_fp16(model: ModelHandle | Path, spec: ModelSpec, folder: str | Path) -> Path:
    """An FP16 copy of an FP32 ONNX, named by the source's sha256 so it is made once."""
    import onnx
    from onnxruntime.transformers.float16 import convert_float_to_float16

    from streamseg.models import SPEC_METADATA_KEY

    handle = model_file(model, spec)
    onnx_path = handle.path
    folder = private_dir(folder)
    # the full sha256 of the source: a changed FP32 file never finds the old copy
    target = folder / f"{onnx_path.stem}-fp16-{handle.sha256}.onnx"
    if target.is_file():
        return target
    log.info("converting %s to FP16 (float16 inputs and outputs)", onnx_path.name)
    # keep_io_types=False: float16 I/O, see the module docstring; a copy: the handle's graph stays as it is
    half = convert_float_to_float16(handle.graph_copy(), keep_io_types=False, disable_shape_infer=False)
    kept = [p for p in half.metadata_props if p.key != SPEC_METADATA_KEY]
    del half.metadata_props[:]
    half.metadata_props.extend(kept)
    half.metadata_props.add(key=SPEC_METADATA_KEY, value=_spec_dtype(spec, "float16").to_json())
    # a unique temporary name in the same folder: two conversions at once never write into one file
    fd, name = tempfile.mkstemp(prefix=target.name + ".", suffix=".part", dir=folder)
    os.close(fd)
    try:
        onnx.save(half, name)
        os.replace(name, target)
    except BaseException:
        Path(name).unlink(missing_ok=True)
        raise
    return target


def _spec_dtype(spec: ModelSpec, dtype: str) -> ModelSpec:
    return spec if spec.dtype == dtype else spec.model_copy(update={"dtype": dtype})
