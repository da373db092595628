"""Live inputs that are not there yet, or that send garbage: waited for, given up on, reconnected, reported.

Real servers on 127.0.0.1: the RTSP relay and camera simulator of the other live
tests, and a TCP server that streams Matroska/MJPEG whose pictures turn into
undecodable packets. The model is a 1x1 convolution, so inference is instant.
"""

from __future__ import annotations

import io
import json
import signal
import socket
import subprocess
import sys
import threading
import time
import urllib.request
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import av
import numpy as np
import pytest

from streamseg.errors import SourceError
from streamseg.sources import SourceOptions, open_source
from tests.support.live import streamseg
from tests.support.onnx_models import conv_model
from tests.support.paths import ROOT
from tests.support.servers import Camera, RtspRelay, free_port, relay_missing
from tests.support.videos import moving_scene

SPEC = ROOT / "configs" / "fcn_resnet50.yaml"


@pytest.fixture(scope="module")
def tiny_model(tmp_path_factory) -> Path:
    pytest.importorskip("onnx")
    return conv_model(tmp_path_factory.mktemp("model") / "conv21.onnx", 21)


def health(port: int) -> dict | None:
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/health", timeout=2) as response:
            return json.loads(response.read())
    except urllib.error.HTTPError as err:
        return json.loads(err.read())
    except OSError:
        return None


