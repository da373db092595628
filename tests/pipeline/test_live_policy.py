"""Live policy: a slow sink drops the oldest frames and stays bounded; backoff; clean failures."""

from __future__ import annotations

import time
from pathlib import Path

import pytest

from streamseg.backoff import Backoff
from streamseg.frames import Result
from streamseg.pipeline import Pipeline
from tests.support.cli import run_cli
from tests.support.servers import free_port
from tests.support.videos import make_video

PAGE = 4096


def rss_bytes() -> int:
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * PAGE


class SlowSink:
    """Takes 0.15 s per frame (a congested network, a slow disk); notes each frame's age and the RSS."""

    def __init__(self):
        self.ages: list[float] = []
        self.pts: list[int] = []
        self.rss: list[int] = []

    def write(self, result: Result) -> None:
        self.ages.append(time.time() - result.capture_time)
        self.pts.append(result.pts)
        self.rss.append(rss_bytes())
        time.sleep(0.15)

    def close(self, complete: bool = True) -> None:
        pass


@pytest.mark.slow
def test_slow_sink_drops_oldest_frames_and_stays_bounded(duc_onnx, tmp_path: Path):
    video = make_video(tmp_path / "cam.mp4", width=320, height=192, frames=25, fps=25)
    sink = SlowSink()
    pipeline = Pipeline(
        str(video), duc_onnx, sinks=[sink], queue_size=2, max_frames=75, live={"realtime": True, "loop": True}
    )
    summary = pipeline.run()

    assert summary.frames_out == 75  # a live source's --max-frames counts frames written
    dropped = sum(summary.dropped.values())
    assert dropped > 0 and summary.frames_in > 75  # the paced source never waited for the sink
    in_flight = summary.frames_in - summary.frames_out - dropped  # inferred after the 75th, not written
    assert 0 <= in_flight <= 8  # every frame is either written, counted as dropped, or was in a stage
    assert all(peak <= 2 for peak in summary.queue_peaks.values())
    assert all(b > a for a, b in zip(sink.pts, sink.pts[1:]))  # capture-clock pts, monotonic
    # bounded: what the sink sees is never older than the queues can hold, and memory does not grow
    assert max(sink.ages) < 2.5, max(sink.ages)
    half = len(sink.rss) // 2
    assert max(sink.rss[half:]) - max(sink.rss[:half]) < 40 * 2**20


def test_backoff_doubles_to_a_ceiling_and_gives_up_when_told():
    backoff = Backoff(0.5, 10.0)
    assert [backoff.next() for _ in range(7)] == [0.5, 1.0, 2.0, 4.0, 8.0, 10.0, 10.0]
    backoff.reset()
    assert backoff.next() == 0.5
    limited = Backoff(0.5, 10.0, give_up=2)
    assert [limited.next() for _ in range(3)] == [0.5, 1.0, None]


def test_unreachable_stream_is_one_line_without_credentials(duc_onnx, tmp_path: Path):
    # --reconnect-give-up 0: no retry of the first connection either (by default a camera is waited for)
    url = f"rtsp://alice:s3cret@127.0.0.1:{free_port()}/cam"
    proc = run_cli(
        "run", url, "-o", str(tmp_path / "o.mp4"), "--model", str(duc_onnx), "--reconnect-give-up", "0", timeout=60
    )
    assert proc.returncode != 0
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("streamseg: error: cannot open rtsp://***@127.0.0.1:"), proc.stderr
    assert "s3cret" not in proc.stderr and "alice" not in proc.stderr
