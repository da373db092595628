"""Choice lists the config model and every command share: defined once, so pydantic and click refuse the same
values with the same list."""

from __future__ import annotations

from typing import Literal, get_args

Backend = Literal["auto", "tensorrt", "torch", "onnxruntime", "openvino"]
Precision = Literal["fp32", "fp16", "bf16", "int8"]

BACKENDS: tuple[str, ...] = get_args(Backend)
PRECISIONS: tuple[str, ...] = get_args(Precision)
