"""What one source may cost: pictures over --max-pixels fail that source alone, before they fill memory; a source
that ends or is removed gives back every thread it started, FFmpeg's codec threads included."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import threading
import urllib.request
from fractions import Fraction
from pathlib import Path

import av
import numpy as np
import pytest

from streamseg import Pipeline
from streamseg.sources import open_source
from streamseg.sources.limits import FrameTooLargeError
from streamseg.stage_options import SourceOptions
from tests.support.cli import assert_one_line_error, run_cli
from tests.support.memory import wait_with_peak_rss
from tests.support.videos import make_video, moving_scene, read_video

MEMORY_CAP = 1.5 * 2**30  # bytes: the peak a run refusing a huge clip stays under


@pytest.fixture(scope="module")
def huge_clip(tmp_path_factory) -> Path:
    """12 frames of 8192x8192 H.264 in about 200 KB: a tiny file that decodes to 5 GB of RGB pictures."""
    path = tmp_path_factory.mktemp("huge") / "huge.mp4"
    with av.open(str(path), "w") as container:
        stream = container.add_stream("libx264", rate=10)
        stream.width = stream.height = 8192
        stream.pix_fmt = "yuv420p"
        stream.options = {"preset": "ultrafast", "crf": "51", "tune": "zerolatency", "threads": "1"}
        frame = av.VideoFrame.from_ndarray(np.full((8192 * 3 // 2, 8192), 128, np.uint8), format="yuv420p")
        for i in range(12):
            frame.pts = i
            for packet in stream.encode(frame):
                container.mux(packet)
        for packet in stream.encode(None):
            container.mux(packet)
    assert path.stat().st_size < 1_000_000
    return path


def grows_midway(path: Path) -> Path:
    """Raw H.264: 80 frames of 64x48, then 4 of 256x192 (a new SPS mid-stream, past what opening probes)."""

    def encode(width: int, height: int, frames: int) -> bytes:
        ctx = av.CodecContext.create("libx264", "w")
        ctx.width, ctx.height, ctx.pix_fmt, ctx.time_base = width, height, "yuv420p", Fraction(1, 10)
        ctx.options = {"preset": "ultrafast"}
        data = []
        for i in range(frames):
            frame = av.VideoFrame.from_ndarray(moving_scene(i, width, height), format="rgb24").reformat(
                format="yuv420p"
            )
            frame.pts = i
            data += [bytes(p) for p in ctx.encode(frame)]
        data += [bytes(p) for p in ctx.encode(None)]
        return b"".join(data)

    path.write_bytes(encode(64, 48, 80) + encode(256, 192, 4))
    return path


def run_measured(tmp_path: Path, *args: str) -> tuple[subprocess.CompletedProcess, int]:
    """``streamseg ARGS`` and the peak resident memory of that process alone, in bytes."""
    log = tmp_path / "stderr.txt"
    with log.open("w") as err:
        proc = subprocess.Popen([sys.executable, "-m", "streamseg", *args], stdout=subprocess.DEVNULL, stderr=err)
    peak = wait_with_peak_rss(proc, timeout=300)
    return subprocess.CompletedProcess(proc.args, proc.returncode, "", log.read_text()), peak


@pytest.mark.slow
def test_a_huge_clip_fails_alone_naming_the_flag_and_memory_stays_low(huge_clip, duc_onnx, tmp_path):
    """The issue's 199 KB, 12-frame 8192x8192 file drove a run to 5.4 GB; now it fails before its first decode."""
    small = make_video(tmp_path / "small.mp4", width=64, height=48, frames=6)
    out = tmp_path / "out"
    out.mkdir()
    proc, peak = run_measured(
        tmp_path, "run", str(huge_clip), str(small), "-m", str(duc_onnx), "-o", f"{out}/{{name}}.mp4"
    )
    assert proc.returncode == 2, proc.stderr
    assert "Traceback" not in proc.stderr
    named = [line for line in proc.stderr.splitlines() if "--max-pixels" in line]
    assert named and all("8192x8192" in line and str(huge_clip) in line for line in named), proc.stderr
    assert len(read_video(out / "small.mp4")[0]) == 6  # the other source ran to its end
    assert not (out / "huge.mp4").exists()
    assert peak < MEMORY_CAP, f"peak RSS {peak / 2**20:.0f} MiB"


def test_a_huge_clip_alone_is_one_line(huge_clip, duc_onnx, tmp_path):
    proc = run_cli("run", str(huge_clip), "-m", str(duc_onnx), "-o", str(tmp_path / "out.mp4"))
    assert_one_line_error(proc, "--max-pixels 33177600", "8192x8192")
    assert proc.returncode == 2


@pytest.mark.parametrize("limit", [10_000, 30_000])
def test_pictures_that_grow_midway_fail_at_the_first_larger_one(tmp_path, limit):
    """10 000: FFmpeg's own guard (twice the limit) refuses the 256x192 pictures; 30 000: they decode, and the
    per-frame check refuses them. Either way the same error, after the 80 pictures within the limit."""
    source = open_source(str(grows_midway(tmp_path / "grows.h264")), options=SourceOptions(max_pixels=limit))
    frames = []
    with pytest.raises(FrameTooLargeError, match=rf"256x192 pictures .* over --max-pixels {limit}"):
        for frame in source.frames():
            frames.append(frame.image.shape)
    source.close()
    assert frames == [(48, 64, 3)] * 80
    assert len(read_video(tmp_path / "grows.h264")[0]) == 84  # without a limit every picture decodes


