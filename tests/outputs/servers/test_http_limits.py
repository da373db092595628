"""The metrics and preview servers against hostile clients: capped connections, idle timeouts, Host checks.

Real servers on 127.0.0.1, real sockets; the pipeline behind them is built but
never started (its pages answer "starting"), so no model loads.
"""

from __future__ import annotations

import socket
import threading
import time

import pytest

from streamseg import Pipeline
from streamseg.outputs.servers import MetricsServer, PreviewServer, http

pytest.importorskip("prometheus_client", reason="needs the observe extra (prometheus-client)")


@pytest.fixture
def pipeline(car_video, duc_onnx):
    return Pipeline(car_video, model=duc_onnx, max_frames=1)


@pytest.fixture
def preview(pipeline, monkeypatch):
    monkeypatch.setattr(http, "MAX_CLIENTS", 4)
    monkeypatch.setattr(http, "HANDLER_TIMEOUT", 1.0)
    server = PreviewServer(pipeline, 0, ("road", "car"), ((0, 0, 0), (255, 0, 0)))
    yield server
    server.close()


def request(port: int, path: str, host: str | None = "127.0.0.1", timeout: float = 5.0) -> tuple[socket.socket, bytes]:
    """Send a GET and return the socket and the first bytes of the answer."""
    sock = socket.create_connection(("127.0.0.1", port), timeout=timeout)
    head = f"GET {path} HTTP/1.1\r\n" + (f"Host: {host}\r\n" if host is not None else "") + "\r\n"
    sock.sendall(head.encode())
    return sock, sock.recv(4096)


def status(answer: bytes) -> int:
    return int(answer.split(b" ", 2)[1]) if answer.startswith(b"HTTP/") else 0


def test_connections_beyond_the_cap_get_a_quick_503_and_no_thread(preview):
    baseline = threading.active_count()
    streams = []
    try:
        for _ in range(4):  # MJPEG viewers hold their connection: they fill the cap
            sock, answer = request(preview.port, "/stream.mjpg")
            assert status(answer) == 200, answer
            streams.append(sock)
        started = time.monotonic()
        answers = []
        for _ in range(20):
            sock, answer = request(preview.port, "/stats.json")
            answers.append(status(answer))
            sock.close()
        assert answers == [503] * 20
        assert time.monotonic() - started < 5  # answered at once, not after a timeout
        assert threading.active_count() - baseline <= 4
    finally:
        for sock in streams:
            sock.close()


def test_viewers_that_leave_a_frameless_stream_free_their_slots(preview):
    for _ in range(2):  # twice the cap in all: the first four must have given their slots back
        streams = [request(preview.port, "/stream.mjpg")[0] for _ in range(4)]
        for sock in streams:
            sock.close()
        time.sleep(1.5)  # the handlers notice within their 1 s wait for a frame
    sock, answer = request(preview.port, "/stats.json")
    sock.close()
    assert status(answer) == 200, answer


def test_idle_connections_are_closed_after_the_handler_timeout(preview):
    baseline = threading.active_count()
    idle = [socket.create_connection(("127.0.0.1", preview.port), timeout=10) for _ in range(3)]
    time.sleep(0.3)
    assert threading.active_count() - baseline == 3  # one handler each, while they last
    started = time.monotonic()
    for sock in idle:
        assert sock.recv(1024) == b""  # the server hung up
        sock.close()
    waited = time.monotonic() - started
    assert 0.4 < waited < 4, waited
    deadline = time.monotonic() + 3
    while threading.active_count() > baseline and time.monotonic() < deadline:
        time.sleep(0.05)
    assert threading.active_count() == baseline
    sock, answer = request(preview.port, "/stats.json")  # and it still serves
    sock.close()
    assert status(answer) == 200


@pytest.mark.parametrize(
    ("host", "expected"),
    [
        ("evil.example", 403),
        ("evil.example:8080", 403),
        ("127.0.0.1.evil.example", 403),
        ("localhost.", 403),
        ("localhost", 200),
        ("127.0.0.1:{port}", 200),
        ("[::1]:{port}", 200),
        ("LOCALHOST:{port}", 200),
        (None, 200),
    ],
)
def test_a_loopback_server_answers_only_local_host_headers(pipeline, host, expected):
    metrics = MetricsServer(pipeline, 0)
    try:
        sock, answer = request(metrics.port, "/health", None if host is None else host.format(port=metrics.port))
        sock.close()
    finally:
        metrics.close()
    assert status(answer) == expected, answer


def test_serve_host_opens_it_to_any_host_header(pipeline):
    metrics = MetricsServer(pipeline, 0, host="0.0.0.0")  # --serve-host 0.0.0.0: the user asked for the network
    try:
        sock, answer = request(metrics.port, "/health", "camera-box.lan:9100")
        sock.close()
    finally:
        metrics.close()
    assert status(answer) == 200, answer
