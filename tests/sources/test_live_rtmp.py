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

from tests.support.camera import now_millis, taken_since
from tests.support.live import CAMERA_SIZE, live_counts, stop, streamseg
from tests.support.servers import Camera, RtmpServer, StreamReader, rtmp_missing

pytestmark = [pytest.mark.live, pytest.mark.timing]  # nginx-rtmp on 127.0.0.1; waits for frames by the clock


@pytest.fixture
def server(tmp_path: Path):
    reason = rtmp_missing()
    if reason:
        pytest.skip(reason)
    with RtmpServer(tmp_path / "nginx") as rtmp:
        yield rtmp


@pytest.fixture
def camera(server):
    """The camera's start, as a ``now_millis()`` capture stamp: every picture it sends is stamped later."""
    started = now_millis()
    with Camera(server.url("cam"), fps=15, size="x".join(map(str, CAMERA_SIZE))):
        reader = StreamReader(server.url("cam"))
        reader.start()
        live = reader.wait_for_frames(3, timeout=20)
        reader.stop()
        assert live, "the camera simulator never reached nginx-rtmp"
        yield started


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
        since, back = time.monotonic(), now_millis()  # the server is up again: nothing taken from here was queued
        assert out.wait_for_frames(10, since=since, timeout=40), "frames did not flow again after the restart"
        # live through the restart: a picture the camera took after it comes out (not only what was queued before)
        assert out.wait_for_pictures_taken_since(back, timeout=40), "no picture taken after the restart came out"
    finally:
        out.stop()
        err = stop(proc, signal.SIGINT)
    ended = now_millis()

    assert out.sizes == {CAMERA_SIZE}
    # the camera's own pictures: every stamp read back is a capture time within this test, none from before the
    # camera started or after the reading (how old they are on arrival depends on the CPU; the restart check above
    # is what shows the output live)
    assert all(taken_since(stamp, camera) and taken_since(ended, stamp) for stamp in out.stamps), out.stamps
    assert np.median(out.whites) < 215, out.whites  # segmented: the overlay tints the stamp's white blocks
    assert int(re.search(r"(\d+) frames in", err)[1]) >= 30
    inputs, outputs = live_counts(err)
    assert inputs >= 1 and outputs >= 1