def test_batch_fails_the_huge_video_alone(huge_clip, duc_onnx, tmp_path):
    inputs = tmp_path / "in"
    inputs.mkdir()
    (inputs / "huge.mp4").symlink_to(huge_clip)
    make_video(inputs / "small.mp4", width=64, height=48, frames=4)
    proc = run_cli("batch", str(inputs), "-o", str(tmp_path / "out"), "-m", str(duc_onnx), "--no-progress")
    assert proc.returncode == 1, proc.stderr
    assert "--max-pixels" in proc.stderr and "Traceback" not in proc.stderr
    assert len(read_video(tmp_path / "out" / "small.mp4")[0]) == 4
    assert not (tmp_path / "out" / "huge.mp4").exists()


def test_an_added_source_over_the_limit_fails_alone(tmp_path, duc_onnx):
    """Sources added while the run goes (the API, and POST /sources through it) open through the same check."""
    base = make_video(tmp_path / "base.mp4", width=64, height=48, frames=4)
    wide = make_video(tmp_path / "wide.mp4", width=160, height=96, frames=4)
    with Pipeline(base, model=duc_onnx, live={"max_pixels": 64 * 48, "realtime": True, "loop": True}) as pipeline:
        name = pipeline.add_source(str(wide), realtime=False, loop=False)
        lane = pipeline.lanes[name]
        lane.join(60)
        assert lane.state == "failed" and "over --max-pixels 3072" in str(lane.error)
        assert pipeline.lanes["base"].state in ("opening", "running")
        pipeline.stop()


def test_a_posted_source_over_the_limit_fails_alone(huge_clip, tmp_path, duc_onnx, monkeypatch):
    """POST /sources, with the token and JSON, from a real HTTP client: the same check, the same one line."""
    pytest.importorskip("prometheus_client", reason="needs the observe extra (prometheus-client)")
    monkeypatch.setenv("XDG_RUNTIME_DIR", str(tmp_path))  # the token's folder
    inputs = tmp_path / "inputs"
    inputs.mkdir()
    shutil.copy(huge_clip, inputs / "huge.mp4")
    base = make_video(inputs / "base.mp4", width=64, height=48, frames=4)
    pipeline = Pipeline(
        base, model=duc_onnx, metrics_port=0, input_root=str(inputs), live={"realtime": True, "loop": True}
    )
    with pipeline:
        assert pipeline.metrics is not None
        request = urllib.request.Request(
            f"http://127.0.0.1:{pipeline.metrics.port}/sources",
            data=json.dumps({"uri": str(inputs / "huge.mp4"), "realtime": False, "loop": False}).encode(),
            method="POST",
            headers={"Content-Type": "application/json", "Authorization": f"Bearer {pipeline.api_token}"},
        )
        with urllib.request.urlopen(request, timeout=30) as response:
            assert response.status == 201
            name = json.loads(response.read())["name"]
        lane = pipeline.lanes[name]
        lane.join(60)
        assert lane.state == "failed" and "8192x8192 pictures" in str(lane.error)
        assert "over --max-pixels 33177600" in str(lane.error)
        assert pipeline.lanes["base"].state in ("opening", "running")
        pipeline.stop()


def threads_now() -> int:
    """Every thread of this process, FFmpeg's native ones included."""
    return len(os.listdir("/proc/self/task"))


@pytest.mark.slow
def test_thirty_add_and_remove_cycles_leave_the_thread_count_as_it_was(tmp_path, duc_onnx):
    """Each source decodes (FFmpeg frame threads) and encodes (x264 threads); half end, half are removed."""
    base = make_video(tmp_path / "base.mp4", width=64, height=48, frames=10)
    short = make_video(tmp_path / "short.mp4", width=64, height=48, frames=3)
    long = make_video(tmp_path / "long.mp4", width=64, height=48, frames=300)
    (tmp_path / "out").mkdir()
    seen: set[str] = set()
    arrived = threading.Condition()
    pipeline = Pipeline(
        base, model=duc_onnx, outputs=[str(tmp_path / "out" / "{name}.mp4")], live={"realtime": True, "loop": True}
    )

    def consume() -> None:
        for result in pipeline:
            with arrived:
                seen.add(result.source)
                arrived.notify_all()

    def wait_for(name: str) -> bool:
        with arrived:
            return arrived.wait_for(lambda: name in seen, 60)

    with pipeline:
        consumer = threading.Thread(target=consume, daemon=True)
        consumer.start()
        assert wait_for("base")
        start = threads_now()
        for i in range(30):
            clip = long if i % 2 else short
            name = pipeline.add_source(str(clip), name=f"c{i}", realtime=False, loop=False)
            assert wait_for(name)  # decoded, inferred and encoded: every codec thread it starts has started
            if i % 2:
                pipeline.remove_source(name)
            lane = pipeline.lanes[name]
            lane.join(60)
            assert lane.state == ("removed" if i % 2 else "ended"), lane.error
        after = threads_now()
        pipeline.stop()
    consumer.join(60)
    # a leak grows the count; threads of earlier tests in this process may end meanwhile (a full run saw 48 -> 42)
    assert after - start <= 5, f"{start} threads before, {after} after 30 cycles"
