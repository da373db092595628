"""Stage threads: take from one queue, work, put on the next, always end with END."""

from __future__ import annotations

import bisect
import logging
import threading
import time
from collections import deque
from collections.abc import Callable, Generator, Iterable
from typing import Any

import numpy as np

from streamseg.queues import END, Closed, StageQueue

log = logging.getLogger(__name__)


# upper bounds (seconds) of the cumulative latency histogram that /metrics exports
LATENCY_BUCKETS: tuple[float, ...] = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0)


class StageStats:
    """Items, busy seconds, recent per-item latencies and a latency histogram of one stage."""

    def __init__(self, name: str, window: int = 4096):
        self.name = name
        self.items = 0
        self.busy = 0.0
        self._recent: deque[float] = deque(maxlen=window)
        self.bucket_counts = [0] * (len(LATENCY_BUCKETS) + 1)  # per bucket, not cumulative; last is +Inf

    def add(self, seconds: float, items: int = 1) -> None:
        """One piece of work that took ``seconds`` and handled ``items`` (a batch: several)."""
        self.items += items
        self.busy += seconds
        self._recent.append(seconds)
        self.bucket_counts[bisect.bisect_left(LATENCY_BUCKETS, seconds)] += 1

    @classmethod
    def merged(cls, name: str, parts: Iterable[StageStats]) -> StageStats:
        """One stage's figures over several sources (the same stage in each source's lane)."""
        total = cls(name)
        for part in parts:
            total.items += part.items
            total.busy += part.busy
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
            "p50_ms": round(1000 * self.percentile(50), 2),
            "p99_ms": round(1000 * self.percentile(99), 2),
        }


class Worker(threading.Thread):
    """Runs ``work`` on each item of ``inbox`` and puts the result on ``outbox``.

    A producer worker has no inbox and iterates ``items`` instead. ``work`` may
    return None to emit nothing. On any exit the worker runs ``on_end`` and then
    puts END on its outbox from ``finally``, so the consumer always stops; an
    error goes to ``on_error``, and the inbox is closed so upstream stops too.
    """

    def __init__(
        self,
        name: str,
        work: Callable[[Any], Any],
        *,
        inbox: StageQueue | None = None,
        outbox: StageQueue | None = None,
        items: Callable[[], Iterable[Any]] | None = None,
        stopping: threading.Event,
        skip_when_stopping: bool = False,
        on_error: Callable[[BaseException], None],
        on_end: Callable[[], None] | None = None,
        thread_name: str | None = None,
    ):
        super().__init__(name=f"streamseg-{thread_name or name}", daemon=True)
        self.stage = name
        self.work = work
        self.inbox = inbox
        self.outbox = outbox
        self.items = items
        self.stopping = stopping
        self.skip_when_stopping = skip_when_stopping
        self.on_error = on_error
        self.on_end = on_end
        self.stats = StageStats(name)
        self.exhausted = False  # a producer whose items ran out, not one told to stop

    def _inputs(self) -> Generator[Any, None, None]:
        if self.items is not None:
            for item in self.items():
                if self.stopping.is_set():
                    return
                yield item
            self.exhausted = True
            return
        if self.inbox is None:
            raise ValueError(f"{self.stage}: a worker needs an inbox or items")
        while True:
            item = self.inbox.get()
            if item is END:
                return
            if self.skip_when_stopping and self.stopping.is_set():
                continue  # stopping: drain without working, END still comes
            yield item

    def run(self) -> None:
        inputs = self._inputs()
        try:
            while True:
                started = time.perf_counter()
                item = next(inputs, END)  # a producer's time includes its decode
                if item is END:
                    break
                if self.items is None:
                    started = time.perf_counter()
                out = self.work(item)
                self.stats.add(time.perf_counter() - started)
                if out is not None and self.outbox is not None:
                    self.outbox.put(out)
        except Closed:  # downstream is gone: pass the news upstream
            if self.inbox is not None:
                self.inbox.close()
        except BaseException as err:  # noqa: BLE001 - handed to the pipeline, re-raised there
            self.on_error(err)
            if self.inbox is not None:
                self.inbox.close()
        finally:
            inputs.close()  # a producer's source is closed by its own thread, never under a decoder
            if self.on_end is not None:
                try:
                    self.on_end()
                except BaseException as err:  # noqa: BLE001 - e.g. an output that cannot be finalized
                    self.on_error(err)
            if self.outbox is not None:
                try:
                    self.outbox.put(END)
                except Closed:
                    pass
