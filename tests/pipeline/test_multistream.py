"""Many sources, one model: per-source lanes, batched inference, sources added and removed while it runs."""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from streamseg import Pipeline
from tests.support.cli import run_cli
from tests.support.servers import Camera, RtspRelay, free_port, relay_missing
from tests.support.videos import make_video, read_video

needs_torch = pytest.mark.export  # skipped without torch, saying so (tests/conftest.py)


def labels_of(folder: Path) -> list[np.ndarray]:
    return [np.asarray(Image.open(png)) for png in sorted(folder.glob("*.png"))]


@pytest.mark.slow
@needs_torch
def test_three_files_of_different_sizes_batched_like_single_runs(fcn_onnx, tmp_path):
    """Each output has every frame of its input in order, timestamps and audio kept, labels as a single-source
    run gives them; the two 16:9 clips share their inference calls."""
    clips = {
        "wide": make_video(tmp_path / "wide.mp4", width=192, height=108, frames=10, audio=True),
        "square": make_video(tmp_path / "square.mp4", width=160, height=120, frames=7),
        "big": make_video(tmp_path / "big.mp4", width=320, height=180, frames=10, audio=True),
    }
    out = tmp_path / "out"
    out.mkdir()
    proc = run_cli(
        "run",
        *map(str, clips.values()),
        "-o",
        str(out / "{name}.mp4"),
        "--labels-out",
        str(tmp_path / "labels" / "{name}"),
        "--model",
        str(fcn_onnx),
        "--size",
        "64",
        "--no-progress",
        check=True,
    )
    assert "27 frames in, 27 out" in proc.stderr
    sizes = {
        int(k): int(v) for k, v in re.findall(r"(\d+): (\d+)", proc.stderr.split("frames per call:")[1].splitlines()[0])
    }
    assert sum(k * v for k, v in sizes.items()) == 27 and max(sizes) >= 2, proc.stderr  # real batches formed

    for name, clip in clips.items():
        source_images, source_pts, source_tb, source_facts = read_video(clip)
        images, pts, tb, facts = read_video(out / f"{name}.mp4")
        assert len(images) == len(source_images) and images[0].shape == source_images[0].shape
        assert [p * tb for p in pts] == [p * source_tb for p in source_pts]
        assert facts["audio"] == source_facts["audio"]
        with Pipeline(clip, model=fcn_onnx, input_size=64) as alone:
            expected = [r.labels for r in alone]
        got = labels_of(tmp_path / "labels" / name)
        assert len(got) == len(expected)
        assert all(np.array_equal(a, b) for a, b in zip(got, expected)), name


@needs_torch
def test_python_api_yields_every_source_in_order_within_each(fcn_onnx, tmp_path):
    (tmp_path / "sub").mkdir()
    a = make_video(tmp_path / "a.mp4", width=128, height=72, frames=6)
    b = make_video(tmp_path / "sub" / "a.mp4", width=128, height=72, frames=4)
    with Pipeline([a, b], model=fcn_onnx, input_size=48, batch=2) as pipeline:
        results = list(pipeline)
    summary = pipeline.summary()
    by_source: dict[str, list[int]] = {}
    for r in results:
        by_source.setdefault(r.source, []).append(r.index)
    assert by_source == {"a": list(range(6)), "a-2": list(range(4))}  # same stems made unique
    assert summary.frames_out == 10 and not summary.stopped_early
    assert [row["name"] for row in summary.sources] == ["a", "a-2"]
    assert summary.batches.get(2, 0) >= 3  # both sources in one call while both ran


@pytest.mark.slow
def test_outputs_that_would_collide_are_refused_before_anything_starts(duc_onnx, tmp_path):
    a = make_video(tmp_path / "a.mp4", frames=3)
    b = make_video(tmp_path / "b.mp4", frames=3)
    proc = run_cli("run", str(a), str(b), "-o", str(tmp_path / "out.mp4"), "--model", str(duc_onnx))
    assert proc.returncode == 2
    assert proc.stderr.strip().splitlines() == [
        f"streamseg: error: -o {tmp_path / 'out.mp4'}: sources 'a' and 'b' would both write it; "
        "put {name} or {index} in the path"
    ]
    assert not (tmp_path / "out.mp4").exists()
    bad = run_cli("run", str(a), "-o", str(tmp_path / "{nme}.mp4"), "--model", str(duc_onnx))
    assert bad.returncode == 2 and "unknown field {nme}" in bad.stderr


