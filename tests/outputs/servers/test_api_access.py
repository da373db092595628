"""The /sources API as an attacker on the same machine would try it: real HTTP clients on 127.0.0.1.

Changes need the run's bearer token, a JSON body and no foreign Origin; /metrics and /health stay
open; bodies are bounded; /health answers while every client slot is taken. The servers here sit in
front of a pipeline that is built but not started (no model loads): a request that passes the rules
reaches ``add_source`` and gets its "not running" 400.
"""

from __future__ import annotations

import http.client
import json
import os
import socket
import stat
import threading
import time
from typing import Any

import pytest

from streamseg import Pipeline
from streamseg.outputs.servers import MetricsServer
from streamseg.outputs.servers.http import MAX_CLIENTS

pytest.importorskip("prometheus_client", reason="needs the observe extra (prometheus-client)")


@pytest.fixture(autouse=True)
def runtime_dir(tmp_path, monkeypatch):
    folder = tmp_path / "run"
    folder.mkdir()
    monkeypatch.setenv("XDG_RUNTIME_DIR", str(folder))
    return folder / "streamseg"


@pytest.fixture
def server(car_video, duc_onnx):
    pipeline = Pipeline(car_video, model=duc_onnx, max_frames=1)
    metrics = MetricsServer(pipeline, 0)
    yield metrics
    metrics.close()


def call(
    port: int, method: str, path: str, body: bytes | None = None, headers: dict[str, str] | None = None
) -> tuple[int, Any, http.client.HTTPResponse]:
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    try:
        connection.request(method, path, body=body, headers=headers or {})
        response = connection.getresponse()
        data = response.read()
        is_json = response.headers.get("Content-Type") == "application/json"
        return response.status, (json.loads(data) if is_json else {}), response
    finally:
        connection.close()


def post(server: MetricsServer, body: bytes, **headers: str) -> tuple[int, dict]:
    status, answer, _ = call(
        server.port, "POST", "/sources", body, {k.replace("_", "-"): v for k, v in headers.items()}
    )
    return status, answer


def bearer(server: MetricsServer) -> str:
    assert server.access.token is not None
    return f"Bearer {server.access.token.value}"


SOURCE = json.dumps({"uri": "rtsp://192.0.2.1/cam"}).encode()  # allowed: reaches add_source
NOT_RUNNING = (400, {"error": "the pipeline is not running"})  # past every rule: add_source answered


def test_changes_without_the_token_get_401(server):
    status, answer, response = call(server.port, "POST", "/sources", SOURCE, {"Content-Type": "application/json"})
    assert status == 401 and "Bearer" in answer["error"] and response.headers["WWW-Authenticate"].startswith("Bearer")
    assert (
        post(server, SOURCE, Content_Type="application/json", Authorization="Bearer wrong-token-0123456789")[0] == 401
    )
    assert post(server, SOURCE, Content_Type="application/json", Authorization=server.access.token.value)[0] == 401
    assert call(server.port, "DELETE", "/sources/car-detection")[0] == 401
    assert post(server, SOURCE, Content_Type="application/json", Authorization=bearer(server)) == NOT_RUNNING


def test_the_csrf_request_of_the_report_is_refused(server):
    """A web form's text/plain body from another origin: what a browser sends without a preflight."""
    status, answer = post(server, SOURCE, Content_Type="text/plain", Origin="http://evil.example")
    assert status == 403 and "origin" in answer["error"]
    # the token does not make a foreign page's request acceptable
    status, _ = post(
        server, SOURCE, Content_Type="application/json", Origin="http://evil.example", Authorization=bearer(server)
    )
    assert status == 403
    assert post(server, SOURCE, Content_Type="application/json", Origin="null", Authorization=bearer(server))[0] == 403
    # text/plain with the token (no browser): still refused, the body must be JSON
    status, answer = post(server, SOURCE, Content_Type="text/plain", Authorization=bearer(server))
    assert status == 403 and "application/json" in answer["error"]
    assert post(server, SOURCE, Authorization=bearer(server))[0] == 403  # no Content-Type at all
    # the server's own origin (a page it served) is fine
    own = f"http://127.0.0.1:{server.port}"
    assert (
        post(server, SOURCE, Content_Type="application/json", Origin=own, Authorization=bearer(server)) == NOT_RUNNING
    )
    status, _ = post(server, SOURCE, Content_Type="application/json; charset=utf-8", Authorization=bearer(server))
    assert (status, _) == NOT_RUNNING


def test_metrics_health_and_the_sources_list_stay_open(server):
    assert call(server.port, "GET", "/metrics")[0] == 200
    assert call(server.port, "GET", "/health")[0] == 200
    status, answer, _ = call(server.port, "GET", "/sources")
    assert (status, answer) == (200, [])  # not started: no sources yet


