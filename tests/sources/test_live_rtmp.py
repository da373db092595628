"""RTMP in and out against a real server: camera -> nginx-rtmp -> streamseg -> nginx-rtmp -> reader.

nginx's RTMP module (Debian libnginx-mod-rtmp) relays ``rtmp://…/live/NAME``
from its publisher to its players. Everything runs on 127.0.0.1.
"""

from __future__ import annotations

import re
import signal
import time
from pathlib import Path

import numpy as np
import pytest

from tests.support.live import CAMERA_SIZE, live_counts, stop, streamseg
from tests.support.servers import Camera, RtmpServer, StreamReader, rtmp_missing

pytestmark = pytest.mark.live  # nginx-rtmp on 127.0.0.1


@pytest.fixture
def server(tmp_path: Path):
    reason = rtmp_missing()
    if reason:
        pytest.skip(reason)
    with RtmpServer(tmp_path / "nginx") as rtmp:
        yield rtmp


@pytest.fixture
def camera(server):
    with Camera(server.url("cam"), fps=15, size="x".join(map(str, CAMERA_SIZE))):
        reader = StreamReader(server.url("cam"))
        reader.start()
        live = reader.wait_for_frames(3, timeout=20)
        reader.stop()
        assert live, "the camera simulator never reached nginx-rtmp"
        yield


@pytest.mark.slow
def test_republishes_rtmp_to_rtmp_through_a_server_restart(server, camera, duc_onnx):
    proc = streamseg(
        "run", server.url("cam"), "-o", server.url("out"), "--model", str(duc_onnx), "--reconnect-max-delay", "2"
    )
    out = StreamReader(server.url("out"), read_stamps=True)
    out.start()
    try:
        assert out.wait_for_frames(20, timeout=40), "no segmented frames came back over RTMP"
        server.restart(down=1.0)
        since = time.monotonic()
        assert out.wait_for_frames(10, since=since, timeout=40), "frames did not flow again after the restart"
    finally:
        out.stop()
        err = stop(proc, signal.SIGINT)

    assert out.sizes == {CAMERA_SIZE}
    # the camera's pictures, live: FFmpeg's FLV probing hands over seconds of backlog at each (re)connect,
    # which the reader drains in a burst, so only the best age is near real time
    assert min(out.ages) < 1000, out.ages
    assert np.median(out.whites) < 215, out.whites  # segmented: the overlay tints the stamp's white blocks
    assert int(re.search(r"(\d+) frames in", err)[1]) >= 30
    inputs, outputs = live_counts(err)
    assert inputs >= 1 and outputs >= 1