@pytest.mark.slow
def test_a_failed_source_exits_non_zero_and_the_others_complete(duc_onnx, tmp_path):
    good = make_video(tmp_path / "good.mp4", width=160, height=96, frames=9)
    corrupt = tmp_path / "corrupt.mp4"
    corrupt.write_bytes(np.random.default_rng(0).integers(0, 256, 20_000, np.uint8).tobytes())
    out = tmp_path / "out"
    out.mkdir()
    proc = run_cli(
        "run",
        str(good),
        str(corrupt),
        str(tmp_path / "missing.mp4"),
        "-o",
        str(out / "{index}.mp4"),
        "--model",
        str(duc_onnx),
        "--no-progress",
    )
    assert proc.returncode == 2, proc.stderr
    last = proc.stderr.strip().splitlines()[-1]
    assert last.startswith("streamseg: error: 2 of 3 sources failed: corrupt: ") and "missing: input not found" in last
    assert "Traceback" not in proc.stderr
    images, _, _, _ = read_video(out / "0.mp4")
    assert len(images) == 9


def _get(url: str):
    with urllib.request.urlopen(url, timeout=10) as response:
        return json.loads(response.read())


def _send(url: str, method: str, body: dict | None = None, token: str | None = None) -> tuple[int, dict]:
    data = json.dumps(body).encode() if body is not None else None
    headers = {"Content-Type": "application/json"}
    if token is not None:
        headers["Authorization"] = f"Bearer {token}"
    request = urllib.request.Request(url, data=data, method=method, headers=headers)
    try:
        with urllib.request.urlopen(request, timeout=10) as response:
            return response.status, json.loads(response.read())
    except urllib.error.HTTPError as err:
        return err.code, json.loads(err.read())


def _rows(base: str) -> dict[str, dict]:
    return {row["name"]: row for row in _get(base + "/sources")}


def _wait(predicate, timeout: float, what: str):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            value = predicate()
        except (OSError, KeyError):  # not listening yet, or not there yet
            value = None
        if value:
            return value
        time.sleep(0.3)
    raise AssertionError(f"timed out waiting for {what}")


@pytest.mark.slow
def test_sources_added_and_removed_through_the_rest_api(duc_onnx, tmp_path):
    pytest.importorskip("prometheus_client", reason="--metrics-port needs the observe extra (prometheus-client)")
    camera = make_video(tmp_path / "cam.mp4", width=160, height=96, frames=20, fps=10)
    clip = make_video(tmp_path / "clip.mp4", width=128, height=96, frames=12, audio=True)
    out = tmp_path / "out"
    out.mkdir()
    port = free_port()
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "streamseg",
            "run",
            str(camera),
            "--realtime",
            "--loop",
            "-o",
            str(out / "{name}.mp4"),
            "--model",
            str(duc_onnx),
            "--metrics-port",
            str(port),
            "--input-root",
            str(tmp_path),
            "--no-progress",
        ],
        stderr=subprocess.PIPE,
        text=True,
        env={**os.environ, "XDG_RUNTIME_DIR": str(tmp_path)},
    )
    base = f"http://127.0.0.1:{port}"
    started: list[str] = []
    try:
        for line in proc.stderr:  # the start-up lines name the token's file, never the token
            started.append(line)
            if found := re.search(r"API token in (\S+) ", line):
                break
        assert found, "".join(started)
        token = Path(found.group(1)).read_text().strip()
        _wait(lambda: _get(base + "/health")["status"] == "running", 60, "the camera to run")
        source = {"uri": str(clip), "name": "extra", "realtime": False, "loop": False}
        assert _send(base + "/sources", "POST", source)[0] == 401  # no token
        status, body = _send(base + "/sources", "POST", source, token)
        assert (status, body) == (201, {"name": "extra"})
        assert _send(base + "/sources", "POST", {"uri": str(clip), "name": "extra"}, token)[0] == 400  # name taken
        assert _send(base + "/sources", "POST", {"url": "x"}, token)[0] == 400  # not a source
        # the file ends while the camera goes on, and its output is finalized at once
        _wait(lambda: _rows(base)["extra"]["state"] == "ended", 60, "the added file to end")
        rows = _rows(base)
        assert rows["extra"]["frames"] == 12 and rows["cam"]["state"] == "running"
        images, _, _, facts = read_video(out / "extra.mp4")
        assert len(images) == 12 and facts["audio"] == ["aac"]
        health = _get(base + "/health")
        assert health["sources"]["cam"]["state"] == "running" and health["sources"]["extra"]["state"] == "ended"
        metrics = urllib.request.urlopen(base + "/metrics", timeout=10).read().decode()
        assert 'streamseg_source_frames_total{source="extra"} 12.0' in metrics
        assert _send(base + "/sources/nope", "DELETE", token=token)[0] == 404
        assert _send(base + "/sources/cam", "DELETE")[0] == 401
        assert _send(base + "/sources/cam", "DELETE", token=token) == (200, {"removed": "cam"})
        _, err = proc.communicate(timeout=60)  # the last source gone: the run ends by itself
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == 0, err[-2000:]
    assert token not in "".join(started) + err
    assert re.search(r"cam +removed", err) and re.search(r"extra +ended +12 +12", err)
    assert len(read_video(out / "cam.mp4")[0]) > 0


@pytest.fixture
def two_cameras():
    reason = relay_missing()
    if reason:
        pytest.skip(reason)
    with (
        RtspRelay("cam") as one,
        RtspRelay("cam") as two,
        Camera(one.url("cam-in"), fps=10, size="160x96"),
        Camera(two.url("cam-in"), fps=10, size="160x96"),
    ):
        yield one, two


