"""Shared fixtures: real media, exported models, a trained model; markers that skip what this machine lacks.

Helpers that tests import live in tests/support/.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.support.cli import run_cli
from tests.support.extras import HAS_TORCH
from tests.support.paths import MEDIA

NEEDS_EXPORT = 'needs the export extra (torch, torchvision): pip install -e ".[export]"'
# fixtures that export or train with torch, a minute or more each on 2 cores: their tests are export and slow
TORCH_FIXTURES = {"fcn_onnx", "trained_model"}


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """A test that uses a torch fixture is an ``export`` and a ``slow`` test; ``export`` tests skip without torch."""
    for item in items:
        if TORCH_FIXTURES & set(getattr(item, "fixturenames", ())):
            item.add_marker(pytest.mark.export)
            item.add_marker(pytest.mark.slow)
        if not HAS_TORCH and item.get_closest_marker("export"):
            item.add_marker(pytest.mark.skip(reason=NEEDS_EXPORT))


@pytest.fixture(scope="session")
def media() -> Path:
    if not (MEDIA / "car-detection.mp4").exists():
        pytest.skip(f"real footage not found: put car-detection.mp4 in {MEDIA} or set STREAMSEG_MEDIA")
    return MEDIA


@pytest.fixture(scope="session")
def car_video(media: Path) -> Path:
    return media / "car-detection.mp4"


@pytest.fixture(scope="session")
def fcn_onnx(tmp_path_factory) -> Path:
    """fcn_resnet50 with random weights, exported once per session (needs the export extra)."""
    if not HAS_TORCH:
        pytest.skip(NEEDS_EXPORT)
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

    Its val mIoU is about 0.8; see tests/training/test_train.py for the measured figures.
    """
    if not HAS_TORCH:
        pytest.skip(NEEDS_EXPORT)
    root = tmp_path_factory.mktemp("trained")
    data, output = root / "synth", root / "fcn_tiny"
    run_cli("datasets", "synth", "--out", str(data), "--n", "300", "--video-frames", "30", check=True)
    run_cli(
        "train",
        "--model",
        "fcn_tiny",
        "--data",
        str(data),
        "--output",
        str(output),
        "--epochs",
        "14",
        "--crop-size",
        "160",
        "--no-progress",
        check=True,
        timeout=1800,
    )  # ~3 min on 2 quiet cores
    return TrainedModel(
        data=data,
        video=data / "heldout" / "heldout.mp4",
        video_labels=data / "heldout" / "labels",
        output=output,
        onnx=output / "model.onnx",
        checkpoint=output / "last.pt",
        best=output / "best.pt",
        classes=("background", "road", "sidewalk", "sky", "car", "person"),
        history=[json.loads(line) for line in (output / "history.jsonl").read_text().splitlines()],
    )
