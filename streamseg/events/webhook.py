"""``--webhook URL``: each event's start and end as an HTTP POST of JSON, from a thread of its own.

The pipeline only enqueues: a bounded queue (the oldest message is dropped when it is full, and counted)
sits between the events and the sender, so a slow or dead endpoint never holds a frame up. Each POST has
a timeout and is retried with exponential backoff; a message that still fails is given up and counted.
"""

from __future__ import annotations

import json
import logging
import threading
import urllib.error
import urllib.request
from typing import Any
from urllib.parse import urlsplit

from streamseg.backoff import Backoff
from streamseg.errors import ConfigError
from streamseg.logs import redact
from streamseg.outputs.messages.events import Event, EventQueue

log = logging.getLogger(__name__)


def check_webhook_url(url: str) -> str:
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise ConfigError(f"--webhook: expected an http:// or https:// URL, got {redact(url)!r}")
    return url


class Webhook:
    """POSTs messages to ``url``; ``sent``, ``failed`` (given up after retries) and ``dropped`` (queue full)."""

    def __init__(
        self,
        url: str,
        *,
        timeout: float = 5.0,
        retries: int = 3,
        first_delay: float = 0.5,
        max_delay: float = 5.0,
        queue_size: int = 256,
        drain_seconds: float = 5.0,
    ):
        self.url = check_webhook_url(url)
        self.shown = redact(url)
        self.timeout = timeout
        self.retries = retries
        self._delays = (first_delay, max_delay)
        self.drain_seconds = drain_seconds  # on close: how long queued messages may still take to leave
        self.sent = self.failed = 0
        self._queue = EventQueue(queue_size)
        self._stop = threading.Event()  # set when the drain time is over: retries wait no longer
        self._thread = threading.Thread(target=self._run, name="webhook", daemon=True)
        self._thread.start()

    @property
    def dropped(self) -> int:
        return self._queue.dropped

    def post(self, message: dict[str, Any]) -> None:
        """Enqueue one message; never blocks."""
        self._queue.put(Event(((self.url, json.dumps(message).encode()),)))

    def _run(self) -> None:
        while True:
            item = self._queue.get(timeout=0.1)
            if item is None:
                if self._queue.closed or self._stop.is_set():
                    return
                continue
            if self._stop.is_set():  # the drain time is over: count it with the unsent
                self._queue.putback(item)
                return
            if self._deliver(item.parts[0][1]):
                self.sent += 1
            else:
                self.failed += 1

    def _deliver(self, body: bytes) -> bool:
        backoff = Backoff(*self._delays, give_up=self.retries)
        while True:
            try:
                request = urllib.request.Request(
                    self.url, data=body, headers={"Content-Type": "application/json"}, method="POST"
                )
                with urllib.request.urlopen(request, timeout=self.timeout) as answer:
                    answer.read()
                return True
            except (urllib.error.URLError, OSError, ValueError) as err:
                wait = backoff.next()
                if wait is None or self._stop.is_set():
                    log.warning("--webhook %s: message given up: %s", self.shown, getattr(err, "reason", err))
                    return False
                if self._stop.wait(wait):
                    return False

    def close(self) -> None:
        """Send what is queued for up to ``drain_seconds``; the rest is dropped and counted."""
        self._queue.close()
        self._thread.join(self.drain_seconds)
        self._stop.set()
        self._thread.join()
        unsent = len(self._queue)
        if unsent:
            self._queue.dropped += unsent
            log.warning("--webhook %s: %d messages not sent when the run ended", self.shown, unsent)
