"""Inference on some frames only, in the real pipeline: every frame out, carried labels, budgets, smoothing."""

from __future__ import annotations

import csv
import re
import time
import urllib.request

import numpy as np
import pytest
from PIL import Image

from streamseg import Pipeline
from streamseg.errors import ConfigError
from streamseg.temporal.steps import budget_sizes
from tests.support.cli import run_cli
from tests.support.videos import make_video, read_video


def rows(path) -> list[dict[str, str]]:
    with open(path, newline="") as f:
        return list(csv.DictReader(f))


def within_budget(results, budget_ms: float, frame_ms: float, settings: str) -> None:
    """No mask older than the budget, where this machine can keep it.

    A carried mask's age is the time since its key frame's capture. The policy keeps its interval within the
    budget, but with one inference in flight at most, the next key waits for the last one's labels: on a CPU (or
    a moment of load) where inferring one frame takes longer than the budget, masks age by that inference's own
    latency, and where no setting keeps up the policy takes the cheapest (up to 30 frames between keys). So the
    bound is the budget, or where more, the slowest key frame's latency plus a frame period, or the longest interval
    the run used (its summary's ``settings``): on a fast machine the budget itself, on a slow one what its speed
    forces, never an unbounded backlog.
    """
    slowest_key_ms = max(1000 * r.latency for r in results if r.origin == "inferred")
    longest_interval = max(int(n) for n in re.findall(r"interval (\d+)", settings))
    bound = max(budget_ms, slowest_key_ms + frame_ms, longest_interval * frame_ms)
    oldest = max(r.age_ms for r in results)
    print(f"oldest mask {oldest:.0f} ms; budget {budget_ms:.0f} ms, slowest key frame {slowest_key_ms:.0f} ms")
    assert oldest <= bound, (oldest, bound)


@pytest.mark.slow
def test_interval_three_gives_every_frame_with_a_third_inferred_as_a_plain_run(duc_onnx, tmp_path):
    clip = make_video(tmp_path / "clip.mp4", width=192, height=108, frames=12, fps=10, audio=True)
    run_cli(
        "run",
        str(clip),
        "-o",
        str(tmp_path / "out.mp4"),
        "--model",
        str(duc_onnx),
        "--interval",
        "3",
        "--labels-out",
        str(tmp_path / "every3"),
        "--no-progress",
        check=True,
    )
    run_cli(
        "run", str(clip), "--model", str(duc_onnx), "--labels-out", str(tmp_path / "plain"), "--no-progress", check=True
    )
    summary = rows(tmp_path / "every3" / "summary.csv")
    assert [int(r["index"]) for r in summary] == list(range(12))
    assert [r["origin"] for r in summary] == ["inferred", "flow", "flow"] * 4
    assert [int(r["age_frames"]) for r in summary] == [0, 1, 2] * 4
    assert all(float(r["age_ms"]) >= 0 for r in summary)
    for i in range(0, 12, 3):  # inferred frames: the same labels as inferring every frame
        name = f"{i:06d}.png"
        assert np.array_equal(
            np.asarray(Image.open(tmp_path / "every3" / name)), np.asarray(Image.open(tmp_path / "plain" / name))
        )
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
@pytest.mark.timing
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
    within_budget(results, 400, 40, summary.sources[0]["settings"])  # (or than this CPU's speed forces)
    assert summary.sources[0]["inferred"] >= 1 and summary.sources[0]["settings"].startswith(
        f"{summary.sources[0]['inferred']} inferred"
    )


@pytest.mark.slow
def test_smoothing_needs_class_scores(duc_onnx, tmp_path):
    clip = make_video(tmp_path / "clip.mp4", frames=2)
    proc = run_cli("run", str(clip), "--model", str(duc_onnx), "--smooth", "0.5", "-o", str(tmp_path / "o.mp4"))
    assert proc.returncode == 2 and proc.stderr.strip().splitlines() == [
        "streamseg: error: smooth: needs class scores (decode: argmax), not duc"
    ]


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


