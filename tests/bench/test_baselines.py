"""``streamseg bench``'s baselines a user would otherwise write: same-engine and naive, on real footage.

Speed is not asserted: each mode runs, counts its frames and reports a rate; ratios follow from the rates.
"""

from __future__ import annotations

import json
import math

import av
import pytest

from streamseg.backends import create_backend
from streamseg.bench.same_engine import STAGES, run_same_engine
from streamseg.models import open_model
from streamseg.models.spec import ModelSpec
from tests.support.cli import run_cli
from tests.support.onnx_models import SPEC_21, conv_model

PIPELINE_STAGES = {"decode", "preprocess", "infer", "composite", "output"}


@pytest.fixture(scope="module")
def conv21(tmp_path_factory):
    """A 1x1 convolution to 21 classes: a real ONNX model, small enough to run many frames fast."""
    return conv_model(tmp_path_factory.mktemp("models") / "conv21.onnx", 21)


@pytest.fixture(scope="module")
def lraspp_onnx(tmp_path_factory):
    path = tmp_path_factory.mktemp("models") / "lraspp.onnx"
    run_cli("models", "export", "lraspp_mobilenet_v3_large", "--weights", "none", "--output", str(path), check=True)
    return path


def _bench(*args: str) -> dict:
    return json.loads(run_cli("bench", *args, "--json", check=True).stdout)


def test_same_engine_runs_the_pipelines_engine_on_every_frame(car_video, conv21):
    report = _bench(
        str(car_video), "--model", str(conv21), "--spec", str(SPEC_21), "--frames", "6", "--size", "96",
        "--modes", "end-to-end,same-engine",
    )  # fmt: skip
    same = report["same_engine"]
    assert same["fps"] == report["same_engine_fps"] > 0 and same["frames"] == 6
    assert same["engine"] == report["end_to_end"]["engine"]  # the same engine, made the same way
    assert set(same["stages"]) == set(STAGES) and all(s["items"] == 6 for s in same["stages"].values())
    assert report["ratios"]["end_to_end/same_engine"] == pytest.approx(
        report["end_to_end_fps"] / report["same_engine_fps"], rel=1e-3
    )
    assert report["naive_fps"] is None and report["ratios"]["end_to_end/naive"] is None  # not asked for

    e2e = report["end_to_end"]  # each stage's CPU beside its wall time, and the process's for every thread
    assert set(e2e["stages"]) == PIPELINE_STAGES
    for stage in e2e["stages"].values():
        assert math.isfinite(stage["cpu_ms"]) and stage["cpu_ms"] >= 0
    assert math.isfinite(e2e["process_cpu_ms"]) and e2e["process_cpu_ms"] > 0
    assert set(report["machine"]["isa"]) <= {"AVX2", "AVX-512", "VNNI", "AVX512_BF16", "AMX"}


def test_text_summary_prints_every_ratio(car_video, conv21):
    proc = run_cli(
        "bench", str(car_video), "--model", str(conv21), "--spec", str(SPEC_21), "--frames", "3", "--size", "64",
        "--modes", "bare,end-to-end,same-engine", check=True,
    )  # fmt: skip
    text = proc.stdout
    for key in ("end_to_end/bare", "end_to_end/naive", "end_to_end/same_engine"):
        assert key in text
    assert "same-engine" in text and "process CPU" in text and "cpu " in text and "ISA" in text


def test_same_engine_loop_writes_a_playable_video(car_video, conv21, tmp_path):
    handle = open_model(conv21, ModelSpec.from_yaml(SPEC_21).with_short_side(64, "size"))
    engine = create_backend("onnxruntime", handle, handle.spec, threads=1)
    out = tmp_path / "same.mp4"
    seen: list[int] = []
    try:
        times = run_same_engine(car_video, out, engine, handle.spec, frames=4, on_frame=seen.append)
    finally:
        engine.close()
    assert seen == [0, 1, 2, 3] and all(len(values) == 4 for values in times.values())
    with av.open(str(out)) as container:
        video = container.streams.video[0]
        assert sum(1 for _ in container.decode(video)) == 4
        with av.open(str(car_video)) as source:  # the frame's own size: the labels were resized back to it
            assert (video.width, video.height) == (source.streams.video[0].width, source.streams.video[0].height)


@pytest.mark.export
@pytest.mark.slow
def test_naive_and_same_engine_for_a_light_model(car_video, lraspp_onnx):
    report = _bench(
        str(car_video), "--model", str(lraspp_onnx), "--frames", "3", "--size", "96",
        "--modes", "bare,naive,same-engine",
    )  # fmt: skip
    assert "naive" not in report["skipped"]
    for mode in ("naive", "same_engine"):
        assert report[mode]["fps"] > 0 and report[mode]["frames"] == 3
    assert report["naive"]["same_weights_check"]["label_agreement"] >= 0.99  # the same network and weights
    assert report["same_engine"]["precision"] == report["bare"]["precision"] == "fp32"


def test_zoo_model_without_onnx_file_says_how_to_make_one(car_video):
    proc = run_cli("bench", str(car_video), "--model", "lraspp_mobilenet_v3_large", "--frames", "2")
    assert proc.returncode != 0 and "Traceback" not in proc.stderr
    assert "streamseg models export lraspp_mobilenet_v3_large" in proc.stderr
