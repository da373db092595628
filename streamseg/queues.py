"""Bounded queues between stages, each with a named fill policy.

``BLOCK`` makes the producer wait (offline files: lossless). ``DROP_OLDEST``
discards the oldest item to make room (live sources: latency never grows) and
counts what it dropped. The end-of-stream marker is never dropped, and never
evicts an item either: it goes in past ``maxsize``, so the last frames before
it still reach the consumer.
"""

from __future__ import annotations

import enum
import threading
from collections import deque
from typing import Any


class FillPolicy(enum.Enum):
    BLOCK = "block"
    DROP_OLDEST = "drop-oldest"


class _EndOfStream:
    __slots__ = ()

    def __repr__(self) -> str:
        return "END"


END = _EndOfStream()
"""Sentinel a worker puts on its output queue from ``finally``: nothing follows."""


class Closed(Exception):
    """Raised by ``put`` once the consumer has gone (the pipeline is stopping)."""


class StageQueue:
    """A thread-safe FIFO with ``maxsize`` and a ``FillPolicy``."""

    def __init__(
        self, name: str, maxsize: int, policy: FillPolicy = FillPolicy.BLOCK, arrived: threading.Event | None = None
    ):
        if maxsize < 1:
            raise ValueError(f"queue {name!r}: maxsize must be >= 1, got {maxsize}")
        self.name = name
        self.maxsize = maxsize
        self.policy = policy
        self.dropped = 0
        self.peak = 0
        self._items: deque[Any] = deque()
        self._closed = False
        self._cond = threading.Condition()
        self.arrived = arrived  # set on every put and close: one consumer can wait on many queues

    def put(self, item: Any) -> None:
        with self._cond:
            while item is not END and len(self._items) >= self.maxsize and not self._closed:
                if self.policy is FillPolicy.DROP_OLDEST:
                    self._drop_oldest()
                    break
                self._cond.wait()
            if self._closed:
                raise Closed(self.name)
            self._items.append(item)
            if item is not END:
                self.peak = max(self.peak, len(self._items))
            self._cond.notify_all()
        if self.arrived is not None:
            self.arrived.set()

    def make_room(self, maxsize: int, policy: FillPolicy | None = None) -> None:
        """Hold at least ``maxsize`` items from now on (it never shrinks), with ``policy`` if given."""
        with self._cond:
            self.maxsize = max(self.maxsize, maxsize)
            if policy is not None:
                self.policy = policy
            self._cond.notify_all()

    def _drop_oldest(self) -> None:
        for i, old in enumerate(self._items):
            if old is not END:
                del self._items[i]
                self.dropped += 1
                return

    def get(self, timeout: float | None = None) -> Any:
        """Next item, or ``END`` once closed; raises ``TimeoutError`` after ``timeout``."""
        with self._cond:
            if not self._cond.wait_for(lambda: self._items or self._closed, timeout):
                raise TimeoutError(self.name)
            if not self._items:
                return END
            item = self._items.popleft()
            self._cond.notify_all()
            return item

    def poll(self) -> Any | None:
        """The next item if one is waiting (``END`` once closed), else None; never blocks."""
        with self._cond:
            if not self._items:
                return END if self._closed else None
            item = self._items.popleft()
            self._cond.notify_all()
            return item

    def close(self) -> None:
        """The consumer is gone: wake everyone, refuse further puts."""
        with self._cond:
            self._closed = True
            self._items.clear()
            self._cond.notify_all()
        if self.arrived is not None:
            self.arrived.set()

    def __len__(self) -> int:
        return len(self._items)
