"""The summary file read back by its own reader, in both forms, with and without the label-origin columns."""

from __future__ import annotations

import numpy as np
import pytest

from streamseg.models import spec_from_onnx
from streamseg.outputs.files.summary import read_summary
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
