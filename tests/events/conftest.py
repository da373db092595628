"""The red-wins model and red-square videos the event tests share."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.support.onnx_models import red_wins_model
from tests.support.videos import red_square_video

CROSSWALK = "crosswalk=0.4,0.3;0.6,0.3;0.6,0.7;0.4,0.7"  # the centre box the red square visits


@pytest.fixture(scope="session")
def red_wins(tmp_path_factory) -> tuple[Path, Path]:
    """(model.onnx, spec.yaml): class 1 exactly where the picture is red."""
    return red_wins_model(tmp_path_factory.mktemp("red_wins"))


@pytest.fixture(scope="session")
def one_visit(tmp_path_factory) -> Path:
    """4 s at 10 fps: the square is in the crosswalk from 1.5 s (frame 15) to 2.5 s (frame 25, out)."""
    return red_square_video(tmp_path_factory.mktemp("videos") / "one_visit.mp4", seconds=4, fps=10, inside=[(1.5, 2.5)])


@pytest.fixture(scope="session")
def two_visits(tmp_path_factory) -> Path:
    """4 s at 10 fps: in the crosswalk 1.0-1.5 s and again 1.8-2.5 s."""
    return red_square_video(
        tmp_path_factory.mktemp("videos") / "two_visits.mp4", seconds=4, fps=10, inside=[(1.0, 1.5), (1.8, 2.5)]
    )
