"""A short soak: a real RTSP relay restarted twice under a live run; resources stay flat, every restart recovers."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

from tests.support.paths import ROOT
from tests.support.servers import relay_missing

pytestmark = pytest.mark.live  # gst-rtsp-server on 127.0.0.1


@pytest.mark.slow
def test_a_minute_with_two_relay_restarts(duc_onnx, tmp_path):
    pytest.importorskip("prometheus_client", reason="the soak reads /metrics: needs the observe extra")
    reason = relay_missing()
    if reason:
        pytest.skip(reason)
    out = tmp_path / "soak.json"
    proc = subprocess.run(
        [
            sys.executable,
            str(ROOT / "benchmarks" / "soak.py"),
            "--model",
            str(duc_onnx),
            "--minutes",
            "1",
            "--restarts",
            "2",
            "--warmup",
            "15",
            "--json",
            str(out),
        ],
        capture_output=True,
        text=True,
        timeout=240,
    )
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-2000:]
    report = json.loads(out.read_text())
    assert report["survived"] and report["exit_code"] == 0
    assert len(report["recovery_s"]) == 2 and all(r is not None and r < 15 for r in report["recovery_s"])
    assert report["frames_written"] > 50
    # flat: the reconnects come and go, their threads and sockets with them
    assert max(report["threads"]) - min(report["threads"]) <= 10, report["threads"]
    assert max(report["fds"]) - min(report["fds"]) <= 8, report["fds"]
    assert report["rss_growth"] < 0.3, report["rss_mb"]
