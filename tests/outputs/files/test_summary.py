"""The summary file read back by its own reader, in both forms, with and without the label-origin columns."""

from __future__ import annotations

from fractions import Fraction

import numpy as np
import pytest

from streamseg.frames import Result
from streamseg.models import spec_from_onnx
from streamseg.outputs.files.summary import SummarySink, read_summary
from tests.support.cli import run_segment
from tests.support.videos import make_video


@pytest.mark.slow
@pytest.mark.parametrize(("suffix", "interval"), [(".csv", "2"), (".jsonl", None)])
def test_read_summary_gives_every_frame_of_a_run(duc_onnx, tmp_path, suffix, interval):
    clip = make_video(tmp_path / "clip.mp4", width=64, height=48, frames=6)
    summary = tmp_path / f"s{suffix}"
    flags = ["--interval", interval] if interval else []
    run_segment(clip, duc_onnx, "--summary", str(summary), "--no-progress", *flags, check=True)
    if interval and suffix == ".csv":  # the origin columns sit between latency_ms and the classes
        assert summary.read_text().splitlines()[0].startswith("index,pts,time,latency_ms,origin,age_frames,age_ms,")
    series = read_summary(summary)
    assert list(series.index) == list(range(6))
    assert set(series.classes) <= set(spec_from_onnx(duc_onnx).classes)
    np.testing.assert_allclose(series.fractions.sum(axis=1), 1.0, atol=1e-4)  # every pixel has one class


@pytest.mark.parametrize("suffix", [".csv", ".jsonl"])
def test_read_summary_leaves_out_the_regions_coverage(tmp_path, suffix):
    """Coverage columns (REGION/CLASS, empty where a share is unknown) follow the classes; they are not classes."""
    path = tmp_path / f"s{suffix}"
    sink = SummarySink(path, ("road", "car"), coverage=(("lane", "car"), ("lane", "road")))
    labels = np.array([[0, 0, 0, 1]], dtype=np.uint8)
    image = np.zeros((1, 4, 3), dtype=np.uint8)
    for index, coverage in enumerate([{"lane": {"car": 0.5}}, None]):
        sink.write(Result("clip", index, index, Fraction(1, 10), 0.0, image, labels, image, 0.01, coverage=coverage))
    sink.close()
    series = read_summary(path)
    assert series.classes == ("road", "car")
    np.testing.assert_allclose(series.fractions, [[0.75, 0.25], [0.75, 0.25]])
