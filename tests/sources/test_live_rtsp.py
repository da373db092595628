"""RTSP in and out against a real server: camera -> relay -> streamseg -> relay -> reader.

The relay is gst-rtsp-server (tests/support/rtsp_relay.py): publishers RECORD to
``/NAME-in`` and readers PLAY ``/NAME``. Everything runs on 127.0.0.1.
"""

from __future__ import annotations

import re
import signal
import subprocess
import time
from pathlib import Path

import av
import numpy as np
import pytest

from tests.support.live import CAMERA_SIZE, live_counts, stop, streamseg
from tests.support.servers import Camera, RtspRelay, StreamReader, free_port, relay_missing

pytestmark = pytest.mark.live  # gst-rtsp-server on 127.0.0.1


@pytest.fixture
def relay():
    reason = relay_missing()
    if reason:
        pytest.skip(reason)
    with RtspRelay("cam", "out") as server:
        yield server


@pytest.fixture
def camera(relay):
    with Camera(relay.url("cam-in"), fps=15, size="x".join(map(str, CAMERA_SIZE))):
        reader = StreamReader(relay.url("cam"), options={"rtsp_transport": "tcp"})
        reader.start()
        live = reader.wait_for_frames(3, timeout=20)
        reader.stop()
        assert live, "the camera simulator never reached the relay"
        yield


def increasing(values: list[int | None]) -> bool:
    known = [v for v in values if v is not None]
    return all(b > a for a, b in zip(known, known[1:]))


@pytest.mark.slow
def test_republishes_to_rtsp_udp_and_hls_and_stops_cleanly_on_sigint(relay, camera, duc_onnx, tmp_path: Path):
    udp_port = free_port()
    udp = StreamReader(f"udp://127.0.0.1:{udp_port}")
    udp.start()
    hls = tmp_path / "hls"
    proc = streamseg(
        "run",
        relay.url("cam"),
        "-o",
        relay.url("out-in"),
        "-o",
        f"udp://127.0.0.1:{udp_port}",
        "-o",
        f"hls:{hls}",
        "--model",
        str(duc_onnx),
    )
    out = StreamReader(relay.url("out"), options={"rtsp_transport": "tcp"}, read_stamps=True)
    out.start()
    try:
        assert out.wait_for_frames(20, timeout=40), "no segmented frames came back from the relay"
        assert udp.wait_for_frames(20, timeout=20), "no frames on the UDP output"
    finally:
        out.stop()
        udp.stop()
        err = stop(proc, signal.SIGINT)

    assert out.sizes == {CAMERA_SIZE}
    # the camera's own pictures come back, fresh (the stamp decodes to a capture time moments ago) ...
    assert np.median(out.ages) < 3000, out.ages
    # ... and segmented: each Cityscapes colour blended at alpha 0.5 takes white below ~205 in some channel
    assert np.median(out.whites) < 215, out.whites
    assert udp.sizes == {CAMERA_SIZE}
    assert all(increasing(pts) for pts in udp.pts)  # our own timestamps, from capture time
    frames_in = int(re.search(r"(\d+) frames in", err)[1])
    assert frames_in >= 20
    assert live_counts(err) == (0, 0)
    # HLS: a playlist with its end tag and segments PyAV decodes
    playlist = (hls / "index.m3u8").read_text()
    assert "#EXT-X-ENDLIST" in playlist
    with av.open(str(hls / "index.m3u8")) as container:
        pts = [frame.pts for frame in container.decode(video=0)]
        size = (container.streams.video[0].width, container.streams.video[0].height)
    assert len(pts) >= 10 and size == CAMERA_SIZE and increasing(pts)


@pytest.mark.slow
def test_keeps_running_through_three_server_restarts_without_leaking_credentials(relay, camera, duc_onnx):
    cam = relay.url("cam").replace("rtsp://", "rtsp://alice:s3cret@")
    dest = relay.url("out-in").replace("rtsp://", "rtsp://bob:hunter2@")
    proc = streamseg("-v", "run", cam, "-o", dest, "--model", str(duc_onnx), "--reconnect-max-delay", "2")
    out = StreamReader(relay.url("out"), options={"rtsp_transport": "tcp"})
    out.start()
    try:
        assert out.wait_for_frames(10, timeout=40), "no segmented frames before the restarts"
        for restart in range(3):
            relay.restart(down=1.0)
            since = time.monotonic()
            flowing = out.wait_for_frames(10, since=since, timeout=40)
            assert flowing, f"frames did not flow again after restart {restart + 1}"
    finally:
        out.stop()
        err = stop(proc, signal.SIGTERM)

    inputs, outputs = live_counts(err)
    assert inputs >= 3 and outputs >= 3
    assert "reconnecting in" in err and "output failed" in err  # one line per event, URL redacted
    assert "s3cret" not in err and "hunter2" not in err and "alice" not in err
    assert "rtsp://***@127.0.0.1" in err


@pytest.mark.slow
def test_gives_up_after_the_limit_and_keeps_the_file_output_valid(relay, camera, duc_onnx, tmp_path: Path):
    video = tmp_path / "out.mp4"
    proc = streamseg(
        "run",
        relay.url("cam"),
        "-o",
        str(video),
        "--model",
        str(duc_onnx),
        "--reconnect-give-up",
        "2",
        "--reconnect-delay",
        "0.2",
        "--read-timeout",
        "2",
    )
    deadline = time.monotonic() + 60  # frames flow into the file (a loaded machine may take a while to start)
    while (
        time.monotonic() < deadline and proc.poll() is None and not (video.exists() and video.stat().st_size > 20_000)
    ):
        time.sleep(0.2)
    time.sleep(1)
    relay.stop()
    try:
        _, err = proc.communicate(timeout=40)
    except subprocess.TimeoutExpired:
        proc.kill()
        raise
    assert proc.returncode != 0
    assert "Traceback" not in err
    assert re.search(r"streamseg: error: rtsp://127\.0\.0\.1:\d+/cam: gave up after 2 reconnect attempts", err), err
    with av.open(str(video)) as container:
        frames = sum(1 for _ in container.decode(video=0))
    assert frames > 0


def test_rtsp_output_connection_sends_without_waiting_for_acks(relay):
    """A frame leaves as many small writes (one per RTP packet); with Nagle's algorithm on, every write
    after the first waited for the relay's delayed ACK (output -> viewer p50 34 ms instead of 9)."""
    import os
    import socket
    from fractions import Fraction

    from streamseg.frames import Result, StreamInfo
    from streamseg.outputs.streams.nodelay import socket_fds
    from streamseg.outputs.streams.stream import StreamSink

    info = StreamInfo("test", 320, 192, Fraction(1, 90000), Fraction(15), None, live=True)
    sink = StreamSink(relay.url("out-in"), info)
    picture = np.random.default_rng(0).integers(0, 256, (192, 320, 3), np.uint8)  # noise: many packets
    try:
        for index in range(3):
            sink.write(Result("test", index, None, None, time.time(), picture, picture[..., 0], picture, 0.0))
        assert sink.frames == 3
        to_relay = []
        for fd in socket_fds():
            sock = socket.socket(fileno=os.dup(fd))
            try:
                inet = sock.family in (socket.AF_INET, socket.AF_INET6)  # not the Unix sockets earlier tests left
                if inet and sock.type == socket.SOCK_STREAM and sock.getpeername()[1] == relay.port:
                    to_relay.append(sock.getsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY))
            except OSError:  # not connected
                pass
            finally:
                sock.close()
        assert to_relay and all(to_relay), to_relay
    finally:
        sink.close()