@pytest.mark.slow
def test_dead_port_gives_up_after_the_retries_in_one_line(tiny_model, tmp_path):
    url = f"rtsp://alice:p@ss@127.0.0.1:{free_port()}/cam?token=s3cret"
    proc = subprocess.run(
        [
            sys.executable,
            "-m",
            "streamseg",
            "run",
            url,
            "--model",
            str(tiny_model),
            "--spec",
            str(SPEC),
            "--summary",
            str(tmp_path / "s.csv"),
            "--reconnect-give-up",
            "2",
            "--reconnect-delay",
            "0.2",
        ],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    lines = proc.stderr.strip().splitlines()
    assert proc.returncode == 2, proc.stderr
    assert len([line for line in lines if "retrying in" in line]) == 2  # two retries, then the give-up
    assert lines[-1].startswith("streamseg: error: cannot open rtsp://***@127.0.0.1:"), proc.stderr
    assert lines[-1].endswith("Connection refused (gave up after 3 attempts)"), proc.stderr
    assert "p@ss" not in proc.stderr and "alice" not in proc.stderr and "s3cret" not in proc.stderr


@pytest.mark.parametrize(
    "url", ["rtsp://127.0.0.1:99999/x", "rtsp:///x", "rtmp://127.0.0.1:port/live", "udp://127.0.0.1:-5"]
)
def test_malformed_url_fails_at_once(url, caplog):
    # no retry: one would log "retrying in", and with no retries allowed end in "gave up", not "malformed URL"
    with caplog.at_level("WARNING"), pytest.raises(SourceError, match="^malformed URL"):
        open_source(url, options=SourceOptions(reconnect_give_up=0))
    assert "retrying in" not in caplog.text


def test_malformed_url_is_one_line_from_the_cli(tiny_model, tmp_path):
    proc = subprocess.run(
        [
            sys.executable,
            "-m",
            "streamseg",
            "run",
            "rtsp://127.0.0.1:99999/x",
            "--model",
            str(tiny_model),
            "--spec",
            str(SPEC),
            "--summary",
            str(tmp_path / "s.csv"),
        ],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert proc.returncode == 2
    assert proc.stderr.strip() == "streamseg: error: malformed URL rtsp://127.0.0.1:99999/x: Port out of range 0-65535"


@pytest.mark.live
@pytest.mark.slow
def test_camera_that_comes_up_after_streamseg_starts_is_picked_up(tiny_model, tmp_path):
    reason = relay_missing()
    if reason:
        pytest.skip(reason)
    relay = RtspRelay("cam")  # its port is chosen, nothing listens yet
    summary = tmp_path / "s.csv"
    proc = streamseg(
        "run",
        relay.url("cam"),
        "--model",
        str(tiny_model),
        "--spec",
        str(SPEC),
        "--size",
        "64",
        "--summary",
        str(summary),
        "--max-frames",
        "5",
        "--reconnect-delay",
        "0.3",
        "--reconnect-max-delay",
        "1",
        "--read-timeout",
        "2",
    )
    err = Lines(proc.stderr)
    err.start()
    try:
        assert err.wait_for("Connection refused; retrying in", 60), err.text()  # refused: retried, not fatal
        with relay:
            err.wait_for("retrying in", 5)  # the relay answers, but nothing is published yet
            assert proc.poll() is None, err.text()
            with Camera(relay.url("cam-in"), fps=15, size="160x96"):
                proc.wait(timeout=60)
    finally:
        proc.kill()
        err.join(timeout=5)
    assert proc.returncode == 0, err.text()[-3000:]
    rows = summary.read_text().splitlines()[1:]
    assert 1 <= len(rows) <= 5, err.text()[-3000:]  # frames came through from the camera that came up late


class Lines(threading.Thread):
    """Collects a subprocess's stderr lines as they come."""

    def __init__(self, stream):
        super().__init__(daemon=True)
        self.stream, self.lines = stream, []

    def run(self) -> None:
        for line in self.stream:
            self.lines.append(line)

    def text(self) -> str:
        return "".join(self.lines)

    def wait_for(self, needle: str, timeout: float) -> bool:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if needle in self.text():
                return True
            time.sleep(0.05)
        return False


def garbage_stream(valid: int = 30, garbage: int = 400, fps: int = 20) -> tuple[bytes, int]:
    """Matroska/MJPEG: ``valid`` pictures, then ``garbage`` packets of random bytes; and where the garbage starts."""
    buffer = io.BytesIO()
    container = av.open(buffer, "w", format="matroska")
    stream = container.add_stream("mjpeg", rate=fps)
    stream.width, stream.height, stream.pix_fmt = 160, 96, "yuvj420p"
    for i in range(valid):
        frame = av.VideoFrame.from_ndarray(moving_scene(i, 160, 96), format="rgb24").reformat(format="yuvj420p")
        frame.pts = i
        for packet in stream.encode(frame):
            container.mux(packet)
    for packet in stream.encode():
        container.mux(packet)
    valid_bytes = buffer.tell()
    rng = np.random.default_rng(0)
    for j in range(garbage):
        packet = av.Packet(rng.integers(0, 256, 1500, dtype=np.uint8).tobytes())
        packet.stream, packet.time_base = stream, stream.time_base
        packet.pts = packet.dts = int((valid + j) / fps / stream.time_base)
        container.mux(packet)
    container.close()
    return buffer.getvalue(), valid_bytes


class GarbageServer(threading.Thread):
    """Accepts TCP connections; sends each the stream at about real time, then holds the connection open."""

    def __init__(self, data: bytes, valid_bytes: int, seconds_valid: float = 1.5):
        super().__init__(daemon=True)
        self.data, self.rate = data, valid_bytes / seconds_valid  # bytes per second
        self.listener = socket.create_server(("127.0.0.1", 0))
        self.port = self.listener.getsockname()[1]
        self.connections = 0
        self._halt = threading.Event()

    def run(self) -> None:
        self.listener.settimeout(0.2)
        while not self._halt.is_set():
            try:
                conn, _ = self.listener.accept()
            except TimeoutError:
                continue
            self.connections += 1
            threading.Thread(target=self._send, args=(conn,), daemon=True).start()

    def _send(self, conn: socket.socket) -> None:
        chunk = 4096
        try:
            with conn:
                for start in range(0, len(self.data), chunk):
                    conn.sendall(self.data[start : start + chunk])
                    if self._halt.wait(chunk / self.rate):
                        return
                self._halt.wait()  # hold it open: a stream that stalls is the read timeout's business
        except OSError:
            pass  # the client hung up

    def stop(self) -> None:
        self._halt.set()
        self.join(timeout=5)
        self.listener.close()


@pytest.mark.slow
@pytest.mark.timing
def test_undecodable_stream_is_reconnected_and_reported_in_health(tiny_model, tmp_path):
    pytest.importorskip("prometheus_client", reason="--metrics-port needs the observe extra (prometheus-client)")
    server = GarbageServer(*garbage_stream())
    server.start()
    port = free_port()
    proc = streamseg(
        "run",
        f"tcp://127.0.0.1:{server.port}",
        "--model",
        str(tiny_model),
        "--spec",
        str(SPEC),
        "--size",
        "64",
        "--summary",
        str(tmp_path / "s.csv"),
        "--metrics-port",
        str(port),
        "--undecodable-timeout",
        "1.5",
        "--reconnect-delay",  # "reconnecting" lasts a second between polls of /health, even on a busy core
        "1",
        "--reconnect-max-delay",
        "1",
    )
    seen: list[dict] = []
    try:
        deadline = time.monotonic() + 120  # a bound for a busy machine; the loop ends once the states are seen
        while time.monotonic() < deadline and proc.poll() is None:
            state = health(port)
            if state is not None and (not seen or state != seen[-1]):
                seen.append(state)
            if (
                server.connections >= 2
                and any(s["status"] == "reconnecting" for s in seen)
                and seen[-1]["status"] == "running"
            ):
                break
            time.sleep(0.05)
        proc.send_signal(signal.SIGTERM)
        _, err = proc.communicate(timeout=30)
    finally:
        proc.kill()
        server.stop()
    assert proc.returncode == 0, err[-3000:]
    reconnecting = [s for s in seen if s["status"] == "reconnecting"]
    assert reconnecting, seen
    assert reconnecting[0]["source_problem"] == "lost: no decodable picture for 1.5 s"
    assert server.connections >= 2 and seen[-1]["status"] == "running", (server.connections, seen[-5:])
    assert "lost (no decodable picture for 1.5 s)" in err


class NotYetHandler(BaseHTTPRequestHandler):
    """404 for the first ``misses`` requests (a relay before anyone publishes), then the stream."""

    misses = 2
    requests = 0
    data = b""

    def do_GET(self) -> None:
        cls = type(self)
        cls.requests += 1
        if cls.requests <= cls.misses:
            self.send_error(404)
            return
        self.send_response(200)
        self.send_header("Content-Type", "video/x-matroska")
        self.send_header("Content-Length", str(len(cls.data)))
        self.end_headers()
        self.wfile.write(cls.data)

    def log_message(self, *args) -> None:
        pass


def test_http_404_on_first_open_is_retried_until_the_stream_appears():
    handler = type("Handler", (NotYetHandler,), {"data": garbage_stream(valid=10, garbage=0)[0]})
    server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    url = f"http://127.0.0.1:{server.server_address[1]}/cam.mkv"
    try:
        source = open_source(url, options=SourceOptions(reconnect_delay=0.1, reconnect_give_up=5))
        try:
            frames = [frame for _, frame in zip(range(3), source.frames())]
        finally:
            source.close()
        with pytest.raises(SourceError, match=r"404.*\(gave up after 2 attempts\)"):
            handler.requests = 0  # refused again, and this time the limit is one retry
            open_source(url, options=SourceOptions(reconnect_delay=0.1, reconnect_give_up=1))
    finally:
        server.shutdown()
        server.server_close()
    assert len(frames) == 3 and frames[0].image.shape == (96, 160, 3)


class SilentServer:
    """A TCP server on 127.0.0.1 that accepts every connection and says nothing; or says ``reply`` and hangs up."""

    def __init__(self, reply: bytes | None = None):
        self.reply = reply
        self.sock = socket.create_server(("127.0.0.1", 0))
        self.port = self.sock.getsockname()[1]
        self.held: list[socket.socket] = []
        self.thread = threading.Thread(target=self._serve, daemon=True)
        self.thread.start()

    def _serve(self) -> None:
        while True:
            try:
                conn, _ = self.sock.accept()
            except OSError:  # closed
                return
            if self.reply is not None:
                conn.sendall(self.reply)
                conn.close()
                continue
            self.held.append(conn)  # open, and silent

    def close(self) -> None:
        self.sock.close()
        for conn in self.held:
            conn.close()


@pytest.mark.slow
@pytest.mark.parametrize("scheme, waits", [("rtsp", 1), ("http", 5)])  # RTSP's socket timeout; the open timeout
def test_a_camera_that_never_answers_is_named_with_its_retries(tiny_model, tmp_path, scheme, waits):
    """It said "Invalid data found when processing input" (RTSP) or "Immediate exit requested" on every retry."""
    server = SilentServer()
    try:
        proc = subprocess.run(
            [
                sys.executable, "-m", "streamseg", "run", f"{scheme}://127.0.0.1:{server.port}/cam",
                "--model", str(tiny_model), "--spec", str(SPEC), "--summary", str(tmp_path / "s.csv"),
                "--read-timeout", "1", "--reconnect-give-up", "1", "--reconnect-delay", "0.5",
            ],
            capture_output=True, text=True, timeout=120, check=False,
        )  # fmt: skip
    finally:
        server.close()
    silent = f"cannot open {scheme}://127.0.0.1:{server.port}/cam: no answer from 127.0.0.1:{server.port} in {waits} s"
    lines = proc.stderr.strip().splitlines()
    assert proc.returncode == 2, proc.stderr
    assert f"streamseg: WARNING: {silent}; retrying in 0.5 s (attempt 2)" in lines, proc.stderr
    assert lines[-1] == f"streamseg: error: {silent} (gave up after 2 attempts)"
    assert "Invalid data" not in proc.stderr and "Immediate exit" not in proc.stderr


def test_a_server_that_answers_nonsense_is_not_called_silent():
    server = SilentServer(reply=b"SSH-2.0-OpenSSH_9.2\r\n")  # not RTSP, answered well within the timeout
    try:
        with pytest.raises(SourceError) as failed:
            open_source(
                f"rtsp://127.0.0.1:{server.port}/cam",
                options=SourceOptions(read_timeout=20, reconnect_give_up=0),
            )
    finally:
        server.close()
    assert "no answer" not in str(failed.value) and "Invalid data" in str(failed.value)