@pytest.mark.slow
@pytest.mark.timing
@pytest.mark.export
def test_a_latency_budget_keeps_the_camera_rate_at_the_input_size_it_picks(fcn_onnx, tmp_path):
    """FCN-ResNet50 at a 224 or a 32 px input: which one fits 400 ms depends on the CPU (a slow one takes 32, a
    fast one 224), so this asserts the budget's promise at whatever size it picked: every frame out, at the
    camera's rate, no mask older than the budget, and the size it runs at reported in /metrics and the summary.
    Which size given stage times is the policy's unit test, tests/temporal/test_temporal.py."""
    clip = make_video(tmp_path / "cam.mp4", width=320, height=180, frames=50, fps=25)
    arrived, metrics = [], ""
    with Pipeline(
        clip,
        model=fcn_onnx,
        latency_budget=400,
        latency_sizes=(224, 32),
        winograd=False,
        live={"realtime": True},
        metrics_port=0,
    ) as pipeline:
        results = []
        for r in pipeline:
            arrived.append(time.monotonic())
            results.append(r)
            if len(results) >= 25 and not metrics:  # the budget's choice, as Prometheus scrapes it
                with urllib.request.urlopen(f"{pipeline.metrics.url}metrics", timeout=10) as page:
                    metrics = page.read().decode()
    summary = pipeline.summary()
    assert len(results) == 50 and not summary.results_dropped, (len(results), summary.results_dropped)
    assert summary.frames_in == summary.frames_out == 50 and not summary.dropped
    size = re.search(r'streamseg_source_input_size\{source="cam"\} (\d+)', metrics)
    assert size and int(size.group(1)) in (224, 32), metrics
    chosen = int(size.group(1))
    interval = re.search(r'streamseg_source_inference_interval\{source="cam"\} (\d+)', metrics)
    assert interval and int(interval.group(1)) >= 1
    assert re.search(rf'streamseg_source_setting_frames_total\{{[^}}]*input_size="{chosen}"[^}}]*\}} \d', metrics)
    captured = [r.capture_time for r in results]
    assert 0.8 * 49 / 25 <= captured[-1] - captured[0] <= 1.5 * 49 / 25
    assert 0.8 * 49 / 25 <= arrived[-1] - arrived[0] <= 1.5 * 49 / 25  # out at the camera's rate too
    assert all(r.labels.shape == (180, 320) for r in results)  # at the frame's size, whatever the input size
    settings = summary.sources[0]["settings"]  # "7 inferred, 43 propagated; interval 5, size 32: 100%"
    within_budget(results, 400, 40, settings)
    print(f"latency budget 400 ms picked input size {chosen}: {settings}")
    assert f"size {chosen}" in settings, settings
    inferred = [r for r in results if r.origin == "inferred"]
    assert len(inferred) == summary.sources[0]["inferred"] >= 2


def test_latency_sizes_need_a_budget_and_a_resizable_model(duc_onnx, tmp_path):
    clip = make_video(tmp_path / "clip.mp4", frames=2)
    with pytest.raises(ConfigError, match="latency_sizes: only with a latency budget"):
        Pipeline(clip, model=duc_onnx, latency_sizes="256,128").start()
    with pytest.raises(ConfigError, match="latency_sizes: .*input short sides of at least 16"):
        Pipeline(clip, model=duc_onnx, latency_budget=300, latency_sizes="256,8")
    proc = run_cli(
        "run",
        str(clip),
        "--model",
        str(duc_onnx),
        "--latency-budget",
        "300",
        "--latency-sizes",
        "256,128",
        "-o",
        str(tmp_path / "o.mp4"),
    )
    assert proc.returncode == 2 and proc.stderr.strip().splitlines()[-1].startswith(
        "streamseg: error: latency_sizes: "
    ), proc.stderr


def test_budget_sizes_default_to_halving_pixel_counts():
    assert budget_sizes(520, None) == (520, 368, 256, 176, 128)
    assert budget_sizes(64, None) == (64, 48, 32)
    assert budget_sizes(520, (256, 520, 360)) == (520, 360, 256)
