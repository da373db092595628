"""What ``run`` says when no model is given: a cached zoo model to pass, or the one command that makes one."""

from __future__ import annotations

import importlib.util

from streamseg.errors import ConfigError

FIRST_MODEL = "lraspp_mobilenet_v3_large"  # the zoo's fastest on a CPU (2.1 GFLOPs at 520x520)


def make_model_command() -> tuple[str, str]:
    """The one command that makes a model on this install, and the ``-m`` value that then names it."""
    if importlib.util.find_spec("torch") and importlib.util.find_spec("torchvision"):  # the export extra
        return f"streamseg models export {FIRST_MODEL} --weights pretrained -o model.onnx", "model.onnx"
    return "streamseg models fetch fcn_resnet50", "fcn_resnet50"  # the core install: a published ONNX file


def cached_models() -> list[str]:
    """Zoo files in the cache, as ``-m`` takes them (``fcn_resnet50``, ``fcn_resnet50:int8``)."""
    from streamseg.models import ZOO
    from streamseg.models.fetch import cached_path

    return [
        name if variant == "fp32" else f"{name}:{variant}"
        for name, entry in ZOO.items()
        for variant, source in entry.files.items()
        if cached_path(source).exists()
    ]


def no_model_error() -> ConfigError:
    cached = cached_models()
    if cached:
        return ConfigError(f"no model given: pass -m NAME or -m PATH.onnx (cached: {', '.join(cached)})")
    command, name = make_model_command()
    return ConfigError(f"no model given, and none cached: make one with `{command}`, then pass -m {name}")
