"""A read-only view of a running pipeline: state, fps, stage latencies, queues, drops.

Both ``/metrics`` and the preview page read it; neither feeds anything back.
"""

from __future__ import annotations

import sys
import threading
import time
from collections import deque
from typing import Any

FPS_WINDOW = 5.0  # seconds of history behind the fps figure


class LiveStats:
    """Turns ``Pipeline.snapshot()`` into figures: fps over the last few seconds, totals, state; per source too."""

    def __init__(self, pipeline: Any):
        self.pipeline = pipeline
        self._rates: dict[str | None, FrameRate] = {}  # None: all sources together
        self._lock = threading.Lock()

    def read(self) -> dict[str, Any]:
        snap = self.pipeline.snapshot()
        stages = snap.get("stages", {})
        frames_out = stages["output"].items if "output" in stages else 0
        frames_in = stages["decode"].items if "decode" in stages else 0
        extra = snap.get("extra") or {}
        elapsed = snap.get("elapsed", 0.0)
        sources = {}
        for name, one in (snap.get("sources") or {}).items():
            sources[name] = {
                "state": one["state"], "uri": one["uri"], "frames_in": one["stages"]["decode"].items,
                "frames_out": one["written"], "fps": self._rate(name).fps(one["written"], elapsed),
                "dropped": one["dropped"], "latency": one["latency"], "stages": one["stages"],
                "reconnects": int(one.get("reconnects", 0)), "output_reconnects": int(one.get("output_reconnects", 0)),
                "problem": one.get("problem"), "temporal": one.get("temporal") or {},
            }  # fmt: skip
        return {
            "state": snap.get("state", "starting"),
            "frames_in": frames_in,
            "frames_out": frames_out,
            "fps": self._rate(None).fps(frames_out, elapsed),
            "elapsed": elapsed,
            "cpu_seconds": snap.get("cpu_seconds", 0.0),
            "stages": stages,
            "queues": snap.get("queues", {}),
            "reconnects": int(extra.get("reconnects", 0)),
            "output_reconnects": int(extra.get("output_reconnects", 0)),
            "batches": snap.get("batches", {}),
            "engine": snap.get("engine", {}),
            "sources": sources,
        }

    def _rate(self, name: str | None) -> FrameRate:
        with self._lock:
            rate = self._rates.get(name)
            if rate is None:
                rate = self._rates[name] = FrameRate()
            return rate


class FrameRate:
    """Frames per second over the last ``FPS_WINDOW`` seconds of readings."""

    def __init__(self) -> None:
        self._samples: deque[tuple[float, int]] = deque()  # (monotonic time, frames out)
        self._lock = threading.Lock()

    def fps(self, frames: int, elapsed: float) -> float:
        now = time.monotonic()
        with self._lock:
            samples = self._samples
            samples.append((now, frames))
            while len(samples) > 2 and now - samples[1][0] >= FPS_WINDOW:
                samples.popleft()  # keep one sample at least FPS_WINDOW old
            then, frames_then = samples[0]
        if now - then >= 0.5:
            return (frames - frames_then) / (now - then)
        return frames / elapsed if elapsed > 0 else 0.0  # first reads: the average so far


def gpu_memory() -> dict[str, dict[str, int]]:
    """Per CUDA device: bytes in use on the device and held by torch's allocator.

    Read only when torch is already loaded (a torch or TensorRT backend): the
    metrics never import torch, nor open a CUDA context of their own.
    """
    torch = sys.modules.get("torch")
    if torch is None or not torch.cuda.is_initialized():
        return {}
    devices = {}
    for index in range(torch.cuda.device_count()):
        free, total = torch.cuda.mem_get_info(index)
        devices[str(index)] = {
            "used": total - free, "total": total,
            "allocated": torch.cuda.memory_allocated(index), "reserved": torch.cuda.memory_reserved(index),
        }  # fmt: skip
    return devices
