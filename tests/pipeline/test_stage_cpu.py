"""Each stage's CPU time per frame beside its wall time, and the process's CPU for every thread, on a real run."""

from __future__ import annotations

import math
import os

from streamseg import Pipeline
from streamseg.models import open_model
from streamseg.models.spec import ModelSpec
from tests.support.onnx_models import SPEC_21, conv_model

STAGES = {"decode", "preprocess", "infer", "composite", "output"}


def test_summary_has_each_stages_cpu_ms(car_video, tmp_path):
    spec = ModelSpec.from_yaml(SPEC_21).with_short_side(96, "size")
    model = open_model(conv_model(tmp_path / "conv21.onnx", 21), spec)
    summary = Pipeline(car_video, model, outputs=[str(tmp_path / "out.mp4")], max_frames=5).run()
    assert summary.frames_out == 5 and set(summary.stages) == STAGES
    for name, stage in summary.stages.items():
        assert math.isfinite(stage["cpu_ms"]) and stage["cpu_ms"] >= 0, name
        # one thread's CPU over a span never exceeds the span's wall time (1 ms of slack per item for the clocks)
        assert stage["cpu_s"] <= stage["busy_s"] + 0.001 * stage["items"], name
    assert math.isfinite(summary.cpu_seconds) and summary.cpu_seconds > 0
    assert summary.cpu_seconds <= summary.wall_seconds * (os.cpu_count() or 1) + 0.1
    assert summary.cpu_ms_per_frame == 1000 * summary.cpu_seconds / 5
