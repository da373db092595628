"""Write failures name the path and exit 2; a stream output that reached nobody fails the run.

Tests run as root here, where permissions stop nothing, so the failures are real ones
a root process meets too: a file size limit (RLIMIT_FSIZE, what a full disk looks like
to the writer: EFBIG/ENOSPC on write), a file where a folder should be, and /proc.
"""

from __future__ import annotations

import importlib.util
import os
import resource
import socket
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from streamseg import Pipeline
from tests.support.cli import assert_one_line_error, run_cli
from tests.support.mp4_fragments import complete_fragment_frames, playable_frames
from tests.support.videos import make_video, read_video


@pytest.fixture
def clip(tmp_path) -> Path:
    return make_video(tmp_path / "clip.mp4", width=160, height=96, frames=30, fps=10, audio=True)


def run_with_file_limit(limit: int, *args: str) -> subprocess.CompletedProcess:
    """``streamseg run ARGS`` unable to grow any file past ``limit`` bytes (writes fail with EFBIG).

    No bytecode written: Python would leave its .pyc files cut at the limit (a short write is no error to it).
    """
    return subprocess.run(
        [sys.executable, "-m", "streamseg", "run", *args],
        check=False,
        capture_output=True,
        text=True,
        timeout=120,
        env={**os.environ, "PYTHONDONTWRITEBYTECODE": "1"},
        preexec_fn=lambda: resource.setrlimit(resource.RLIMIT_FSIZE, (limit, limit)),
    )


@pytest.mark.parametrize(
    "what, args, path",
    [
        pytest.param("video", ("-o", "{tmp}/out.mp4"), "{tmp}/out.mp4", marks=pytest.mark.slow),
        pytest.param(
            "npz labels",
            ("--labels-out", "{tmp}/labels", "--labels-format", "npz", "--summary", "{tmp}/s.jsonl"),
            "{tmp}/labels/labels.npz.partial",
            marks=pytest.mark.slow,
        ),
        pytest.param("summary", ("--summary", "{tmp}/summary.csv"), "{tmp}/summary.csv", marks=pytest.mark.slow),
        # FFmpeg's HLS muxer ignores its segments' write errors; streamseg opens those files itself
        pytest.param("hls", ("-o", "hls:{tmp}/hls"), "{tmp}/hls/segment_00000.ts", marks=pytest.mark.slow),
    ],
)
def test_a_full_disk_names_the_file(tmp_path, clip, duc_onnx, what, args, path):
    limit = 2000 if what == "summary" else 20_000
    proc = run_with_file_limit(limit, str(clip), "--model", str(duc_onnx), *(a.format(tmp=tmp_path) for a in args))
    assert proc.returncode == 2
    assert_one_line_error(proc, f"cannot write {path.format(tmp=tmp_path)}", "File too large")


@pytest.mark.skipif(
    importlib.util.find_spec("mcap_ros2") is None, reason='needs the ros extra: pip install "streamseg[ros]"'
)
@pytest.mark.parametrize("limit", [100, 60_000])  # while opening (its header), and after some frames
def test_a_full_disk_while_writing_mcap_names_the_file(tmp_path, clip, duc_onnx, limit):
    """It ended in "internal error ... exit 70"; now as the video and CSV outputs do, and what it holds reads back."""
    from streamseg.outputs.messages.mcap_read import read_class_fractions

    mcap = tmp_path / "run.mcap"
    proc = run_with_file_limit(limit, str(clip), "--model", str(duc_onnx), "--mcap", str(mcap))
    assert proc.returncode == 2 and "Traceback" not in proc.stderr
    errors = [line for line in proc.stderr.splitlines() if "error" in line]  # after the "writing ... to" line
    assert errors == [f"streamseg: error: cannot write {mcap}: File too large"], proc.stderr
    if limit > 100:
        written = read_class_fractions(mcap)
        assert 0 < len(written.index) < 30 and written.index == list(range(len(written.index)))


