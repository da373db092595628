"""Per-frame events for message brokers, and the bounded queue that keeps brokers off the pipeline's back.

A broker sink's ``write`` only encodes and enqueues; a sender thread of its own talks to the broker. When
the broker is slow or gone the queue fills and the oldest events are dropped and counted, so the pipeline
never waits on the network and the count says exactly what was lost here.
"""

from __future__ import annotations

import collections
import json
import threading
from dataclasses import dataclass

import cv2
import numpy as np

from streamseg.frames import Result
from streamseg.logs import redact
from streamseg.outputs.files.summary import class_fractions


def summary_event(result: Result, classes: tuple[str, ...], stamp_ns: int) -> bytes:
    """UTF-8 JSON: source, frame index, media time, stamp, capture time, latency, class fractions and, with
    regions, their coverage (region -> class -> share)."""
    fractions = class_fractions(result.labels, len(classes))
    return json.dumps({
        "source": redact(result.source), "index": result.index, "time": result.time, "stamp_ns": stamp_ns,
        "capture_time": result.capture_time, "latency_ms": round(result.latency * 1000, 2),
        "shape": list(result.labels.shape),
        "fractions": {c: round(float(f), 6) for c, f in zip(classes, fractions) if f > 0},
        **({"coverage": result.coverage} if result.coverage is not None else {}),
    }).encode()  # fmt: skip


def label_png(labels: np.ndarray) -> bytes:
    """The label map as an 8-bit grey PNG (pixel value = class id), readable by any image library."""
    grey = np.ascontiguousarray(labels, dtype=np.uint8)
    return cv2.imencode(".png", grey, [cv2.IMWRITE_PNG_COMPRESSION, 1])[1].tobytes()


@dataclass(frozen=True)
class Event:
    """One frame's messages: (topic, payload) pairs, sent together or dropped together."""

    parts: tuple[tuple[str, bytes], ...]
    frame: bool = True  # a frame's summary first (counted as delivered once acknowledged); False: an event message


class EventQueue:
    """Bounded FIFO of frames' events: ``put`` never blocks; when full it drops the oldest and counts it."""

    def __init__(self, maxsize: int):
        self._items: collections.deque[Event] = collections.deque()
        self.maxsize = maxsize
        self.dropped = 0
        self.closed = False
        self._ready = threading.Condition()

    def put(self, event: Event) -> None:
        with self._ready:
            if len(self._items) >= self.maxsize:
                self._items.popleft()
                self.dropped += 1
            self._items.append(event)
            self._ready.notify()

    def get(self, timeout: float) -> Event | None:
        """The oldest event, or None after ``timeout`` seconds without one (or once closed and empty)."""
        with self._ready:
            self._ready.wait_for(lambda: self._items or self.closed, timeout)
            return self._items.popleft() if self._items else None

    def putback(self, event: Event) -> None:
        """Return an event the sender could not hand over; it goes first, unless newer ones filled the queue."""
        with self._ready:
            if len(self._items) >= self.maxsize:
                self.dropped += 1
                return
            self._items.appendleft(event)

    def close(self) -> None:
        with self._ready:
            self.closed = True
            self._ready.notify_all()

    def __len__(self) -> int:
        return len(self._items)
