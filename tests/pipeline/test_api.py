"""The Python API: iterate a Pipeline or hand it a callback; same stages and labels as the CLI."""

from __future__ import annotations

import cv2
import numpy as np
import pytest

from streamseg import Pipeline, Result
from tests.support.cli import run_segment

FRAMES = 5


@pytest.fixture(scope="module")
def api_results(car_video, duc_onnx) -> list[Result]:
    with Pipeline(car_video, model=duc_onnx, max_frames=FRAMES, scores=True) as pipeline:
        return list(pipeline)


def test_iteration_yields_every_frame_with_labels_and_timing(api_results, car_video):
    assert [r.index for r in api_results] == list(range(FRAMES))
    for r in api_results:
        assert r.frame.shape == (432, 768, 3) and r.frame.dtype == np.uint8
        assert r.labels.shape == (432, 768) and r.labels.dtype == np.uint8
        assert r.source == car_video.stem  # the source's name: its file stem
        assert r.time == pytest.approx(r.pts * float(r.time_base))
        assert r.latency > 0
    times = [r.time for r in api_results]
    assert times == sorted(times) and times[1] - times[0] == pytest.approx(1 / 12.5, abs=1e-3)
    # real frames and real predictions: neither is a constant picture
    assert all(r.frame.std() > 10 and len(np.unique(r.labels)) > 1 for r in api_results)


@pytest.mark.slow
def test_api_labels_match_the_cli(api_results, car_video, duc_onnx, tmp_path):
    """'Runs the same stages as the CLI': identical label maps, frame by frame."""
    run_segment(car_video, duc_onnx, max_frames=FRAMES, labels_out=tmp_path, labels_format="npz", check=True)
    with np.load(tmp_path / "labels.npz") as archive:
        for r in api_results:
            np.testing.assert_array_equal(archive[f"f{r.index:06d}"], r.labels)


def test_scores_on_request_agree_with_labels(api_results):
    r = api_results[0]
    assert r.scores is not None and r.scores.dtype == np.float32 and r.scores.shape[0] == 19
    assert r.scores.shape[1] < 432 and r.scores.shape[2] < 768  # at model resolution, not frame size
    # the label map is these scores brought to frame size (bilinear, each class plane), then argmax
    at_frame_size = np.stack([cv2.resize(plane, (768, 432), interpolation=cv2.INTER_LINEAR) for plane in r.scores])
    np.testing.assert_array_equal(np.argmax(at_frame_size, axis=0), r.labels)


def test_scores_are_off_by_default(car_video, duc_onnx):
    with Pipeline(car_video, model=duc_onnx, max_frames=1) as pipeline:
        assert [r.scores for r in pipeline] == [None]


class CountingSink:
    def __init__(self):
        self.indices: list[int] = []
        self.closed_complete: bool | None = None

    def write(self, result: Result) -> None:
        self.indices.append(result.index)

    def close(self, complete: bool = True) -> None:
        self.closed_complete = complete


def test_callback_style_and_extra_sinks(car_video, duc_onnx):
    seen: list[int] = []
    sink = CountingSink()
    pipeline = Pipeline(car_video, model=duc_onnx, max_frames=3, on_result=lambda r: seen.append(r.index), sinks=[sink])
    summary = pipeline.run()
    assert seen == sink.indices == [0, 1, 2]
    assert summary.frames_out == 3 and sink.closed_complete is False  # stopped by --max-frames: not the whole file


def test_breaking_out_of_the_loop_stops_cleanly(car_video, duc_onnx):
    with Pipeline(car_video, model=duc_onnx) as pipeline:
        for r in pipeline:  # noqa: B007 - the first result is kept past the loop
            break
    assert r.index == 0 and pipeline.stopped_early
    assert pipeline.snapshot()["state"] == "stopped"
