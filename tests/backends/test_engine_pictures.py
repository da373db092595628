"""Normalization in the engine: OpenVINO takes the resized uint8 frame and normalizes it in its own graph.

The preprocessor then hands the picture itself (a view where nothing is resized or padded); the engine's
scores must equal those of the float tensor the preprocessor writes otherwise, on real frames, for the
zoo's normalization and for a BGR, 0-255, padded one.
"""

from __future__ import annotations

import importlib.util

import numpy as np
import pytest
from PIL import Image

from streamseg.backends import create_backend
from streamseg.backends.base import input_spec
from streamseg.bench.modes import decode
from streamseg.models.spec import Normalize
from streamseg.postprocess.cpu import content_rows_cols
from streamseg.preprocess import CpuPreprocessor
from tests.support.cli import run_segment
from tests.support.onnx_models import HEAD_SPEC

needs_openvino = pytest.mark.skipif(importlib.util.find_spec("openvino") is None, reason="needs the openvino extra")

# Caffe-style: BGR channels, 0-255 pixels, mean subtraction only, and an input padded to a multiple of 32
BGR_PADDED = HEAD_SPEC.model_copy(
    update={
        "color_order": "BGR",
        "normalize": Normalize(range=255, mean=(103.9, 116.8, 123.7)),
        "resize": HEAD_SPEC.resize.model_copy(update={"pad_multiple": 32}),
    }
)


@pytest.fixture(scope="module")
def frames(car_video):
    return decode(str(car_video), 4)


def test_pictures_are_the_frame_itself_where_nothing_is_resized_or_padded(frames):
    frame = frames[0]
    height, width = frame.image.shape[:2]
    spec = HEAD_SPEC.with_short_side(height).as_pictures()
    picture = CpuPreprocessor(spec)(frame).tensor
    assert picture.dtype == np.uint8 and picture.shape == (1, height, width, 3)
    assert np.shares_memory(picture, frame.image)  # no copy, no float frame


def test_padding_takes_the_mean_color_in_the_models_channel_order(frames):
    prepared = CpuPreprocessor(BGR_PADDED.as_pictures())(frames[0])
    ch, cw = prepared.geometry.content_size
    ih, iw = prepared.geometry.input_size
    assert (ih, iw) != (ch, cw)  # the case under test: a padded input
    picture = prepared.tensor[0]
    assert picture.shape == (ih, iw, 3)
    assert np.array_equal(picture[ch:, :], np.broadcast_to([104, 117, 124], (ih - ch, iw, 3)))
    assert np.array_equal(picture[:, cw:], np.broadcast_to([104, 117, 124], (ih, iw - cw, 3)))


@needs_openvino
@pytest.mark.parametrize("spec", [HEAD_SPEC, BGR_PADDED], ids=["zoo", "bgr-255-padded"])
def test_openvino_normalizes_pictures_as_the_preprocessor_does(head_onnx, frames, spec):
    tensors = create_backend("openvino", head_onnx, spec)
    pictures = create_backend("openvino", head_onnx, spec, pictures=True)
    assert (tensors.input_dtype, pictures.input_dtype) == ("float32", "uint8")
    as_tensor, as_picture = CpuPreprocessor(input_spec(spec, tensors)), CpuPreprocessor(input_spec(spec, pictures))
    for frame in frames:
        prepared = as_tensor(frame)
        tensor, picture = prepared.tensor, as_picture(frame).tensor
        assert tensor.dtype == np.float32 and picture.dtype == np.uint8
        expected, got = tensors.run(tensor), pictures.run(picture)
        assert got.shape == expected.shape
        # the frame's part, less the outputs that see the padding: the mean color as a pixel is rounded
        rows, cols = content_rows_cols(prepared.geometry, *expected.shape[2:])
        inner = (slice(None), slice(None), slice(0, rows - 1), slice(0, cols - 1))
        expected, got = expected[inner], got[inner]
        assert np.abs(got - expected).max() <= 1e-4 * max(1.0, float(np.abs(expected).max()))
        assert len(np.unique(expected.argmax(1))) > 1  # scores of one class everywhere would prove little


def test_onnxruntime_keeps_its_float_input(head_onnx):
    engine = create_backend("onnxruntime", head_onnx, HEAD_SPEC, pictures=True)
    assert engine.input_dtype == "float32" and input_spec(HEAD_SPEC, engine) is HEAD_SPEC


@needs_openvino
def test_run_writes_the_same_label_maps_with_the_engine_normalizing_or_not(head_onnx, car_video, tmp_path):
    spec = head_onnx.with_suffix(".yaml")
    maps = {}
    for flag in ("--engine-normalize", "--no-engine-normalize"):
        out = tmp_path / flag.strip("-")
        run_segment(
            car_video,
            head_onnx,
            "--spec",
            str(spec),
            "--backend",
            "openvino",
            flag,
            max_frames=6,
            labels_out=out,
            check=True,
        )
        maps[flag] = np.stack([np.array(Image.open(p)) for p in sorted(out.glob("*.png"))])
    assert maps["--engine-normalize"].shape == (6, 432, 768)
    assert len(np.unique(maps["--engine-normalize"])) > 1
    # the same network on inputs equal to float rounding: labels differ at exact ties at most
    assert np.mean(maps["--engine-normalize"] == maps["--no-engine-normalize"]) >= 0.999
