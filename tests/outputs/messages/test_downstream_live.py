"""Live downstream outputs against real servers on 127.0.0.1: Foxglove WebSocket clients and a mosquitto broker."""

from __future__ import annotations

import importlib.util
import json
import re
import shutil
import subprocess
import sys
import threading
import time
from pathlib import Path

import cv2
import numpy as np
import pytest

from streamseg import Pipeline
from tests.support.cli import run_cli
from tests.support.mosquitto import Mosquitto, mosquitto_missing
from tests.support.paths import ROOT

HAS_MQTT = importlib.util.find_spec("paho") is not None
HAS_FOXGLOVE = all(importlib.util.find_spec(m) is not None for m in ("foxglove", "mcap_ros2", "websockets"))
needs_mqtt = pytest.mark.skipif(
    not HAS_MQTT or mosquitto_missing() is not None, reason=mosquitto_missing() or "needs the mqtt extra (paho-mqtt)"
)
needs_foxglove = pytest.mark.skipif(not HAS_FOXGLOVE, reason="needs the foxglove extra and websockets")
PREFIX = "/streamseg/car_detection"
CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"


@pytest.fixture
def broker(tmp_path):
    if mosquitto_missing() is not None:
        pytest.skip(mosquitto_missing())
    with Mosquitto(tmp_path) as server:
        yield server


@pytest.fixture
def subscriber(broker):
    from tests.support.mqtt_client import Subscriber

    client = Subscriber(broker.port, "cams/#")
    yield client
    client.close()


def summaries(messages) -> dict[int, dict]:
    """By frame index (QoS 1 may deliver a message twice)."""
    return {row["index"]: row for row in (json.loads(m.payload) for m in messages)}


def decode_cdr(channel: dict, data: bytes):
    """A message from the advertised schema, as Foxglove itself would decode it."""
    from mcap.records import Schema
    from mcap_ros2.decoder import DecoderFactory

    schema = Schema(
        id=1, name=channel["schemaName"], encoding=channel["schemaEncoding"], data=channel["schema"].encode()
    )
    return DecoderFactory().decoder_for(channel["encoding"], schema)(data)


@pytest.mark.live
@needs_mqtt
@needs_foxglove
@pytest.mark.slow
def test_live_run_serves_a_foxglove_client_and_an_mqtt_subscriber(car_video, duc_onnx, broker, subscriber):
    from tests.support.foxglove_client import collect

    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "streamseg",
            "run",
            str(car_video),
            "--realtime",
            "--model",
            str(duc_onnx),
            "--max-frames",
            "60",
            "--foxglove",
            "0",
            "--mqtt",
            broker.url("cams"),
            "--mqtt-labels",
        ],
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        lines = []
        for line in proc.stderr:
            lines.append(line)
            if found := re.search(r"Foxglove WebSocket server at (ws://127\.0\.0\.1:\d+)", line):
                break
        assert found, "".join(lines)
        topics = [f"{PREFIX}/labels", f"{PREFIX}/camera/compressed"]
        channels, received = collect(found.group(1), topics, count=3)
        rest = proc.stderr.read()
    finally:
        proc.wait(timeout=120)
    assert proc.returncode == 0, rest
    assert {c["topic"]: c["schemaName"] for c in channels.values()} == {
        f"{PREFIX}/camera/compressed": "sensor_msgs/msg/CompressedImage",
        f"{PREFIX}/labels": "sensor_msgs/msg/Image",
        f"{PREFIX}/overlay/compressed": "sensor_msgs/msg/CompressedImage",
        f"{PREFIX}/class_fractions": "std_msgs/msg/Float32MultiArray",
        f"{PREFIX}/stats": "std_msgs/msg/String",
    }
    assert all(len(received[t]) >= 3 for t in topics)
    labels = [decode_cdr(channels[f"{PREFIX}/labels"], data) for _, data in received[f"{PREFIX}/labels"]]
    assert all((m.height, m.width, m.encoding) == (432, 768, "mono8") and max(m.data) < 19 for m in labels)
    for stamp, data in received[f"{PREFIX}/camera/compressed"]:
        image = cv2.imdecode(
            np.frombuffer(decode_cdr(channels[f"{PREFIX}/camera/compressed"], data).data, np.uint8), cv2.IMREAD_COLOR
        )
        assert image.shape == (432, 768, 3) and image.std() > 10  # real footage, not a blank picture
        assert abs(stamp / 1e9 - time.time()) < 120  # live: stamped with the capture time
    # every frame the run wrote reached the MQTT subscriber, with its label map
    written = int(re.search(r"(\d+) out", rest).group(1))
    rows = summaries(subscriber.wait_for("car_detection", written))
    assert len(rows) == written >= 3
    maps = {}
    for message in subscriber.wait_for("/labels", written):
        maps[len(maps)] = cv2.imdecode(np.frombuffer(message.payload, np.uint8), cv2.IMREAD_UNCHANGED)
    assert len(maps) == written
    first = rows[min(rows)]
    counted = np.bincount(maps[0].ravel(), minlength=19) / maps[0].size
    assert first["shape"] == [432, 768] and first["source"] == car_video.stem
    assert sum(first["fractions"].values()) == pytest.approx(1.0, abs=1e-4)
    assert max(first["fractions"].values()) == pytest.approx(counted.max(), abs=1e-6)


