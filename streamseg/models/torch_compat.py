"""Importing torch and torchvision for export and training, with a clear error when absent."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path

from streamseg.errors import MissingExtraError

_LIBS: list = []  # op schemas live as long as their library object


def import_torch():
    try:
        import torch
    except ImportError:
        raise MissingExtraError("this command", "export") from None
    return torch


def import_torchvision():
    """torchvision, even beside a CPU-only torch.

    The torchvision wheel that pairs with torch 2.13 is a CUDA build whose
    native ops fail to load next to the CPU torch wheel; its import then dies
    registering fake kernels for ``nms``/``qnms``. Segmentation models need
    neither op, so when the native library won't load we define the two
    schemas first and the import succeeds.
    """
    torch = import_torch()
    if "torchvision" in sys.modules:
        return sys.modules["torchvision"]
    spec = importlib.util.find_spec("torchvision")
    if spec is None or not spec.submodule_search_locations:
        raise MissingExtraError("this command", "export")
    native = sorted(Path(spec.submodule_search_locations[0]).glob("_C*.so")) + sorted(
        Path(spec.submodule_search_locations[0]).glob("_C*.pyd")
    )
    try:
        if not native:
            raise OSError("no native library")
        torch.ops.load_library(str(native[0]))
    except (OSError, RuntimeError):
        lib = torch.library.Library("torchvision", "DEF")
        for op in ("nms", "qnms"):
            lib.define(f"{op}(Tensor dets, Tensor scores, float iou_threshold) -> Tensor")
        _LIBS.append(lib)
    import torchvision

    return torchvision
