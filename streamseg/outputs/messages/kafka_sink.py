"""``--kafka kafka://HOST:PORT/TOPIC``: the MQTT sink's per-frame summaries, for teams that run Kafka.

Summaries go to ``TOPIC.<source>`` and label maps (``--mqtt-labels`` applies here too) to
``TOPIC.<source>.labels``, event starts and ends to ``TOPIC.events.<source>`` (Kafka topic names allow
letters, digits, ``._-``). librdkafka (confluent-kafka)
reconnects and retries by itself; our bounded queue in front of it drops the oldest frames when it is full.
Kept minimal: no Kafka broker runs in the test environment, so only URL parsing and the missing-extra
message are tested.
"""

from __future__ import annotations

import os
from urllib.parse import urlsplit

from streamseg.errors import ConfigError, MissingExtraError
from streamseg.outputs.messages.broker import BrokerSink
from streamseg.outputs.messages.events import Event

MAX_QUEUED = 64  # messages librdkafka may hold; the rest wait in our bounded queue


def parse_kafka_url(url: str) -> tuple[str, str]:
    """(bootstrap servers, topic) from ``kafka://HOST:PORT[,HOST:PORT]/TOPIC``."""
    parts = urlsplit(url)
    topic = parts.path.strip("/")
    if parts.scheme != "kafka" or not parts.netloc or not topic:
        raise ConfigError(f"--kafka: expected kafka://HOST:PORT/TOPIC, got {url.split('@')[-1]!r}")
    return parts.netloc.split("@")[-1], topic


class KafkaSink(BrokerSink):
    flag = "--kafka"

    def connect(self, url: str) -> None:
        servers, self.topic = parse_kafka_url(url)
        try:
            from confluent_kafka import Producer
        except ImportError:
            raise MissingExtraError("--kafka", "kafka") from None
        self._producer = Producer(
            {
                "bootstrap.servers": servers,
                "client.id": f"streamseg-{os.getpid()}",
                "queue.buffering.max.messages": MAX_QUEUED + 8,
                "linger.ms": 5,
                "reconnect.backoff.ms": round(self.reconnect_delay * 1000),
                "reconnect.backoff.max.ms": round(self.reconnect_max_delay * 1000),
            }
        )

    def topics(self, source_name: str) -> tuple[str, str]:
        return f"{self.topic}.{source_name}", f"{self.topic}.{source_name}.labels"

    def event_topic(self, source_name: str) -> str:
        return f"{self.topic}.events.{source_name}"

    def send(self, event: Event) -> bool:
        self._producer.poll(0)  # serve delivery callbacks
        if len(self._producer) + len(event.parts) > MAX_QUEUED:
            return False  # librdkafka still holds a full queue: the broker is away or slow
        for part, (topic, payload) in enumerate(event.parts):  # a frame counts once its summary is delivered
            counted = part == 0 and event.frame
            self._producer.produce(topic, payload, on_delivery=self._on_delivery if counted else None)
        return True

    def _on_delivery(self, err, message) -> None:  # from poll()/flush(): the broker's delivery report
        if err is None:
            self._acknowledged += 1

    def pending(self) -> int:
        return len(self._producer)

    def stop_client(self) -> None:
        self._producer.flush(1.0)
