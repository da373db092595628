"""``--propagate mv`` in real runs: labels carried along the decoder's motion vectors on real footage, and DIS flow
in their place, logged once, for a stream that has none."""

from __future__ import annotations

import csv
import logging
import urllib.request

import av
import numpy as np
import pytest
from PIL import Image

from streamseg import Pipeline
from streamseg.models.spec import ModelSpec
from streamseg.sources import SourceOptions, open_source
from tests.support.cli import run_cli
from tests.support.onnx_models import SPEC_21, conv_model
from tests.support.videos import make_video, moving_scene

FRAMES = 90  # car-detection.mp4 pans from about frame 50: carried labels must follow it


def rows(path) -> list[dict[str, str]]:
    with open(path, newline="") as f:
        return list(csv.DictReader(f))


def labels(folder, count: int) -> list[np.ndarray]:
    return [np.asarray(Image.open(folder / f"{i:06d}.png")) for i in range(count)]


def agreement(carried: list[np.ndarray], reference: list[np.ndarray], interval: int) -> float:
    """Pixel agreement with per-frame inference, over the frames that were not inferred."""
    return float(np.mean([(a == b).mean() for i, (a, b) in enumerate(zip(carried, reference)) if i % interval]))


@pytest.fixture(scope="module")
def colour_model(tmp_path_factory):
    """21 classes from each pixel's colour (a random 1x1 convolution): labels that follow the picture's content."""
    return conv_model(tmp_path_factory.mktemp("models") / "colour21.onnx", 21)


@pytest.mark.slow
def test_interval_three_carries_labels_along_the_motion_vectors_of_real_footage(colour_model, car_video, tmp_path):
    def run(name: str, *flags: str):
        proc = run_cli(
            "run", str(car_video), "--model", str(colour_model), "--spec", str(SPEC_21), "--max-frames", str(FRAMES),
            "--labels-out", str(tmp_path / name), "--no-progress", *flags, check=True,
        )  # fmt: skip
        return labels(tmp_path / name, FRAMES), proc.stderr

    every, _ = run("every")
    by_vectors, said = run("mv", "--interval", "3", "--propagate", "mv")
    held, _ = run("held", "--interval", "3", "--propagate", "none")
    summary = rows(tmp_path / "mv" / "summary.csv")
    assert [int(r["index"]) for r in summary] == list(range(FRAMES))  # every frame out
    assert [r["origin"] for r in summary] == ["inferred", "mv", "mv"] * (FRAMES // 3)  # the file has no I-frame there
    assert "labels carried by mv" in said, said
    for i in range(0, FRAMES, 3):  # inferred frames: the labels of a plain run
        assert np.array_equal(by_vectors[i], every[i])
    mv, hold = agreement(by_vectors, every, 3), agreement(held, every, 3)
    print(f"agreement with per-frame inference over carried frames: mv {mv:.4f}, held {hold:.4f}")
    assert mv > 0.9
    assert mv >= hold - 0.005  # never worse than holding the key frame's labels


@pytest.mark.parametrize("realtime", [False, True], ids=["file", "played-as-camera"])
def test_a_source_asked_for_vectors_puts_them_on_its_frames_and_no_other_does(car_video, realtime):
    options = SourceOptions(realtime=realtime)
    source = open_source(str(car_video), max_frames=3, options=options)
    try:
        assert all(frame.vectors is None for frame in source.frames())  # nothing asked of the decoder
    finally:
        source.close()
    source = open_source(str(car_video), max_frames=3, options=options, vectors=True)
    try:
        frames = list(source.frames())
    finally:
        source.close()
    assert frames[0].vectors is None  # an intra frame
    assert all(frame.vectors is not None and len(frame.vectors) for frame in frames[1:])


def intra_h264(path, frames: int, width: int = 160, height: int = 96):
    """H.264 with a keyframe on every frame: no inter blocks, so no motion vectors."""
    with av.open(str(path), "w") as container:
        stream = container.add_stream("libx264", rate=10)
        stream.width, stream.height, stream.pix_fmt = width, height, "yuv420p"
        stream.options = {"preset": "ultrafast", "x264-params": "keyint=1"}
        for i in range(frames):
            for packet in stream.encode(av.VideoFrame.from_ndarray(moving_scene(i, width, height), "rgb24")):
                container.mux(packet)
        for packet in stream.encode(None):
            container.mux(packet)
    return path


@pytest.mark.parametrize("codec", ["mjpeg", "intra-h264"])
def test_a_stream_without_vectors_falls_back_to_flow_and_says_so_once(colour_model, tmp_path, caplog, codec):
    """An intra-only clip (MJPEG, or H.264 with a keyframe on every frame) has no vectors: every carried frame gets
    DIS flow straight to its key frame, as ``--propagate flow`` does, and one log line says so."""
    if codec == "mjpeg":
        clip = make_video(tmp_path / "clip.mkv", width=160, height=96, frames=9, codec="mjpeg", pix_fmt="yuvj420p")
    else:
        clip = intra_h264(tmp_path / "clip.mp4", frames=9)
    spec = ModelSpec.from_yaml(SPEC_21)
    with caplog.at_level(logging.INFO, logger="streamseg.temporal.motion_vectors"):
        with Pipeline(clip, model=colour_model, spec=spec, interval=3, propagate="mv") as pipeline:
            by_vectors = list(pipeline)
    row = pipeline.summary().sources[0]
    with Pipeline(clip, model=colour_model, spec=spec, interval=3, propagate="flow") as pipeline:
        by_flow = list(pipeline)
    assert [r.origin for r in by_vectors] == ["inferred", "flow", "flow"] * 3
    for mv, flow in zip(by_vectors, by_flow):
        assert np.array_equal(mv.labels, flow.labels)
    told = [r for r in caplog.records if "without motion vectors" in r.getMessage()]
    assert len(told) == 1 and told[0].levelno == logging.WARNING and "clip" in told[0].getMessage()
    assert row["propagation"] == "flow (mv asked; the stream has no motion vectors)"


def test_smoothing_follows_the_vectors_between_key_frames(colour_model, car_video):
    """With ``smooth``, a key frame's average follows the vectors composed since the last key: every frame out,
    and /metrics counts the frames the vectors carried."""
    spec = ModelSpec.from_yaml(SPEC_21)
    with Pipeline(
        car_video, model=colour_model, spec=spec, interval=2, propagate="mv", smooth=0.5, max_frames=8, metrics_port=0
    ) as pipeline:
        results = list(pipeline)
        with urllib.request.urlopen(f"{pipeline.metrics.url}metrics", timeout=10) as page:
            metrics = page.read().decode()
    assert [r.origin for r in results] == ["inferred", "mv"] * 4
    assert all(r.labels.shape == results[0].frame.shape[:2] for r in results)
    assert pipeline.summary().sources[0]["propagation"] == "mv"
    assert 'streamseg_source_carried_frames_total{by="mv",source="car-detection"} 4.0' in metrics, metrics


def test_an_unknown_propagation_is_refused_with_the_choices(colour_model, tmp_path):
    clip = make_video(tmp_path / "clip.mp4", frames=2)
    proc = run_cli(
        "run", str(clip), "--model", str(colour_model), "--propagate", "vectors", "-o", str(tmp_path / "o.mp4")
    )
    assert proc.returncode == 2, proc.stderr
    assert "none" in proc.stderr and "flow" in proc.stderr and "mv" in proc.stderr, proc.stderr
    assert not (tmp_path / "o.mp4").exists()
