"""Inference on some frames only, in the real pipeline: every frame out, carried labels, budgets, smoothing."""

from __future__ import annotations

import csv

import numpy as np
import pytest
from PIL import Image

from streamseg import Pipeline
from tests.support.cli import run_cli
from tests.support.videos import make_video, read_video


def rows(path) -> list[dict[str, str]]:
    with open(path, newline="") as f:
        return list(csv.DictReader(f))


@pytest.mark.slow
def test_interval_three_gives_every_frame_with_a_third_inferred_as_a_plain_run(duc_onnx, tmp_path):
    clip = make_video(tmp_path / "clip.mp4", width=192, height=108, frames=12, fps=10, audio=True)
    run_cli("run", str(clip), "-o", str(tmp_path / "out.mp4"), "--model", str(duc_onnx), "--interval", "3",
            "--labels-out", str(tmp_path / "every3"), "--no-progress", check=True)
    run_cli("run", str(clip), "--model", str(duc_onnx), "--labels-out", str(tmp_path / "plain"), "--no-progress",
            check=True)
    summary = rows(tmp_path / "every3" / "summary.csv")
    assert [int(r["index"]) for r in summary] == list(range(12))
    assert [r["origin"] for r in summary] == ["inferred", "flow", "flow"] * 4
    assert [int(r["age_frames"]) for r in summary] == [0, 1, 2] * 4
    assert all(float(r["age_ms"]) >= 0 for r in summary)
    for i in range(0, 12, 3):  # inferred frames: the same labels as inferring every frame
        name = f"{i:06d}.png"
        assert np.array_equal(np.asarray(Image.open(tmp_path / "every3" / name)),
                              np.asarray(Image.open(tmp_path / "plain" / name)))
    images, _, _, facts = read_video(tmp_path / "out.mp4")
    assert len(images) == 12 and facts["audio"] == ["aac"]


def test_held_labels_are_the_last_inferred_ones(duc_onnx, tmp_path):
    clip = make_video(tmp_path / "clip.mp4", width=160, height=96, frames=6)
    with Pipeline(clip, model=duc_onnx, interval=2, propagate="none") as pipeline:
        results = list(pipeline)
    assert [r.origin for r in results] == ["inferred", "held"] * 3
    for key, held in zip(results[::2], results[1::2]):
        assert np.array_equal(key.labels, held.labels) and held.age_frames == 1
    assert {row["name"]: row["inferred"] for row in pipeline.summary().sources} == {"clip": 3}


@pytest.mark.slow
def test_a_latency_budget_keeps_the_camera_rate(duc_onnx, tmp_path):
    """A paced 25 fps source: every frame comes out (none dropped), at the camera's rate, within the budget."""
    clip = make_video(tmp_path / "cam.mp4", width=320, height=180, frames=50, fps=25)
    with Pipeline(clip, model=duc_onnx, latency_budget=400, live={"realtime": True}) as pipeline:
        results = list(pipeline)
    summary = pipeline.summary()
    assert summary.frames_in == summary.frames_out == 50 and not summary.dropped
    captured = [r.capture_time for r in results]
    span = captured[-1] - captured[0]
    assert 0.8 * 49 / 25 <= span <= 1.5 * 49 / 25  # out at the camera's pace, not in bursts or late
    assert max(r.age_ms for r in results) <= 400  # no mask older than the budget
    assert summary.sources[0]["inferred"] >= 1 and summary.sources[0]["settings"].startswith(
        f"{summary.sources[0]['inferred']} inferred")


@pytest.mark.slow
def test_smoothing_needs_class_scores(duc_onnx, tmp_path):
    clip = make_video(tmp_path / "clip.mp4", frames=2)
    proc = run_cli("run", str(clip), "--model", str(duc_onnx), "--smooth", "0.5", "-o", str(tmp_path / "o.mp4"))
    assert proc.returncode == 2 and proc.stderr.strip().splitlines() == [
        "streamseg: error: smooth: needs class scores (decode: argmax), not duc"]


@pytest.mark.export
def test_smoothed_run_carries_and_smooths(fcn_onnx, tmp_path):
    clip = make_video(tmp_path / "clip.mp4", width=160, height=96, frames=8)
    with Pipeline(clip, model=fcn_onnx, input_size=64, interval=2, smooth=0.5) as pipeline:
        smoothed = list(pipeline)
    with Pipeline(clip, model=fcn_onnx, input_size=64) as pipeline:
        plain = list(pipeline)
    assert [r.origin for r in smoothed] == ["inferred", "flow"] * 4
    assert np.array_equal(smoothed[0].labels, plain[0].labels)  # the first key frame: nothing to average yet
    assert all(r.labels.shape == (96, 160) for r in smoothed)
