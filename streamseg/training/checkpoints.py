"""Checkpoints as plain state dicts, and the export of a trained model to a ready-to-run ONNX.

``last.pt`` holds the model, optimizer and grad-scaler state dicts plus
counters and a ``meta`` dict of plain values (model name, classes, palette,
sizes); ``best.pt`` holds the model state dict alone. Both load with
``torch.load(..., weights_only=True)``: tensors, numbers, strings, lists and
dicts only, so no pickled code runs.
"""

from __future__ import annotations

import os
from pathlib import Path

from streamseg.errors import ConfigError, ModelError
from streamseg.models.spec import ModelSpec, Normalize, Resize
from streamseg.models.torch_compat import import_torch
from streamseg.training.data import MEAN, STD

LAST = "last.pt"
BEST = "best.pt"
ONNX = "model.onnx"
BACKGROUND_NAMES = ("background", "__background__", "_background_", "bg")


def save(path: Path, state: dict) -> None:
    """Write atomically, so an interrupted save never leaves a torn checkpoint."""
    torch = import_torch()
    partial = path.with_name(path.name + ".partial")
    torch.save(state, partial)
    os.replace(partial, path)


def load(path: str | Path) -> dict:
    torch = import_torch()
    try:
        return torch.load(str(path), map_location="cpu", weights_only=True)
    except FileNotFoundError:
        raise ConfigError(f"checkpoint not found: {path}") from None
    except Exception as err:  # noqa: BLE001 - torch raises UnpicklingError, RuntimeError, EOFError, ...
        raise ModelError(f"{path} is not a readable state-dict checkpoint: {str(err).splitlines()[0]}") from None


def load_resume(path: str | Path, *, model: str, num_classes: int) -> dict:
    """A ``last.pt`` for --resume, checked against the model about to be trained."""
    state = load(path)
    if not isinstance(state, dict) or not {"model", "optimizer", "epoch", "meta"} <= state.keys():
        raise ModelError(f"{path} is not a training checkpoint (use the {LAST} written by `streamseg train`)")
    meta = state["meta"]
    if meta.get("model") != model or meta.get("num_classes") != num_classes:
        raise ConfigError(
            f"{path} is a {meta.get('model')} with {meta.get('num_classes')} classes; "
            f"this run trains {model} with {num_classes}"
        )
    return state


def load_weights(path: str | Path) -> dict:
    """The model state dict of a ``best.pt`` or ``last.pt``."""
    state = load(path)
    if isinstance(state, dict) and "model" in state and isinstance(state["model"], dict):
        state = state["model"]
    if not isinstance(state, dict) or not state:
        raise ModelError(f"{path} holds no model state dict")
    return state


def model_spec(
    name: str, classes: tuple[str, ...], palette: tuple[tuple[int, int, int], ...], base_size: int
) -> ModelSpec:
    """The spec ``streamseg run`` needs: ImageNet normalization, short side = training base size."""
    background = 0 if classes[0].lower() in BACKGROUND_NAMES else None
    return ModelSpec(
        name=name,
        input_name="input",
        output_name="out",
        normalize=Normalize(range=1, mean=MEAN, std=STD),
        resize=Resize(mode="short_side", size=base_size),
        classes=classes,
        palette=palette,
        background=background,
    )


def export_onnx(model, output: Path, spec: ModelSpec) -> Path:
    """The model (eval mode, on the CPU) as ONNX with dynamic H/W and ``spec`` embedded."""
    from streamseg.models.export import embed_spec, export_torch_module

    size = spec.resize.short_side
    export_torch_module(model.cpu().eval(), output, sample_size=(size, size))
    embed_spec(output, spec)
    return output