@pytest.mark.live
@pytest.mark.slow
def test_a_dead_camera_does_not_stall_the_others_and_comes_back(two_cameras, duc_onnx, tmp_path):
    pytest.importorskip("prometheus_client", reason="--metrics-port needs the observe extra (prometheus-client)")
    one, two = two_cameras
    clip = make_video(tmp_path / "clip.mp4", width=160, height=96, frames=30)
    port = free_port()
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "streamseg",
            "run",
            one.url("cam"),
            two.url("cam"),
            str(clip),
            "-o",
            str(tmp_path / "{index}.mp4"),
            "--model",
            str(duc_onnx),
            "--metrics-port",
            str(port),
            "--reconnect-max-delay",
            "1",
            "--no-progress",
        ],
        stderr=subprocess.PIPE,
        text=True,
    )
    base = f"http://127.0.0.1:{port}"
    names = [f"127.0.0.1-{one.port}-cam", f"127.0.0.1-{two.port}-cam"]

    def frames() -> dict[str, int]:
        return {r["name"]: r["frames"] for r in _get(base + "/sources")}

    try:
        _wait(lambda: len(frames()) == 3 and all(frames()[n] >= 5 for n in names), 90, "both cameras to flow")
        start = frames()
        time.sleep(4)
        rate = frames()[names[1]] - start[names[1]]  # the second camera's frames in 4 s, both up
        one.stop()
        time.sleep(2)
        before = frames()
        time.sleep(4)
        after = frames()
        assert after[names[1]] - before[names[1]] >= max(2, rate // 2)  # the other camera kept flowing
        assert after[names[0]] == before[names[0]]
        assert _get(base + "/health")["sources"][names[0]]["state"] == "reconnecting"
        one.start()
        back = after[names[0]]
        _wait(lambda: frames()[names[0]] >= back + 10, 60, "the camera to come back")
        assert frames()["clip"] == 30  # the file ran to its end meanwhile, lossless
        proc.send_signal(signal.SIGINT)
        _, err = proc.communicate(timeout=60)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == 0, err[-2000:]
    assert re.search(r"live: [1-9]\d* input reconnects", err)
    assert len(read_video(tmp_path / "2.mp4")[0]) == 30


@pytest.mark.slow
def test_a_sources_list_in_yaml_is_the_same_as_arguments(duc_onnx, tmp_path):
    a = make_video(tmp_path / "a.mp4", width=160, height=96, frames=4)
    b = make_video(tmp_path / "b.mp4", width=128, height=96, frames=3)
    config = tmp_path / "run.yaml"
    config.write_text(
        f"model: {duc_onnx}\nsources:\n  - {a}\n  - uri: {b}\n    name: second\n"
        f"    outputs: [{tmp_path / 'own.mp4'}]\noutputs: ['{tmp_path / 'out-{name}.mp4'}']\n"
    )
    proc = run_cli("run", "--config", str(config), "--no-progress", check=True)
    assert "7 frames in, 7 out" in proc.stderr
    assert len(read_video(tmp_path / "out-a.mp4")[0]) == 4 and len(read_video(tmp_path / "own.mp4")[0]) == 3
    assert not (tmp_path / "out-second.mp4").exists()  # the source's own outputs win over the run's template
    config.write_text(f"model: {duc_onnx}\nsources:\n  - uri: {a}\n    colour: red\n")
    bad = run_cli("run", "--config", str(config), "-o", str(tmp_path / "x.mp4"))
    assert bad.returncode == 2 and bad.stderr.strip().endswith("sources.0.colour: unknown key"), bad.stderr


def test_python_api_adds_and_removes_sources_while_it_runs(duc_onnx, tmp_path):
    camera = make_video(tmp_path / "cam.mp4", width=160, height=96, frames=10, fps=10)
    clip = make_video(tmp_path / "clip.mp4", width=128, height=96, frames=5)
    seen: dict[str, int] = {}
    with Pipeline(
        camera, model=duc_onnx, live={"realtime": True, "loop": True}, labels_out=str(tmp_path / "labels" / "{name}")
    ) as pipeline:
        for result in pipeline:
            seen[result.source] = seen.get(result.source, 0) + 1
            if seen.get("cam") == 3 and "clip" not in pipeline.lanes:
                assert pipeline.add_source(clip, realtime=False, loop=False) == "clip"
            if seen.get("clip") == 5 and not pipeline.lanes["cam"].removed:
                pipeline.remove_source("cam")
    assert seen["clip"] == 5 and seen["cam"] >= 3
    assert len(list((tmp_path / "labels" / "clip").glob("*.png"))) == 5
    summary = pipeline.summary()
    assert {row["name"]: row["state"] for row in summary.sources} == {"cam": "removed", "clip": "ended"}
    assert not summary.stopped_early  # a removed source is not an early stop
