"""``--mqtt mqtt://[user:pass@]host[:port]/TOPIC``: per-frame JSON summaries (and label maps) over MQTT.

Topics: ``TOPIC/<source>`` (JSON summary, see ``events.summary_event``) and, with ``--mqtt-labels``,
``TOPIC/<source>/labels`` (grey PNG, pixel = class id); with event rules, ``TOPIC/events/<source>`` (each
event's start and end, docs/events.md). QoS 1: paho keeps every message the broker has not
acknowledged and sends it again after a reconnect (paho's own loop, ``reconnect_delay_set``), so a broker
restart loses only the frames the bounded queue dropped, and those are counted.
"""

from __future__ import annotations

import collections
import logging
import os
import secrets
import threading
from urllib.parse import unquote, urlsplit

from streamseg.errors import ConfigError, MissingExtraError
from streamseg.outputs.messages.broker import BrokerSink
from streamseg.outputs.messages.events import Event

log = logging.getLogger(__name__)
MAX_IN_FLIGHT = 32  # messages handed to paho and not yet acknowledged; the rest wait in our bounded queue


def require_paho():
    try:
        import paho.mqtt.client as mqtt
    except ImportError:
        raise MissingExtraError("--mqtt", "mqtt") from None
    return mqtt


def parse_mqtt_url(url: str) -> tuple[str, int, str, str | None, str | None, bool]:
    """(host, port, topic, user, password, tls) from ``mqtt://`` or ``mqtts://`` (TLS) URLs."""
    parts = urlsplit(url)
    if parts.scheme not in ("mqtt", "mqtts") or not parts.hostname:
        raise ConfigError(f"--mqtt: expected mqtt://HOST[:PORT]/TOPIC, got {url.split('@')[-1]!r}")
    try:
        port = parts.port or (8883 if parts.scheme == "mqtts" else 1883)
    except ValueError:
        raise ConfigError(f"--mqtt: bad port in {url.split('@')[-1]!r}") from None
    topic = unquote(parts.path).strip("/") or "streamseg"
    if "+" in topic or "#" in url:  # urlsplit would take "#..." for a fragment
        raise ConfigError(f"--mqtt: topic {topic!r}: wildcards (+, #) are for subscribers")
    password = unquote(parts.password) if parts.password else None
    return parts.hostname, port, topic, parts.username and unquote(parts.username), password, parts.scheme == "mqtts"


class MqttSink(BrokerSink):
    flag = "--mqtt"

    def connect(self, url: str) -> None:
        mqtt = require_paho()
        host, port, self.topic, user, password, tls = parse_mqtt_url(url)
        self._unacked: set[int] = set()  # message ids paho holds until the broker acknowledges them
        self._acked: collections.deque[int] = collections.deque()  # appended by paho's thread, no lock
        self._early_acks: set[int] = set()
        self._summaries: set[int] = set()  # message ids of frame summaries not yet acknowledged
        self._lock = threading.Lock()
        self.connected = threading.Event()
        self._ever_connected = False
        self._client = mqtt.Client(
            mqtt.CallbackAPIVersion.VERSION2, client_id=f"streamseg-{os.getpid()}-{secrets.token_hex(3)}"
        )
        if user is not None:
            self._client.username_pw_set(user, password)
        if tls:
            self._client.tls_set()
        self._client.reconnect_delay_set(max(1, round(self.reconnect_delay)), max(1, round(self.reconnect_max_delay)))
        self._client.on_connect = self._on_connect
        self._client.on_disconnect = self._on_disconnect
        self._client.on_publish = lambda client, userdata, mid, reason_code, properties: self._acked.append(mid)
        self._client.connect_async(host, port, keepalive=30)
        self._client.loop_start()  # paho's network thread: connects, reconnects, resends

    def topics(self, source_name: str) -> tuple[str, str]:
        return f"{self.topic}/{source_name}", f"{self.topic}/{source_name}/labels"

    def event_topic(self, source_name: str) -> str:
        return f"{self.topic}/events/{source_name}"

    def send(self, event: Event) -> bool:
        with self._lock:
            if self._count_unacked() + len(event.parts) > MAX_IN_FLIGHT:
                return False  # the broker is slow or away: wait, and let the queue absorb (and drop)
            for part, (topic, payload) in enumerate(event.parts):  # queued in paho while disconnected, sent later
                mid = self._client.publish(topic, payload, qos=1).mid
                self._unacked.add(mid)
                if part == 0 and event.frame:  # a frame counts as delivered once its summary is acknowledged
                    self._summaries.add(mid)
        return True

    @property
    def delivered(self) -> int:
        with self._lock:
            self._count_unacked()
            return self._acknowledged

    def pending(self) -> int:
        with self._lock:
            return self._count_unacked()

    def _count_unacked(self) -> int:
        while self._acked:  # acknowledgements from paho's thread (an ack may come before its mid is added)
            self._early_acks.add(self._acked.popleft())
        done = self._unacked & self._early_acks
        self._acknowledged += len(done & self._summaries)
        self._summaries -= done
        self._unacked -= done
        self._early_acks -= done
        return len(self._unacked)

    def stop_client(self) -> None:
        self._client.disconnect()
        self._client.loop_stop()

    def _on_connect(self, client, userdata, flags, reason_code, properties) -> None:
        if reason_code.is_failure:
            log.warning("--mqtt %s: broker refused the connection: %s", self.url, reason_code)
            return
        if self._ever_connected:
            self.reconnects += 1
            log.warning("--mqtt %s: reconnected", self.url)
        self._ever_connected = True
        self.connected.set()

    def _on_disconnect(self, client, userdata, flags, reason_code, properties) -> None:
        self.connected.clear()
        if reason_code.value != 0:
            log.warning("--mqtt %s: connection lost (%s); reconnecting", self.url, reason_code)
