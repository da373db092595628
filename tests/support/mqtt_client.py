"""A paho subscriber that records every message, with a persistent session so broker restarts lose nothing."""

from __future__ import annotations

import threading
import time

import paho.mqtt.client as mqtt


class Subscriber:
    def __init__(self, port: int, pattern: str, client_id: str = "streamseg-test-subscriber"):
        self.messages: list[mqtt.MQTTMessage] = []
        self.subscribed = threading.Event()
        self.pattern = pattern
        self._client = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id=client_id, clean_session=False)
        self._client.reconnect_delay_set(1, 1)
        self._client.on_connect = lambda client, *_: client.subscribe(self.pattern, qos=1)
        self._client.on_subscribe = lambda *_: self.subscribed.set()
        self._client.on_message = lambda client, userdata, message: self.messages.append(message)
        self._client.connect(host="127.0.0.1", port=port)
        self._client.loop_start()
        assert self.subscribed.wait(10), "the subscriber could not subscribe"

    def on(self, suffix: str) -> list[mqtt.MQTTMessage]:
        return [m for m in list(self.messages) if m.topic.endswith(suffix)]

    def wait_for(self, suffix: str, count: int, timeout: float = 30) -> list[mqtt.MQTTMessage]:
        deadline = time.monotonic() + timeout
        while len(self.on(suffix)) < count and time.monotonic() < deadline:
            time.sleep(0.05)
        return self.on(suffix)

    def close(self) -> None:
        self._client.disconnect()
        self._client.loop_stop()