@pytest.mark.live
@pytest.mark.slow
@needs_mqtt
def test_mqtt_gets_every_frame_summary_of_a_file(car_video, duc_onnx, broker, subscriber, tmp_path):
    frames = 6
    with Pipeline(
        car_video, model=duc_onnx, max_frames=frames, mqtt=broker.url("cams"), summary=str(tmp_path / "s.jsonl")
    ) as pipeline:
        for _ in pipeline:
            pass
    rows = summaries(subscriber.wait_for("cams/car_detection", frames))
    expected = [json.loads(line) for line in (tmp_path / "s.jsonl").read_text().splitlines()]
    assert sorted(rows) == list(range(frames))
    for want in expected:
        got = rows[want["index"]]
        assert got["fractions"] == want["classes"] and got["time"] == want["time"]
        assert got["stamp_ns"] == round(want["time"] * 1e9)  # a file: media time


@pytest.mark.live
@needs_mqtt
@pytest.mark.slow
def test_broker_restart_loses_at_most_the_frames_counted_as_dropped(car_video, duc_onnx, broker, subscriber):
    pipeline = Pipeline(
        car_video,
        model=duc_onnx,
        max_frames=70,
        mqtt=broker.url("cams"),
        live={"realtime": True, "reconnect_delay": 0.5, "reconnect_max_delay": 1.0},
    )
    runner = threading.Thread(target=pipeline.run, daemon=True)
    runner.start()
    assert len(subscriber.wait_for("car_detection", 3)) >= 3
    down_at = time.time()
    broker.restart(down=2.0)  # every connection drops; frames keep coming
    back_at = time.time()
    runner.join(timeout=120)
    sink = pipeline.downstream[0]
    out = pipeline.summary().frames_out
    rows = summaries(subscriber.wait_for("car_detection", out - sink.dropped, timeout=20))
    assert sink.reconnects >= 1
    assert out - len(rows) <= sink.dropped  # lost at most what the sink counted as dropped
    captured = [row["capture_time"] for row in rows.values()]
    assert any(down_at < t < back_at for t in captured) and any(t > back_at for t in captured)  # made while down, after
    print(f"frames out {out}, received {len(rows)}, dropped {sink.dropped}, reconnects {sink.reconnects}")
    assert pipeline.summary().extra["output_reconnects"] >= 1


@pytest.mark.live
@needs_mqtt
@pytest.mark.slow
def test_a_full_queue_drops_the_oldest_frames_and_counts_them(car_video, duc_onnx, broker, subscriber):
    from streamseg.outputs.messages.mqtt_sink import MAX_IN_FLIGHT, MqttSink

    frames, queue = MAX_IN_FLIGHT + 10, 4
    sink = MqttSink(
        broker.url("cams"), ("c",) * 19, live=False, queue_size=queue, reconnect_max_delay=1.0
    )  # paho retries each second: back within the close's drain time
    assert sink.connected.wait(10)
    broker.stop()  # away for the whole run: paho holds MAX_IN_FLIGHT frames, our queue the newest 4
    with Pipeline(car_video, model=duc_onnx, max_frames=frames, sinks=[sink]) as pipeline:
        for _ in pipeline:
            pass
        assert sink.dropped == frames - MAX_IN_FLIGHT - queue
        broker.restart(down=0.0)  # back on the same port before the sink's close drains
    rows = summaries(subscriber.wait_for("car_detection", MAX_IN_FLIGHT + queue, timeout=20))
    assert sink.reconnects == 1 and sink.dropped == frames - MAX_IN_FLIGHT - queue
    assert sorted(rows) == [*range(MAX_IN_FLIGHT), *range(frames - queue, frames)]  # the oldest queued ones dropped


