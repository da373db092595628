"""Per-stage figures: items, busy seconds, CPU seconds, recent latencies and a latency histogram.

CPU seconds are those of the thread that did the stage's work (``time.thread_time``): threads a library
starts for itself are not in them (the engine's intra-op threads for infer, FFmpeg's codec threads for
decode and output); the run's process CPU time (``RunSummary.cpu_seconds``) covers every thread.

Here, apart from the stage threads (``workers``), because the reports and the /metrics server read
them too, and an output must not import the pipeline's machinery to do so.
"""

from __future__ import annotations

import bisect
from collections import deque
from collections.abc import Iterable

import numpy as np

# upper bounds (seconds) of the cumulative latency histogram that /metrics exports
LATENCY_BUCKETS: tuple[float, ...] = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0)


class StageStats:
    """Items, busy (wall) and CPU seconds, recent per-item latencies and a latency histogram of one stage."""

    def __init__(self, name: str, window: int = 4096):
        self.name = name
        self.items = 0
        self.busy = 0.0
        self.cpu = 0.0  # the working thread's CPU seconds over the same spans as busy
        self._recent: deque[float] = deque(maxlen=window)
        self.bucket_counts = [0] * (len(LATENCY_BUCKETS) + 1)  # per bucket, not cumulative; last is +Inf

    def add(self, seconds: float, items: int = 1, cpu: float = 0.0) -> None:
        """One piece of work that took ``seconds`` (``cpu`` of them on its thread) and handled ``items``."""
        self.items += items
        self.busy += seconds
        self.cpu += cpu
        self._recent.append(seconds)
        self.bucket_counts[bisect.bisect_left(LATENCY_BUCKETS, seconds)] += 1

    @classmethod
    def merged(cls, name: str, parts: Iterable[StageStats]) -> StageStats:
        """One stage's figures over several sources (the same stage in each source's lane)."""
        total = cls(name)
        for part in parts:
            total.items += part.items
            total.busy += part.busy
            total.cpu += part.cpu
            total._recent.extend(part._recent)
            total.bucket_counts = [a + b for a, b in zip(total.bucket_counts, part.bucket_counts)]
        return total

    def percentile(self, q: float) -> float:
        return float(np.percentile(self._recent, q)) if self._recent else 0.0

    def as_dict(self) -> dict[str, float]:
        return {
            "items": self.items,
            "busy_s": round(self.busy, 4),
            "mean_ms": round(1000 * self.busy / self.items, 2) if self.items else 0.0,
            "cpu_s": round(self.cpu, 4),
            "cpu_ms": round(1000 * self.cpu / self.items, 2) if self.items else 0.0,  # per item, as mean_ms
            "p50_ms": round(1000 * self.percentile(50), 2),
            "p99_ms": round(1000 * self.percentile(99), 2),
        }
