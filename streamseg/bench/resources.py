"""What a benchmark mode costs the machine: CPU time, peak memory, queue occupancy.

A sampler thread reads the resident set size and, when given a probe, the
pipeline's queue depths a few times a second; CPU time is the process's
user+system time over the mode's wall time (200% = two cores busy). Where a
mode ran on a CUDA GPU, GPU memory too: the peak allocated through torch's
allocator (which carries TensorRT's I/O as well) and the device's used memory.
"""

from __future__ import annotations

import os
import resource
import sys
import threading
import time
from collections.abc import Callable
from pathlib import Path

_STATM = Path("/proc/self/statm")
_PAGE = os.sysconf("SC_PAGE_SIZE") if hasattr(os, "sysconf") else 4096


def _cuda():
    """torch.cuda when this process already uses it (never imports torch for a CPU run)."""
    torch = sys.modules.get("torch")
    if torch is None or not torch.cuda.is_available() or not torch.cuda.is_initialized():
        return None
    return torch.cuda


def gpu_memory_report() -> dict:
    """Peak torch-allocated and device-used GPU memory (MiB) since the last reset; {} without CUDA."""
    cuda = _cuda()
    if cuda is None:
        return {}
    free, total = cuda.mem_get_info()
    return {
        "gpu": cuda.get_device_name(),
        "gpu_peak_allocated_mb": round(cuda.max_memory_allocated() / 2**20, 1),
        "gpu_peak_reserved_mb": round(cuda.max_memory_reserved() / 2**20, 1),
        "gpu_device_used_mb": round((total - free) / 2**20, 1),
    }


def rss_bytes() -> int:
    """Resident set size now (Linux), else the peak so far."""
    try:
        return int(_STATM.read_text().split()[1]) * _PAGE
    except (OSError, IndexError, ValueError):
        return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024


class ResourceSampler:
    """``with ResourceSampler(probe=...) as s: ...`` then ``s.report()``.

    ``probe`` returns {queue name: (depth, maxsize)}; its mean and peak are kept.
    """

    def __init__(self, *, interval: float = 0.05, probe: Callable[[], dict[str, tuple[int, int]]] | None = None):
        self.interval = interval
        self.probe = probe
        self._done = threading.Event()
        self._thread = threading.Thread(target=self._sample, name="streamseg-bench-sampler", daemon=True)
        self._rss_start = self._rss_peak = 0
        self._queues: dict[str, list[int]] = {}
        self._maxsize: dict[str, int] = {}
        self._cpu = self._wall = 0.0
        self._gpu: dict = {}

    def __enter__(self) -> ResourceSampler:
        cuda = _cuda()
        if cuda is not None:
            cuda.reset_peak_memory_stats()
        self._rss_start = self._rss_peak = rss_bytes()
        times = os.times()
        self._cpu = times.user + times.system
        self._wall = time.perf_counter()
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._done.set()
        self._thread.join()
        self._rss_peak = max(self._rss_peak, rss_bytes())
        times = os.times()
        self._cpu = times.user + times.system - self._cpu
        self._wall = time.perf_counter() - self._wall
        self._gpu = gpu_memory_report()

    def _sample(self) -> None:
        while not self._done.wait(self.interval):
            self._rss_peak = max(self._rss_peak, rss_bytes())
            if self.probe is None:
                continue
            try:
                depths = self.probe()
            except Exception:  # noqa: BLE001 - a probe racing the pipeline's start or end
                continue
            for name, (depth, maxsize) in depths.items():
                self._queues.setdefault(name, []).append(depth)
                self._maxsize[name] = maxsize

    def report(self) -> dict:
        queues = {
            name: {"mean": round(sum(d) / len(d), 2), "max": max(d), "maxsize": self._maxsize[name]}
            for name, d in self._queues.items()
            if d
        }
        return {
            "wall_s": round(self._wall, 3),
            "cpu_s": round(self._cpu, 3),
            "cpu_percent": round(100 * self._cpu / self._wall, 1) if self._wall > 0 else 0.0,
            "rss_start_mb": round(self._rss_start / 2**20, 1),
            "peak_rss_mb": round(self._rss_peak / 2**20, 1),
            "queue_occupancy": queues,
            **self._gpu,
        }
