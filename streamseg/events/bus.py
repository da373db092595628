"""Where events go once a source's rules find them: one bus per run, fanned out to every outlet.

Outlets: the downstream sinks that take events (MQTT/Kafka ``TOPIC/events/<source>``, the MCAP
``/streamseg/<source>/events`` channel), the ``--webhook``, and the Python API (callbacks, and
iterators with bounded queues). The bus also remembers each source's regions and which of them have an
event on, for the preview page and ``/metrics``.
"""

from __future__ import annotations

import collections
import threading
from collections.abc import Callable, Iterator
from typing import Any, Protocol

from streamseg.events.regions import Region

Message = dict[str, Any]  # see Event.message; docs/events.md has the schema


class EventOutlet(Protocol):
    def publish_event(self, source: str, message: Message) -> None: ...


class Listener:
    """An iterator over messages (``for m in pipeline.events.listen()``) until the run ends.

    Bounded: when the reader falls more than ``maxsize`` messages behind, the oldest go (``dropped``).
    """

    def __init__(self, maxsize: int):
        self._items: collections.deque[Message | None] = collections.deque()
        self.maxsize = maxsize
        self.dropped = 0
        self._ready = threading.Condition()

    def put(self, message: Message | None) -> None:
        with self._ready:
            if message is not None and len(self._items) >= self.maxsize:
                self._items.popleft()
                self.dropped += 1
            self._items.append(message)
            self._ready.notify()

    def get(self, timeout: float | None = None) -> Message | None:
        """The next message; None once the run has ended (or after ``timeout`` seconds without one)."""
        with self._ready:
            if not self._ready.wait_for(lambda: bool(self._items), timeout):
                return None
            message = self._items[0]
            if message is not None:  # the end marker stays, for every later call
                self._items.popleft()
            return message

    def __iter__(self) -> Iterator[Message]:
        while (message := self.get()) is not None:
            yield message


class EventBus:
    """Fans each event message out; ``counts`` per source and rule, ``active`` regions per source."""

    def __init__(self) -> None:
        self._callbacks: list[Callable[[Message], None]] = []
        self._listeners: list[Listener] = []
        self._outlets: list[EventOutlet] = []
        self.webhook: Any = None  # a streamseg.events.webhook.Webhook, with --webhook
        self.regions: dict[str, tuple[Region, ...]] = {}  # source -> its regions
        self.started: collections.Counter[tuple[str, str]] = collections.Counter()  # (source, rule) -> events
        self._active: collections.Counter[tuple[str, str]] = collections.Counter()  # (source, region) -> events on
        self._lock = threading.Lock()
        self.closed = False

    # -- the Python API --------------------------------------------------------------------
    def subscribe(self, callback: Callable[[Message], None]) -> None:
        """Call ``callback(message)`` on each event's start and end, in the source's output thread: keep it quick."""
        self._callbacks.append(callback)

    def listen(self, maxsize: int = 256) -> Listener:
        """An iterator over the messages from now until the run ends."""
        listener = Listener(maxsize)
        with self._lock:
            if self.closed:
                listener.put(None)
            self._listeners.append(listener)
        return listener

    # -- the run's side --------------------------------------------------------------------
    def attach(self, outlets: list[Any], webhook: Any = None) -> None:
        """The run's sinks that take events (those with ``publish_event``), and the webhook."""
        self._outlets = [o for o in outlets if hasattr(o, "publish_event")]
        self.webhook = webhook

    def add_source(self, source: str, regions: tuple[Region, ...]) -> None:
        with self._lock:
            self.regions[source] = regions

    def emit(self, message: Message) -> None:
        source, kind = message["source"], message["kind"]
        with self._lock:
            if kind == "start":
                self.started[(source, message["rule"])] += 1
                self._active[(source, message["region"])] += 1
            elif self._active[(source, message["region"])] > 0:
                self._active[(source, message["region"])] -= 1
            listeners = list(self._listeners)
        for outlet in self._outlets:
            outlet.publish_event(source, message)
        if self.webhook is not None:
            self.webhook.post(message)
        for callback in self._callbacks:
            callback(message)
        for listener in listeners:
            listener.put(message)

    def active(self, source: str) -> set[str]:
        """The regions of ``source`` with an event on now."""
        with self._lock:
            return {region for (name, region), n in self._active.items() if name == source and n > 0}

    def close(self) -> None:
        """The run is over: listeners end; the webhook sends what it still can."""
        with self._lock:
            self.closed = True
            listeners = list(self._listeners)
        for listener in listeners:
            listener.put(None)
        if self.webhook is not None:
            self.webhook.close()
