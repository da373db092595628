"""Files played as cameras (--realtime, --loop) into several live outputs at once, read back with PyAV."""

from __future__ import annotations

import re
from pathlib import Path

import av
import pytest

from tests.support.cli import run_cli
from tests.support.servers import StreamReader, free_port
from tests.support.videos import make_video, read_video

FPS = 10
FRAMES = 20
SIZE = (160, 96)


def increasing(values) -> bool:
    known = [v for v in values if v is not None]
    return all(b > a for a, b in zip(known, known[1:]))


def frames_out(stderr: str) -> int:
    return int(re.search(r"(\d+) out,", stderr)[1])


@pytest.mark.slow
def test_realtime_file_to_udp_hls_and_mp4_at_once(duc_onnx, tmp_path: Path):
    video = make_video(tmp_path / "in.mp4", width=SIZE[0], height=SIZE[1], frames=FRAMES, fps=FPS)
    port = free_port()
    udp = StreamReader(f"udp://127.0.0.1:{port}")
    udp.start()
    hls, mp4 = tmp_path / "hls", tmp_path / "out.mp4"
    try:
        proc = run_cli(
            "run",
            str(video),
            "--realtime",
            "-o",
            f"udp://127.0.0.1:{port}",
            "-o",
            f"hls:{hls}",
            "-o",
            str(mp4),
            "--model",
            str(duc_onnx),
            "--no-progress",
            timeout=120,
        )
        udp.wait_for_frames(FRAMES, timeout=5)
    finally:
        udp.stop()
    assert proc.returncode == 0, proc.stderr
    written = frames_out(proc.stderr)
    assert written >= FRAMES // 2  # a realtime source may drop frames on a busy CPU, never stall

    images, pts, time_base, facts = read_video(mp4)
    assert len(images) == written and (facts["width"], facts["height"]) == SIZE
    assert increasing(pts)
    # capture-clock timestamps: the paced run spans the clip's duration, not the time it took to decode
    span = float((pts[-1] - pts[0]) * time_base)
    assert 0.7 * (FRAMES - 1) / FPS <= span <= 2.0 * (FRAMES - 1) / FPS, span

    with av.open(str(hls / "index.m3u8")) as container:
        hls_pts = [frame.pts for frame in container.decode(video=0)]
    assert len(hls_pts) == written and increasing(hls_pts)
    assert "#EXT-X-ENDLIST" in (hls / "index.m3u8").read_text()

    assert len(udp.arrivals) >= written - 2  # loopback UDP: all but maybe a frame at the edges
    assert udp.sizes == {SIZE} and all(increasing(p) for p in udp.pts)


@pytest.mark.slow
def test_realtime_loop_plays_past_the_end_of_the_file(duc_onnx, tmp_path: Path):
    video = make_video(tmp_path / "in.mp4", width=SIZE[0], height=SIZE[1], frames=8, fps=25)
    out = tmp_path / "out.mkv"
    proc = run_cli(
        "run",
        str(video),
        "--realtime",
        "--loop",
        "--max-frames",
        "20",
        "-o",
        str(out),
        "--model",
        str(duc_onnx),
        "--no-progress",
        timeout=120,
    )
    assert proc.returncode == 0, proc.stderr
    assert frames_out(proc.stderr) == 20, proc.stderr  # a live source's --max-frames counts frames written
    images, pts, _, _ = read_video(out)
    assert len(images) == 20 and increasing(pts)


def test_loop_without_realtime_is_a_one_line_error(duc_onnx, tmp_path: Path):
    video = make_video(tmp_path / "in.mp4", frames=2)
    proc = run_cli("run", str(video), "--loop", "-o", str(tmp_path / "o.mp4"), "--model", str(duc_onnx))
    assert proc.returncode != 0
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and "loop needs realtime" in lines[0], proc.stderr