def test_a_full_disk_while_writing_label_pngs_names_the_png(tmp_path, clip, duc_onnx):
    proc = run_with_file_limit(
        100, str(clip), "--model", str(duc_onnx), "--labels-out", str(tmp_path / "labels"), "--summary", "/dev/null"
    )  # not a file: no size limit
    assert_one_line_error(proc, f"cannot write {tmp_path / 'labels' / '000000.png'}", "File too large")
    assert list((tmp_path / "labels").iterdir()) == []  # no half PNG left, under either name


@pytest.mark.slow
def test_the_video_written_before_a_full_disk_still_plays(tmp_path, clip, duc_onnx):
    out = tmp_path / "out.mp4"
    proc = run_with_file_limit(60_000, str(clip), "--model", str(duc_onnx), "-o", str(out))
    assert_one_line_error(proc, f"cannot write {out}")
    frames = playable_frames(out)
    assert 0 < len(frames) < 30 and len(frames) >= complete_fragment_frames(out)[0] > 0


@pytest.mark.parametrize(
    "args, fragments",
    [
        (("-o", "{tmp}/afile/out.mp4"), ("cannot write {tmp}/afile/out.mp4", "is not a folder")),
        pytest.param(
            ("--labels-out", "{tmp}/afile/labels"), ("cannot create {tmp}/afile/labels",), marks=pytest.mark.slow
        ),
        pytest.param(("--summary", "{tmp}/afile/s.csv"), ("{tmp}/afile",), marks=pytest.mark.slow),
        pytest.param(("-o", "hls:{tmp}/afile/hls"), ("cannot create {tmp}/afile/hls",), marks=pytest.mark.slow),
        pytest.param(
            ("-o", "/proc/streamseg-out.mp4"), ("cannot write /proc/streamseg-out.mp4",), marks=pytest.mark.slow
        ),
    ],
)
def test_an_unwritable_place_names_the_path(tmp_path, clip, duc_onnx, args, fragments):
    (tmp_path / "afile").write_text("a file where a folder should be\n")
    proc = run_cli("run", str(clip), "--model", str(duc_onnx), *(a.format(tmp=tmp_path) for a in args), timeout=120)
    assert proc.returncode == 2
    assert_one_line_error(proc, *(f.format(tmp=tmp_path) for f in fragments))


def closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]  # nobody listens once it is closed


@pytest.mark.slow
def test_a_stream_output_that_never_connects_fails_the_run(tmp_path, clip, duc_onnx):
    out = tmp_path / "alongside.mp4"
    url = f"rtsp://127.0.0.1:{closed_port()}/x"
    proc = run_cli("run", str(clip), "--model", str(duc_onnx), "-o", url, "-o", str(out), timeout=120)
    assert proc.returncode == 2
    last = proc.stderr.strip().splitlines()[-1]
    assert last.startswith("streamseg: error: no frames delivered to " + url) and "30 frames dropped" in last
    assert len(read_video(out)[0]) == 30  # the file output still got every frame


def test_summary_counts_frames_delivered_per_output(tmp_path, clip, duc_onnx):
    out, labels = tmp_path / "out.mp4", tmp_path / "labels"
    summary = Pipeline(clip, duc_onnx, outputs=[str(out)], labels_out=str(labels), max_frames=7).run()
    assert summary.delivered == {str(out): 7, str(labels): 7, str(labels / "summary.csv"): 7}
    assert len(read_video(out)[0]) == 7


@pytest.mark.slow
def test_a_png_named_mp4_is_a_one_frame_video(tmp_path, duc_onnx):
    picture = (np.random.default_rng(0).random((48, 64, 3)) * 255).astype(np.uint8)
    source = tmp_path / "still.mp4"
    Image.fromarray(picture).save(source, format="PNG")  # FFmpeg probes the content, not the name
    out = tmp_path / "out.mp4"
    proc = run_cli(
        "run",
        str(source),
        "--model",
        str(duc_onnx),
        "-o",
        str(out),
        "--labels-out",
        str(tmp_path / "labels"),
        timeout=120,
    )
    assert proc.returncode == 0, proc.stderr
    images, _, _, facts = read_video(out)
    assert len(images) == 1 and (facts["width"], facts["height"]) == (64, 48)
    assert sorted(p.name for p in (tmp_path / "labels").iterdir()) == ["000000.png", "summary.csv"]