def test_the_token_lives_in_a_0600_file_in_a_0700_folder_of_the_users_own(server, runtime_dir):
    token = server.access.token
    assert token is not None and token.path.parent == runtime_dir
    assert stat.S_IMODE(os.stat(runtime_dir).st_mode) == 0o700
    assert stat.S_IMODE(os.stat(token.path).st_mode) == 0o600
    assert token.path.read_text().strip() == token.value and len(token.value) >= 43  # 32 random bytes, base64
    server.close()
    assert not token.path.exists()  # the run's own token goes with it


def test_a_runtime_folder_someone_opened_up_is_closed_again(runtime_dir, car_video, duc_onnx):
    runtime_dir.mkdir(mode=0o777)
    os.chmod(runtime_dir, 0o777)
    metrics = MetricsServer(Pipeline(car_video, model=duc_onnx), 0)
    metrics.close()
    assert stat.S_IMODE(os.stat(runtime_dir).st_mode) == 0o700


def test_the_callers_own_token_file(tmp_path, car_video, duc_onnx):
    own = tmp_path / "token"
    own.write_text("my-own-secret-token-1234\n")
    own.chmod(0o600)
    metrics = MetricsServer(Pipeline(car_video, model=duc_onnx, api_token_file=str(own)), 0)
    try:
        status = post(metrics, SOURCE, Content_Type="application/json", Authorization="Bearer my-own-secret-token-1234")
        assert status == NOT_RUNNING
    finally:
        metrics.close()
    assert own.exists()  # the caller's file is the caller's


@pytest.mark.parametrize("mode", ["read-only", "off"])
def test_api_read_only_and_off(mode, car_video, duc_onnx, runtime_dir):
    metrics = MetricsServer(Pipeline(car_video, model=duc_onnx, api=mode), 0)
    try:
        assert metrics.access.token is None and not list(runtime_dir.glob("*.token"))
        assert call(metrics.port, "GET", "/metrics")[0] == 200 and call(metrics.port, "GET", "/health")[0] == 200
        assert call(metrics.port, "GET", "/sources")[0] == (200 if mode == "read-only" else 404)
        status, answer = post(metrics, SOURCE, Content_Type="application/json")
        assert status == 403 and f"--api {mode}" in answer["error"]
        assert call(metrics.port, "DELETE", "/sources/x")[0] == 403
    finally:
        metrics.close()


@pytest.mark.parametrize(
    ("body", "fault"),
    [
        (b"[" * 65_000, "nested deeper"),  # was: RecursionError, the connection dropped without an answer
        (b'{"uri": "x.mp4", "read_timeout": 1e999}', "out of range"),  # was: "cannot convert float infinity"
        (b'{"uri": "x.mp4", "read_timeout": NaN}', "NaN"),
        (b'{"uri": "x.mp4", "read_timeout": -Infinity}', "Infinity"),
        (b'{"uri": "x.mp4", "read_timeout": 1e300}', "read_timeout"),
        (b'{"uri": "x.mp4", "a": ' + b'{"b": ' * 20 + b"1" + b"}" * 21, "nested deeper"),
        (b'{"uri": "rtsp://192.0.2.1/[[[[[[[[[[[[[[[[[[[[[[[[[["}', "not running"),  # brackets in strings do not nest
    ],
)
def test_bad_bodies_get_a_400_never_a_dropped_connection(server, body, fault):
    status, answer = post(server, body, Content_Type="application/json", Authorization=bearer(server))
    assert status == 400 and fault in answer["error"], answer


def test_health_answers_while_trickling_clients_hold_every_slot(server):
    """32 connections that send a header line now and then hold all the slots; /health still answers."""
    baseline = threading.active_count()
    trickling = []
    try:
        for _ in range(MAX_CLIENTS):
            sock = socket.create_connection(("127.0.0.1", server.port), timeout=10)
            sock.sendall(b"GET /metrics HTTP/1.1\r\nX-Slow: ")
            trickling.append(sock)
        deadline = time.monotonic() + 30
        while threading.active_count() < baseline + MAX_CLIENTS and time.monotonic() < deadline:
            time.sleep(0.02)  # until a handler thread holds each of them
        assert threading.active_count() >= baseline + MAX_CLIENTS
        status, answer, _ = call(server.port, "GET", "/health")
        assert status == 200 and answer["status"] == "starting"
        status, answer, _ = call(server.port, "GET", "/health?verbose=1")
        assert status == 200
        assert call(server.port, "GET", "/metrics")[0] == 503  # the slots really are full
    finally:
        for sock in trickling:
            sock.close()