@pytest.mark.browser
@needs_foxglove
@pytest.mark.slow
@pytest.mark.skipif(
    not Path(CHROMIUM).exists() or importlib.util.find_spec("playwright") is None,
    reason="needs Debian's chromium and the playwright package",
)
def test_the_viewer_example_renders_the_foxglove_channels_in_chromium(car_video, duc_onnx, tmp_path):
    import functools
    from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer

    from playwright.sync_api import sync_playwright

    # served from this machine, as the docs say: the Foxglove server refuses file:// pages (Origin null)
    files = ThreadingHTTPServer(
        ("127.0.0.1", 0), functools.partial(SimpleHTTPRequestHandler, directory=str(ROOT / "examples"))
    )
    threading.Thread(target=files.serve_forever, daemon=True).start()
    viewer = f"http://127.0.0.1:{files.server_address[1]}/foxglove_viewer.html"
    with Pipeline(car_video, model=duc_onnx, max_frames=200, foxglove_port=0, live={"realtime": True}) as pipeline:
        consumer = threading.Thread(target=lambda: sum(1 for _ in pipeline), daemon=True)
        consumer.start()
        with sync_playwright() as playwright:
            browser = playwright.chromium.launch_persistent_context(
                str(tmp_path / "profile"),
                executable_path=CHROMIUM,
                headless=True,
                args=["--no-sandbox", "--disable-gpu", "--no-first-run"],
                viewport={"width": 1240, "height": 330},
            )
            try:
                page = browser.new_page()
                page.goto(f"{viewer}?ws={pipeline.downstream[0].url}")
                page.wait_for_function("document.querySelectorAll('#classes tr').length > 0", timeout=60_000)
                # both sizes in one script, once both pictures have loaded: the page swaps each picture per
                # message, and one read between two swaps sees a picture still decoding (0 x 0)
                sizes = page.wait_for_function(
                    "() => { const s = ['camera', 'overlay'].map(id => [document.getElementById(id).naturalWidth, "
                    "document.getElementById(id).naturalHeight]); return s.every(([w]) => w > 0) && s; }",
                    timeout=60_000,
                ).json_value()
                status = page.inner_text("#status")
                # read in one script: the page rebuilds the table per message, and between two reads a row may
                # be half built
                rows = page.evaluate(
                    "[...document.querySelectorAll('#classes tr')].map(r => [...r.cells].map(c => c.textContent))"
                )
                topic = page.inner_text("#overlay-topic")
            finally:
                browser.close()
        pipeline.stop()
        consumer.join(timeout=120)
    files.shutdown()
    files.server_close()
    assert sizes == [[768, 432], [768, 432]]
    assert car_video.stem in status and "frame " in status
    assert topic.split() == [f"{PREFIX}/overlay/compressed", "(sensor_msgs/msg/CompressedImage)"]
    shares = [float(cells[1].rstrip("%")) for cells in rows]
    assert shares == sorted(shares, reverse=True) and 0 < sum(shares) <= 100.5


@pytest.mark.live
@needs_mqtt
def test_a_run_whose_broker_acknowledged_its_frames_exits_0(car_video, duc_onnx, broker, subscriber):
    proc = run_cli("run", str(car_video), "--model", str(duc_onnx), "--max-frames", "3", "--mqtt", broker.url("cams"))
    assert proc.returncode == 0, proc.stderr
    assert f"streamseg: delivered: {broker.url('cams')} 3" in proc.stderr  # acknowledged by the broker, not just sent
    assert sorted(summaries(subscriber.wait_for("cams/car_detection", 3))) == [0, 1, 2]
