"""Inference backends behind one small interface, chosen by name."""

from __future__ import annotations

import logging
from pathlib import Path

from streamseg.backends.base import Backend
from streamseg.errors import ConfigError, ModelError
from streamseg.models.spec import ModelSpec

log = logging.getLogger(__name__)

BACKENDS = ("auto", "onnxruntime")

__all__ = ["BACKENDS", "Backend", "create_backend"]


def create_backend(name: str, model_path: str | Path, spec: ModelSpec, *, threads: int | None = None) -> Backend:
    """Load ``model_path`` on the named backend; ``auto`` picks the fastest present."""
    if name not in BACKENDS:
        raise ConfigError(f"backend: unknown backend {name!r} (choose from {', '.join(BACKENDS)})")
    from streamseg.backends.onnxruntime import OnnxRuntimeBackend

    backend = OnnxRuntimeBackend(model_path, spec, threads=threads)
    if name == "auto":
        log.info("backend auto: chose %s", backend.name)
    check_fixed_size(spec, backend.fixed_input_size, Path(model_path).name)
    return backend


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
