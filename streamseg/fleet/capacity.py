"""How many cameras a node pipeline holds, measured when it starts (or ``--cameras-per-node``).

The engine's time per frame at the cameras' input size, against the frames it must infer each second: a
camera at ``camera_fps`` inferring every ``interval``-th frame costs ``engine_s * camera_fps / interval``
seconds of engine time per second. A node holds as many as fit in ``USABLE`` of a second, the rest left to
decoding, drawing and encoding; at least one, which then drops frames as a lone ``run`` would.
"""

from __future__ import annotations

import statistics
import time
from typing import Any

import numpy as np

from streamseg.backends import create_backend
from streamseg.backends.base import input_spec
from streamseg.config import RunConfig
from streamseg.models import open_model
from streamseg.stages.steps import input_shape

USABLE = 0.8  # share of the engine's time cameras may fill
FRAME = (360, 640)  # the camera frame assumed for the input size: 16:9 (the model's short side decides)
RUNS = 5  # timed inference calls, after one warm-up


def engine_seconds(config: RunConfig, model_path: str | None = None) -> float:
    """Median seconds of one inference call at the cameras' input size, on this node's backend."""
    assert config.model is not None, "a fleet has a model"
    model = open_model(model_path or config.model, config.spec)
    spec = model.spec.with_short_side(config.input_size)
    engine = create_backend(
        config.backend,
        model.with_spec(spec),
        threads=config.threads,
        precision=config.precision,
        winograd=config.winograd,
        compile=config.compile,
        labels=config.labels_from_engine,  # the engine as the node's pipeline builds it
        pictures=config.engine_normalize,
    )
    try:
        takes = input_spec(spec, engine)  # pictures where the engine normalizes them itself
        shape = input_shape(takes, *FRAME)
        tensor: Any = np.zeros(shape, dtype=takes.dtype)
        if getattr(engine, "device", "cpu") == "cuda":  # a CUDA engine takes its input on the GPU
            import torch

            tensor = torch.from_numpy(tensor).cuda()
        engine.prepare(shape)
        engine.run(tensor)  # warm-up: first-call allocations and kernel choice
        times = []
        for _ in range(RUNS):
            started = time.perf_counter()
            engine.run(tensor)
            times.append(time.perf_counter() - started)
    finally:
        engine.close()
    return statistics.median(times)


def cameras_held(engine_s: float, camera_fps: float, interval: int) -> int:
    """Cameras one engine keeps up with; at least one."""
    per_camera = engine_s * camera_fps / interval
    return max(1, int(USABLE / per_camera)) if per_camera > 0 else 1
