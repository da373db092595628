"""The small segmentation head the engine tests share, and real frames prepared for it."""

from __future__ import annotations

import pytest

from streamseg.bench.modes import decode
from streamseg.preprocess import CpuPreprocessor
from tests.support.onnx_models import HEAD_SPEC, head_model


@pytest.fixture(scope="module")
def head_onnx(tmp_path_factory):
    return head_model(tmp_path_factory.mktemp("head"), HEAD_SPEC)


@pytest.fixture(scope="module")
def tensors(car_video):
    """The head's input tensors for the first 6 frames of the street clip."""
    prepare = CpuPreprocessor(HEAD_SPEC)
    return [prepare(frame).tensor for frame in decode(str(car_video), 6)]
