"""Recordings survive a kill: SIGKILL mid-run, then decode what is on disk."""

from __future__ import annotations

import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from tests.support.mp4_fragments import complete_fragment_frames, is_fragmented, playable_frames
from tests.support.videos import make_video, read_video

FPS = 10


def start_run(*args: str) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "-m", "streamseg", "run", *args], stderr=subprocess.PIPE, text=True)


def kill_after(proc: subprocess.Popen, progress, count: int, timeout: float = 120) -> int:
    """SIGKILL ``proc`` once ``progress()`` reaches ``count``; returns the progress seen at the kill."""
    deadline = time.time() + timeout
    seen = 0
    while time.time() < deadline and proc.poll() is None:
        seen = progress()
        if seen >= count:
            break
        time.sleep(0.05)
    assert proc.poll() is None, f"the run ended before it could be killed:\n{proc.stderr.read()}"
    proc.send_signal(signal.SIGKILL)
    proc.wait(timeout=30)
    proc.stderr.close()
    return seen


def read_video_streams(path: Path) -> list[str]:
    import av

    with av.open(str(path)) as container:
        return [s.type for s in container.streams]


def summary_rows(path: Path) -> int:
    """Complete CSV rows (header excluded)."""
    if not path.exists():
        return 0
    return max(0, path.read_text().count("\n") - 1)


@pytest.fixture(scope="module")
def long_video(tmp_path_factory) -> Path:
    """30 s at 10 fps with audio: far longer than any kill below waits."""
    return make_video(
        tmp_path_factory.mktemp("kill") / "long.mp4", width=160, height=96, frames=300, fps=FPS, audio=True
    )


@pytest.mark.slow
def test_sigkill_leaves_an_mp4_that_plays_up_to_its_last_fragment(tmp_path, long_video, duc_onnx):
    out, labels = tmp_path / "out.mp4", tmp_path / "labels"
    proc = start_run(str(long_video), "-o", str(out), "--model", str(duc_onnx), "--labels-out", str(labels))
    written = kill_after(proc, lambda: len(list(labels.glob("*.png"))), 35)
    assert proc.returncode == -signal.SIGKILL

    assert is_fragmented(out)
    in_fragments, fragments = complete_fragment_frames(out)
    frames = playable_frames(out)
    assert fragments >= 2 and len(frames) >= in_fragments  # every frame of every complete fragment decodes
    # a fragment is cut at least every second: at most that, plus the encoder's few frames of delay, is lost
    assert len(frames) >= written - 2 * FPS
    pts = [p for p, _, _ in frames]
    assert pts == sorted(set(pts)) and frames[0][1] and all(std > 0 for _, _, std in frames)
    assert read_video_streams(out) == ["video", "audio"]
    # label maps are whole PNGs (written under a temporary name, then renamed)
    for png in labels.glob("*.png"):
        assert Image.open(png).mode == "P" and np.asarray(Image.open(png)).shape == (96, 160)
    assert summary_rows(labels / "summary.csv") >= written - 1


@pytest.mark.slow
def test_sigkill_leaves_an_mkv_that_plays_up_to_its_last_cluster(tmp_path, long_video, duc_onnx):
    out, summary = tmp_path / "out.mkv", tmp_path / "summary.csv"
    proc = start_run(str(long_video), "-o", str(out), "--model", str(duc_onnx), "--summary", str(summary))
    written = kill_after(proc, lambda: summary_rows(summary), 35)
    frames = playable_frames(out)
    assert len(frames) >= written - 2 * FPS  # clusters are cut every second and flushed
    assert all(std > 0 for _, _, std in frames)


@pytest.mark.slow
def test_sigkill_during_a_segmented_recording(tmp_path, long_video, duc_onnx):
    pattern, summary, labels = tmp_path / "rec" / "cam.mp4", tmp_path / "summary.csv", tmp_path / "labels"
    proc = start_run(
        str(long_video),
        "-o",
        str(pattern),
        "--segment-seconds",
        "2",
        "--model",
        str(duc_onnx),
        "--summary",
        str(summary),
        "--labels-out",
        str(labels),
        "--labels-format",
        "npz",
    )
    written = kill_after(proc, lambda: summary_rows(summary), 55)

    segments = sorted((tmp_path / "rec").glob("cam-*.mp4"))
    assert [s.name for s in segments[:2]] == ["cam-00001.mp4", "cam-00002.mp4"]
    closed, partial = segments[:-1], segments[-1]
    assert len(closed) >= 2
    next_pts = 0
    for segment in closed:  # each closed segment plays alone, from a keyframe, continuing the previous one
        frames = playable_frames(segment)
        assert len(frames) == 2 * FPS and frames[0][1]
        assert frames[0][0] == next_pts
        step = frames[1][0] - frames[0][0]
        next_pts = frames[-1][0] + step
    in_fragments, _ = complete_fragment_frames(partial) if partial.stat().st_size else (0, 0)
    if in_fragments:
        frames = playable_frames(partial)
        assert len(frames) >= in_fragments and frames[0][0] == next_pts
    assert len(closed) * 2 * FPS + in_fragments >= written - 2 * FPS
    # a zip is unreadable without its directory: the archive is only ever named labels.npz when complete
    assert not (labels / "labels.npz").exists() and (labels / "labels.npz.partial").exists()


@pytest.mark.slow
def test_a_clean_stop_leaves_a_normal_seekable_mp4(tmp_path, duc_onnx):
    video = make_video(tmp_path / "in.mp4", width=160, height=96, frames=25, fps=FPS, audio=True)
    out = tmp_path / "out.mp4"
    proc = subprocess.run(
        [sys.executable, "-m", "streamseg", "run", str(video), "-o", str(out), "--model", str(duc_onnx)],
        check=False,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert proc.returncode == 0, proc.stderr
    assert not is_fragmented(out)  # rewritten at close: index first, one moov, no fragments
    data = out.read_bytes()
    assert data.index(b"moov") < data.index(b"mdat")
    images, pts, _, facts = read_video(out)
    assert len(images) == 25 and pts == read_video(video)[1] and facts["audio"] == ["aac"]
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".")]  # no temporary left behind
