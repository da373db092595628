"""Event alerts against real servers: a mosquitto broker's subscriber gets each start and end on
``TOPIC/events/<source>``; a webhook that fails is retried, and one that is dead is counted, not waited on."""

from __future__ import annotations

import importlib.util
import json
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest
import yaml

from streamseg import Pipeline
from streamseg.events.webhook import Webhook
from tests.events.conftest import CROSSWALK
from tests.support.mosquitto import Mosquitto, mosquitto_missing
from tests.support.servers import free_port

HAS_MQTT = importlib.util.find_spec("paho") is not None


@pytest.mark.live
@pytest.mark.skipif(
    not HAS_MQTT or mosquitto_missing() is not None, reason=mosquitto_missing() or "needs the mqtt extra (paho-mqtt)"
)
def test_a_mosquitto_subscriber_receives_the_event_start_and_end(red_wins, one_visit, tmp_path):
    from tests.support.mqtt_client import Subscriber

    model, spec = red_wins
    with Mosquitto(tmp_path) as broker:
        subscriber = Subscriber(broker.port, "streamseg/events/#", client_id="events-test")
        try:
            Pipeline(
                str(one_visit), model=model, spec=yaml.safe_load(spec.read_text()), rois=[CROSSWALK],
                events=["class1 in crosswalk > 0.05"], mqtt=broker.url("streamseg"),
            ).run()  # fmt: skip
            received = subscriber.wait_for("/events/one_visit", 2)
            frames = subscriber.on("streamseg/one_visit")
        finally:
            subscriber.close()
    messages = [json.loads(m.payload) for m in received]
    assert [(m["kind"], m["start"], m["end"]) for m in messages] == [("start", 1.5, None), ("end", 1.5, 2.5)]
    assert messages[1]["rule"] == "class1 in crosswalk > 0.05" and messages[1]["source"] == "one_visit"
    assert frames == []  # the pattern subscribed to events only


class Flaky(BaseHTTPRequestHandler):
    """Answers 500 to the first POST, 200 after."""

    calls = 0
    lock = threading.Lock()

    def do_POST(self) -> None:
        self.rfile.read(int(self.headers["Content-Length"]))
        with Flaky.lock:
            Flaky.calls += 1
            status = 500 if Flaky.calls == 1 else 200
        self.send_response(status)
        self.end_headers()

    def log_message(self, *args) -> None:
        pass


def test_the_webhook_retries_a_failure_and_counts_a_dead_endpoint():
    server = ThreadingHTTPServer(("127.0.0.1", 0), Flaky)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        hook = Webhook(f"http://127.0.0.1:{server.server_port}/", first_delay=0.01, max_delay=0.02)
        hook.post({"kind": "start"})
        hook.close()
        assert (hook.sent, hook.failed, hook.dropped, Flaky.calls) == (1, 0, 0, 2)
    finally:
        server.shutdown()
        server.server_close()

    dead = Webhook(f"http://127.0.0.1:{free_port()}/", retries=1, first_delay=0.01, queue_size=2, drain_seconds=2)
    for n in range(5):
        dead.post({"n": n})  # never blocks: the queue keeps the newest two
    dead.close()
    assert dead.sent == 0 and dead.failed + dead.dropped == 5 and dead.dropped >= 3
