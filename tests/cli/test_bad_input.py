"""Bad input: one line on stderr, a non-zero exit, no traceback, outputs left valid."""

from __future__ import annotations

import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import onnx
import pytest

from tests.support.cli import assert_one_line_error, run_cli
from tests.support.paths import ROOT
from tests.support.videos import make_video, read_video


@pytest.fixture(scope="module")
def clip(tmp_path_factory) -> Path:
    """A short generated video: these errors come before a frame is decoded, or after two."""
    return make_video(tmp_path_factory.mktemp("clip") / "clip.mp4")


def test_missing_input(tmp_path, duc_onnx):
    proc = run_cli("run", str(tmp_path / "nope.mp4"), "-o", str(tmp_path / "o.mp4"), "--model", str(duc_onnx))
    assert_one_line_error(proc, "input not found", "nope.mp4")
    assert not (tmp_path / "o.mp4").exists()


def test_input_that_is_not_a_video(tmp_path, duc_onnx):
    text = tmp_path / "notes.mp4"
    text.write_text("this is not a video\n" * 50)
    proc = run_cli("run", str(text), "-o", str(tmp_path / "o.mp4"), "--model", str(duc_onnx))
    assert_one_line_error(proc, "notes.mp4", "not a readable video")


def test_unknown_model(tmp_path, clip):
    proc = run_cli("run", str(clip), "-o", str(tmp_path / "o.mp4"), "--model", "segformer_b9")
    assert_one_line_error(proc, "unknown model 'segformer_b9'", "fcn_resnet50")


def test_zoo_model_not_downloaded_says_what_to_run(tmp_path, clip):
    proc = subprocess.run(
        [sys.executable, "-m", "streamseg", "run", str(clip), "-o", str(tmp_path / "o.mp4"), "--model", "fcn_resnet50"],
        capture_output=True,
        text=True,
        env={"STREAMSEG_CACHE": str(tmp_path / "cache"), "PATH": ""},
    )
    assert_one_line_error(proc, "not downloaded", "streamseg models fetch fcn_resnet50")


def test_onnx_whose_io_does_not_match_its_spec(tmp_path, clip, duc_onnx):
    model = onnx.load(str(duc_onnx))
    model.graph.input[0].name = "pixels"
    for node in model.graph.node:
        node.input[:] = ["pixels" if x == "data" else x for x in node.input]
    renamed = tmp_path / "renamed.onnx"
    onnx.save(model, str(renamed))
    proc = run_cli("run", str(clip), "-o", str(tmp_path / "o.mp4"), "--model", str(renamed))
    assert_one_line_error(proc, "spec input 'data'", "pixels")


@pytest.mark.slow
def test_foreign_onnx_without_spec(tmp_path, clip, duc_onnx):
    model = onnx.load(str(duc_onnx))
    del model.metadata_props[:]
    bare = tmp_path / "bare.onnx"
    onnx.save(model, str(bare))
    proc = run_cli("run", str(clip), "-o", str(tmp_path / "o.mp4"), "--model", str(bare))
    assert_one_line_error(proc, "no streamseg spec", "--spec")
    ok = run_cli(
        "run",
        str(clip),
        "-o",
        str(tmp_path / "o.mp4"),
        "--model",
        str(bare),
        "--spec",
        str(ROOT / "configs" / "duc_resnet101_hdc.yaml"),
        "--max-frames",
        "2",
    )
    assert ok.returncode == 0, ok.stderr


def test_bad_yaml_names_the_line(tmp_path, clip, duc_onnx):
    bad = tmp_path / "bad.yaml"
    bad.write_text("overlay: mask\nalpha: [0.5\n")
    proc = run_cli("run", str(clip), "-o", str(tmp_path / "o.mp4"), "--model", str(duc_onnx), "--config", str(bad))
    assert_one_line_error(proc, "bad.yaml", "invalid YAML", "line")


@pytest.mark.parametrize(
    "text, fragments",
    [
        ("overlay: mask\nalfa: 0.3\n", ("alfa", "unknown key")),
        ("alpha: 2.5\n", ("alpha", "less than or equal to 1")),
        ("encoder:\n  crf: 99\n", ("encoder.crf",)),
        ("spec:\n  name: x\n  normalize: {mean: [1, 2]}\n", ("spec.normalize.mean",)),
    ],
)
def test_bad_config_names_the_key(tmp_path, clip, duc_onnx, text, fragments):
    config = tmp_path / "c.yaml"
    config.write_text(text)
    proc = run_cli("run", str(clip), "-o", str(tmp_path / "o.mp4"), "--model", str(duc_onnx), "--config", str(config))
    assert_one_line_error(proc, str(config), *fragments)


def test_unknown_class_in_filter(tmp_path, clip, duc_onnx):
    proc = run_cli(
        "run", str(clip), "-o", str(tmp_path / "o.mp4"), "--model", str(duc_onnx), "--classes", "car,unicorn"
    )
    assert_one_line_error(proc, "unicorn")


def test_output_folder_missing(tmp_path, clip, duc_onnx):
    proc = run_cli("run", str(clip), "-o", str(tmp_path / "no" / "o.mp4"), "--model", str(duc_onnx))
    assert_one_line_error(proc, "output folder does not exist")


@pytest.mark.slow
def test_sigint_finalizes_a_playable_file(tmp_path, car_video, duc_onnx):
    out = tmp_path / "partial.mp4"
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "streamseg",
            "run",
            str(car_video),
            "-o",
            str(out),
            "--model",
            str(duc_onnx),
            "--labels-out",
            str(tmp_path / "labels"),
        ],
        stderr=subprocess.PIPE,
        text=True,
    )
    deadline = time.time() + 60
    while time.time() < deadline and len(list((tmp_path / "labels").glob("*.png"))) < 10:
        time.sleep(0.2)
    proc.send_signal(signal.SIGINT)
    _, stderr = proc.communicate(timeout=60)
    assert proc.returncode == 0, stderr
    assert "Traceback" not in stderr and "stopped early" in stderr
    images, pts, _, facts = read_video(out)
    written = len(list((tmp_path / "labels").glob("*.png")))
    assert 10 <= len(images) < 377 and len(images) == written
    assert pts == sorted(pts) and facts["audio"] == ["aac"]
    assert np.asarray(images[-1]).std() > 0  # a real picture, not a blank flush
