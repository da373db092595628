"""Label maps over ZeroMQ: the documented message, and a real subscriber process during a real run."""

from __future__ import annotations

import json
import socket
import subprocess
import sys
import time
import urllib.request
import zlib
from fractions import Fraction

import numpy as np
import pytest
from PIL import Image

from streamseg.frames import Result
from streamseg.outputs.messages.wire import MessageEncoder, decode
from tests.support.paths import ROOT
from tests.support.servers import free_port
from tests.support.videos import moving_scene

pytest.importorskip("zmq", reason="needs the publish extra (pyzmq)")

FRAMES = 10


def streamseg(*args: str, **popen) -> subprocess.Popen:
    return subprocess.Popen(
        [sys.executable, "-m", "streamseg", *args], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, **popen
    )


def test_message_is_a_small_header_and_a_compressed_label_map():
    picture = moving_scene(3, 320, 180)
    labels = (picture[:, :, 0] > 150).astype(np.uint8) * 13 + (picture[:, :, 2] > 150)  # car, sky, road
    result = Result("cam0", 7, 700, Fraction(1, 100), 1.7e9, picture, labels, picture, 0.25)
    topic, header_bytes, payload = MessageEncoder(("road", "sky") + ("x",) * 11 + ("car",), "cam0").encode(result)
    header = json.loads(header_bytes)
    assert topic == b"labels"
    assert header == {
        "v": 1,
        "frame": 7,
        "pts": 700,
        "time": 7.0,
        "capture_time": 1.7e9,
        "latency": 0.25,
        "shape": [180, 320],
        "dtype": "uint8",
        "encoding": "zlib",
        "source": "cam0",
        "classes": ["road", "sky", *["x"] * 11, "car"],
    }
    assert len(payload) < labels.size / 20  # travels compressed
    np.testing.assert_array_equal(np.frombuffer(zlib.decompress(payload), np.uint8).reshape(180, 320), labels)
    decoded_header, decoded = decode([topic, header_bytes, payload])
    assert decoded_header == header
    np.testing.assert_array_equal(decoded, labels)
    with pytest.raises(ValueError, match="not a streamseg label message"):
        decode([b"other", header_bytes, payload])


def test_subscriber_process_receives_label_maps_while_run_serves_metrics(car_video, duc_onnx, tmp_path):
    """A separate subscriber process gets the label maps while /metrics and /health answer."""
    endpoint, metrics_port = f"tcp://127.0.0.1:{free_port()}", free_port()
    received, written = tmp_path / "received", tmp_path / "written"
    # the subscriber first: SUB connects and retries until the publisher binds, so no frame goes unseen
    subscriber = streamseg(
        "subscribe", endpoint, "--json", "-n", str(FRAMES), "--timeout", "60", "--save", str(received)
    )
    run = streamseg(
        "run",
        str(car_video),
        "--model",
        str(duc_onnx),
        "--max-frames",
        str(FRAMES),
        "--labels-out",
        str(written),
        "--publish",
        endpoint,
        "--metrics-port",
        str(metrics_port),
        "--no-progress",
    )
    try:
        health, metrics = _poll_while_running(run, f"http://127.0.0.1:{metrics_port}")
        run_err = run.communicate(timeout=120)[1]
        sub_out, sub_err = subscriber.communicate(timeout=60)
    finally:
        for proc in (run, subscriber):
            proc.kill()
    assert run.returncode == 0, run_err
    assert subscriber.returncode == 0, sub_err
    assert health["status"] == "running" and health["frames"] >= 1
    assert 'streamseg_up{state="running"} 1.0' in metrics and 'streamseg_frames_total{stage="infer"}' in metrics

    headers = [json.loads(line) for line in sub_out.splitlines()]
    assert [h["frame"] for h in headers] == list(range(FRAMES))
    assert all(h["shape"] == [432, 768] and h["source"] == car_video.stem for h in headers)
    assert [h["time"] for h in headers] == pytest.approx([i / 12.5 for i in range(FRAMES)])
    for h in headers:  # the fractions the subscriber computed sum to the whole picture
        assert sum(h["fractions"].values()) == pytest.approx(1.0, abs=1e-4)
    # what arrived over the network is exactly what the run wrote to disk
    for i in range(FRAMES):
        got = np.array(Image.open(received / f"{i:06d}.png"))
        np.testing.assert_array_equal(got, np.array(Image.open(written / f"{i:06d}.png")))


def _poll_while_running(run: subprocess.Popen, base: str) -> tuple[dict, str]:
    """/health and /metrics, read while the run is still segmenting frames."""
    deadline = time.monotonic() + 90
    while time.monotonic() < deadline and run.poll() is None:
        try:
            with urllib.request.urlopen(base + "/health", timeout=5) as response:
                health = json.loads(response.read())
            if health["status"] == "running" and health["frames"] >= 1:
                with urllib.request.urlopen(base + "/metrics", timeout=5) as response:
                    return health, response.read().decode()
        except OSError:
            pass  # not listening yet
        time.sleep(0.1)
    raise AssertionError(f"no running /health before the run ended (exit {run.poll()})")


def test_example_subscriber_needs_only_zmq_and_zlib(car_video, duc_onnx):
    """examples/subscriber.py, a plain consumer that doesn't import streamseg, decodes what run publishes."""
    endpoint = f"tcp://127.0.0.1:{free_port()}"
    example = subprocess.Popen(
        [sys.executable, str(ROOT / "examples" / "subscriber.py"), endpoint, "--count", "3"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    # PUB/SUB drops what is sent before the subscription lands, so publish more maps than it waits for
    run = streamseg(
        "run", str(car_video), "--model", str(duc_onnx), "--max-frames", "30", "--publish", endpoint, "--no-progress"
    )
    try:
        run_err = run.communicate(timeout=120)[1]
        out, err = example.communicate(timeout=60)
    finally:
        for proc in (run, example):
            proc.kill()
    assert run.returncode == 0 and example.returncode == 0, run_err + err
    lines = out.splitlines()
    assert len(lines) == 3 and all("768x432" in line for line in lines), out


def test_publish_to_a_taken_endpoint_is_one_clear_error(car_video, duc_onnx):
    port = free_port()
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", port))
        taken.listen()
        run = streamseg(
            "run", str(car_video), "--model", str(duc_onnx), "--max-frames", "2", "--publish", f"tcp://127.0.0.1:{port}"
        )
        err = run.communicate(timeout=120)[1]
    assert run.returncode != 0
    assert err.strip().splitlines()[-1].startswith(f"streamseg: error: --publish tcp://127.0.0.1:{port}: cannot bind")
    assert "Traceback" not in err
