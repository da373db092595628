"""The shared shape of the broker sinks (MQTT, Kafka): encode in ``write``, send from a thread of their own."""

from __future__ import annotations

import json
import logging
import threading
import time
from typing import Any

from streamseg.errors import SinkError
from streamseg.frames import Result
from streamseg.logs import redact
from streamseg.outputs.messages.events import Event, EventQueue, label_png, summary_event
from streamseg.outputs.messages.topics import SourceTopics, stamp_ns

log = logging.getLogger(__name__)


class BrokerSink:
    """Per frame: a JSON summary (and with ``labels`` a PNG label map) onto a bounded drop-oldest queue.

    Subclasses open their client (``connect``, which parses the URL and may refuse it), say where a
    source's messages go (``topics``, ``event_topic``) and how to hand one frame's messages to their client (``send``:
    False means "not now, try again"). ``dropped`` counts frames lost here, ``reconnects`` the broker
    reconnects; the run's summary reports both. ``delivered`` counts frames whose summary the broker acknowledged
    (subclasses count them from their client's acknowledgements): a run that handed frames over and got none
    acknowledged fails as it closes, as a stream output that reached nobody does.
    """

    flag = "--broker"

    def __init__(
        self,
        url: str,
        classes: tuple[str, ...],
        *,
        live: bool,
        labels: bool = False,
        queue_size: int = 256,
        drain_seconds: float = 5.0,
        reconnect_delay: float = 0.5,
        reconnect_max_delay: float = 10.0,
    ):
        self.url = self.name = redact(url)
        self.classes = classes
        self.live = live
        self.labels = labels
        self.sent = 0
        self.written = 0  # frames handed to this sink
        self._acknowledged = 0  # frames whose summary message the broker acknowledged
        self.reconnects = 0
        self.drain_seconds = drain_seconds  # on close: how long queued frames may still take to leave
        self._queue = EventQueue(queue_size)
        self._source_names = SourceTopics()
        self._deadline: float | None = None
        self.reconnect_delay = reconnect_delay  # the client's first wait before reconnecting, then its longest
        self.reconnect_max_delay = reconnect_max_delay
        self._sender = threading.Thread(target=self._send_loop, name=f"{self.flag[2:]}-sender", daemon=True)
        self.connect(url)
        self._sender.start()
        log.info("%s", self.announcement)

    @property
    def announcement(self) -> str:
        return f"publishing frame summaries to {self.url}" + (" with label maps" if self.labels else "")

    @property
    def dropped(self) -> int:
        return self._queue.dropped

    @property
    def delivered(self) -> int:
        """Frames the broker acknowledged (QoS 1 PUBACK, Kafka delivery report), not merely sent."""
        return self._acknowledged

    # -- subclass hooks ----------------------------------------------------------------------
    def connect(self, url: str) -> None:
        """Parse ``url`` (ConfigError when it is wrong) and start the client, which connects on its own."""
        raise NotImplementedError

    def topics(self, source_name: str) -> tuple[str, str]:
        """(summary topic, label-map topic) for one source."""
        raise NotImplementedError

    def send(self, event: Event) -> bool:
        raise NotImplementedError

    def event_topic(self, source_name: str) -> str:
        """Where a source's event starts and ends go (``streamseg.events``)."""
        raise NotImplementedError

    def pending(self) -> int:
        """Messages handed to the client and not yet acknowledged by the broker."""
        return 0

    def stop_client(self) -> None:
        raise NotImplementedError

    # -- the sink ------------------------------------------------------------------------------
    def write(self, result: Result) -> None:
        summary_topic, labels_topic = self.topics(self._source_names(result.source))
        parts = [(summary_topic, summary_event(result, self.classes, stamp_ns(result, self.live)))]
        if self.labels:
            parts.append((labels_topic, label_png(result.labels)))
        self._queue.put(Event(tuple(parts)))
        self.written += 1

    def publish_event(self, source: str, message: dict[str, Any]) -> None:
        """An event's start or end (JSON, docs/events.md), queued with the frames' messages."""
        topic = self.event_topic(self._source_names(source))
        self._queue.put(Event(((topic, json.dumps(message).encode()),), frame=False))

    def _send_loop(self) -> None:
        while True:
            if self._deadline is not None and time.monotonic() > self._deadline:
                break
            event = self._queue.get(timeout=0.1)
            if event is None:
                if self._queue.closed:
                    break
                continue
            if self.send(event):
                self.sent += 1
            else:
                self._queue.putback(event)
                time.sleep(0.05)

    def close(self, complete: bool = True) -> None:
        self._deadline = time.monotonic() + self.drain_seconds
        self._queue.close()
        if self._sender.is_alive():
            self._sender.join()
        while self.pending() and time.monotonic() < self._deadline:
            time.sleep(0.02)
        unsent = len(self._queue)
        self._queue.dropped += unsent
        if unsent or self.pending():
            log.warning(
                "%s %s: %d frames not sent and %d messages not acknowledged when the run ended",
                self.flag,
                self.url,
                unsent,
                self.pending(),
            )
        self.stop_client()
        if self.written and not self.delivered:
            raise SinkError(
                f"no frames delivered to {self.flag} {self.url}: the broker acknowledged none of the "
                f"{self.written} frames (could it be reached?)"
            )
