"""Joining a Ray cluster with this ``streamseg`` package shipped to its nodes: ``batch --ray`` and ``serve --ray``.

The driver's package goes with the job (``runtime_env`` ``py_modules``), so every node runs the driver's exact
code; its dependencies (PyAV, ONNX Runtime…) must be installed on the nodes.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

import streamseg
from streamseg.errors import ConfigError, MissingExtraError


def import_ray() -> Any:
    """The ``ray`` module, or the extra to install."""
    try:
        import ray
    except ImportError:
        raise MissingExtraError("--ray", "ray") from None
    return ray


def join(address: str, namespace: str | None = None) -> Any:
    """``ray.init`` at ``address`` ("auto": RAY_ADDRESS, else the local ``ray start`` one); the ``ray`` module."""
    ray = import_ray()
    package = str(Path(streamseg.__file__).parent)
    try:
        ray.init(
            address=address,
            namespace=namespace,
            runtime_env={"py_modules": [package]},
            logging_level=logging.WARNING,
            log_to_driver=False,
            configure_logging=False,
        )
    except ConnectionError as err:
        raise no_cluster(address, first_line(err)) from None
    return ray


def no_cluster(address: str, why: str) -> ConfigError:
    return ConfigError(
        f"--ray {address}: no Ray cluster there ({why}); start one with `ray start --head`, or give its address"
    )


def first_line(err: BaseException) -> str:
    """An exception in one line (Ray's carry whole remote tracebacks)."""
    text = str(err).strip()
    return text.splitlines()[0] if text else type(err).__name__
