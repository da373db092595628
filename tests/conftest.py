"""Shared fixtures: real media, exported models, generated videos."""

from __future__ import annotations

import importlib.util
import json
import os
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
MEDIA = Path(os.environ.get("STREAMSEG_MEDIA") or ROOT.parent / "shared" / "media")  # env: e.g. a GPU machine's copy
HAS_TORCH = importlib.util.find_spec("torch") is not None


@pytest.fixture(scope="session")
def media() -> Path:
    if not (MEDIA / "car-detection.mp4").exists():
        pytest.skip(f"real footage not found at {MEDIA}")
    return MEDIA


@pytest.fixture(scope="session")
def car_video(media: Path) -> Path:
    return media / "car-detection.mp4"


def run_cli(*args: str, cwd: Path | None = None, timeout: float = 600, check: bool = False,
            input: str | None = None) -> subprocess.CompletedProcess:
    """``streamseg ARGS`` in a real subprocess, as a user would run it."""
    proc = subprocess.run([sys.executable, "-m", "streamseg", *args], cwd=cwd, capture_output=True, text=True,
                          timeout=timeout, input=input)
    if check and proc.returncode != 0:
        raise AssertionError(f"streamseg {' '.join(args)} exited {proc.returncode}:\n{proc.stderr}")
    return proc


@pytest.fixture(scope="session")
def fcn_onnx(tmp_path_factory) -> Path:
    """fcn_resnet50 with random weights, exported once per session (needs the export extra)."""
    if not HAS_TORCH:
        pytest.skip("needs the export extra (torch, torchvision)")
    path = tmp_path_factory.mktemp("models") / "fcn_resnet50.onnx"
    run_cli("models", "export", "fcn_resnet50", "--weights", "none", "--output", str(path), check=True)
    return path


@pytest.fixture(scope="session")
def duc_onnx(tmp_path_factory) -> Path:
    """The DUC stand-in with the zoo's I/O contract (no torch needed)."""
    path = tmp_path_factory.mktemp("models") / "duc_standin.onnx"
    run_cli("models", "export", "duc_resnet101_hdc", "--weights", "none", "--output", str(path), check=True)
    return path


@dataclass(frozen=True)
class TrainedModel:
    """What ``trained_model`` returns; every path is inside one session temp folder."""

    data: Path  # synthetic VOC dataset: JPEGImages/, SegmentationClass/, ImageSets/, classes.txt
    video: Path  # data/heldout/heldout.mp4, 320x240, never seen in training
    video_labels: Path  # data/heldout/labels/000000.png ...: its ground truth (palette PNG, value = class id)
    output: Path  # the `streamseg train --output` folder
    onnx: Path  # output/model.onnx, spec (6 classes, palette, short side 240) embedded: `run --model` ready
    checkpoint: Path  # output/last.pt: model/optimizer state dicts, epoch, iteration, meta (weights_only=True)
    best: Path  # output/best.pt: the best epoch's model state dict alone
    classes: tuple[str, ...]  # background, road, sidewalk, sky, car, person
    history: list  # one dict per epoch: epoch, iteration, loss, val_miou, val_pixel_accuracy, seconds


@pytest.fixture(scope="session")
def trained_model(tmp_path_factory) -> TrainedModel:
    """fcn_tiny trained once per session on synthetic street scenes via the real CLI (about 2-3 min on 2 cores).

    Its val mIoU is about 0.8; see tests/test_train.py for the measured figures.
    """
    if not HAS_TORCH:
        pytest.skip("needs the export extra (torch, torchvision)")
    root = tmp_path_factory.mktemp("trained")
    data, output = root / "synth", root / "fcn_tiny"
    run_cli("datasets", "synth", "--out", str(data), "--n", "300", "--video-frames", "30", check=True)
    run_cli("train", "--model", "fcn_tiny", "--data", str(data), "--output", str(output), "--epochs", "14",
            "--crop-size", "160", "--no-progress", check=True, timeout=1800)  # ~3 min on 2 quiet cores
    return TrainedModel(
        data=data, video=data / "heldout" / "heldout.mp4", video_labels=data / "heldout" / "labels", output=output,
        onnx=output / "model.onnx", checkpoint=output / "last.pt", best=output / "best.pt",
        classes=("background", "road", "sidewalk", "sky", "car", "person"),
        history=[json.loads(line) for line in (output / "history.jsonl").read_text().splitlines()],
    )
