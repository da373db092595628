"""The Foxglove WebSocket server refuses web pages of other origins and foreign Host names.

Real WebSocket clients on 127.0.0.1 against a running pipeline's ``--foxglove`` server: the report's
client sending ``Origin: http://evil.example`` got 251 messages in 5 s; now its handshake gets 403.
"""

from __future__ import annotations

import importlib.util
import json
import socket
import threading

import pytest

from streamseg import Pipeline
from tests.support.videos import make_video

pytestmark = pytest.mark.skipif(
    not all(importlib.util.find_spec(m) for m in ("foxglove", "mcap_ros2", "websockets")),
    reason="needs the foxglove extra and websockets",
)
SUBPROTOCOLS = ["foxglove.sdk.v1", "foxglove.websocket.v1"]


@pytest.fixture(scope="module")
def streaming(tmp_path_factory, duc_onnx):
    """A camera (a file played in a loop) served live to Foxglove; yields the server's ws:// URL."""
    clip = make_video(tmp_path_factory.mktemp("fox") / "cam.mp4", width=64, height=48, frames=10, fps=10)
    with Pipeline(clip, model=duc_onnx, foxglove_port=0, live={"realtime": True, "loop": True}) as pipeline:
        consumer = threading.Thread(target=lambda: sum(1 for _ in pipeline), daemon=True)
        consumer.start()
        yield pipeline.downstream[0]
        pipeline.stop()
        consumer.join(timeout=60)


def handshake(url: str, origin: str | None) -> tuple[int, list]:
    """The status of a WebSocket handshake from ``origin`` and, when it opens, the first few messages."""
    from websockets.exceptions import InvalidStatus
    from websockets.sync.client import connect

    try:
        with connect(url, subprotocols=SUBPROTOCOLS, origin=origin, open_timeout=10, max_size=None) as ws:
            first = json.loads(ws.recv(timeout=10))
            return 101, [first]
    except InvalidStatus as err:
        return err.response.status_code, [bytes(err.response.body).decode()]


def raw_handshake(port: int, host: str) -> bytes:
    with socket.create_connection(("127.0.0.1", port), timeout=10) as sock:
        sock.sendall(
            f"GET / HTTP/1.1\r\nHost: {host}\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
            "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n"
            "Sec-WebSocket-Protocol: foxglove.sdk.v1\r\n\r\n".encode()
        )
        return sock.recv(4096)


@pytest.mark.parametrize(
    "origin", ["http://evil.example", "https://evil.example", "null", "http://127.0.0.1.evil.example"]
)
def test_a_foreign_origin_is_refused(streaming, origin):
    status, body = handshake(streaming.url, origin)
    assert status == 403 and "--foxglove-origin" in body[0]


@pytest.mark.parametrize(
    "origin", [None, "https://app.foxglove.dev", "http://127.0.0.1:8000", "http://localhost:8000", "{own}"]
)
def test_clients_without_a_page_the_foxglove_app_and_local_pages_get_the_stream(streaming, origin):
    own = f"http://127.0.0.1:{streaming.port}"
    status, messages = handshake(streaming.url, origin.format(own=own) if origin else None)
    assert status == 101 and messages[0]["op"] == "serverInfo" and messages[0]["name"] == "streamseg"


def test_a_foreign_host_is_refused_on_a_loopback_server(streaming):
    assert raw_handshake(streaming.port, "evil.example").startswith(b"HTTP/1.1 403")
    assert raw_handshake(streaming.port, f"127.0.0.1:{streaming.port}").startswith(b"HTTP/1.1 101")


def test_the_sdks_own_server_is_not_on_the_announced_address(streaming):
    """The SDK listens on a random 127.x.y.z address: a web page cannot find it by scanning 127.0.0.1's ports."""
    assert streaming._server_host != "127.0.0.1" and streaming._server_host.startswith("127.")
    with pytest.raises(OSError):
        socket.create_connection(("127.0.0.1", streaming._server.port), timeout=2).close()


def test_more_origins_can_be_allowed(duc_onnx, tmp_path):
    from streamseg.outputs.messages.foxglove_sink import FoxgloveSink

    sink = FoxgloveSink(0, ("a", "b"), live=True, origins=("https://viewer.example",))
    try:
        assert handshake(sink.url, "https://viewer.example")[0] == 101
        assert handshake(sink.url, "https://app.foxglove.dev")[0] == 403  # the list replaces the default
    finally:
        sink.close()
