"""Labels out of the engine: ONNX Runtime and OpenVINO run the ArgMax, the pipeline only resizes uint8 labels.

A small segmentation head with one Winograd-sized 3x3 convolution (512 x 512 channels) runs on real
frames; its engine labels must equal the argmax of the same engine's scores, on every path.
"""

from __future__ import annotations

import importlib.util

import numpy as np
import pytest
from PIL import Image

from streamseg.backends import auto_candidates, create_backend
from streamseg.bench.modes import decode
from streamseg.isa import this_cpu_isa
from streamseg.models.zoo import ZOO
from streamseg.preprocess import CpuPreprocessor
from tests.support.cli import run_segment
from tests.support.onnx_models import HEAD_SPEC

needs_openvino = pytest.mark.skipif(importlib.util.find_spec("openvino") is None, reason="needs the openvino extra")
SPEC = HEAD_SPEC


def engine_pair(backend: str, model, **options):
    scores = create_backend(backend, model, SPEC, **options)
    labels = create_backend(backend, model, SPEC, labels=True, **options)
    assert (scores.output, labels.output) == ("scores", "labels")
    return scores, labels


def agreement(scores_engine, labels_engine, tensors) -> float:
    equal = []
    for tensor in tensors:
        scores, labels = scores_engine.run(tensor), labels_engine.run(tensor)
        assert labels.dtype == np.uint8 and labels.shape == (1, *scores.shape[2:])
        equal.append(np.mean(labels == np.argmax(scores, axis=1)))
    return float(np.mean(equal))


@pytest.mark.parametrize("winograd", [False, True])
def test_onnxruntime_labels_are_the_argmax_of_its_scores(head_onnx, tensors, winograd):
    scores, labels = engine_pair("onnxruntime", head_onnx, winograd=winograd)
    assert ("Winograd" in labels.name) is winograd
    assert agreement(scores, labels, tensors) == 1.0


@needs_openvino
@pytest.mark.parametrize("precision", [None, "bf16"])
def test_openvino_labels_are_the_argmax_of_its_scores(head_onnx, tensors, precision):
    import openvino

    if precision == "bf16" and "BF16" not in openvino.Core().get_property("CPU", "OPTIMIZATION_CAPABILITIES"):
        pytest.skip("this CPU computes no bf16")
    scores, labels = engine_pair("openvino", head_onnx, precision=precision)
    # bf16: the TopK reads the last layer's bf16 scores, the scores output is widened first: near-ties may differ
    assert agreement(scores, labels, tensors) >= (1.0 if precision is None else 0.99)


def test_duc_models_keep_their_scores(duc_onnx):
    backend = create_backend("onnxruntime", duc_onnx, ZOO["duc_resnet101_hdc"].spec, labels=True)
    assert backend.output == "scores"  # their labels come from scores resized to the frame first


def test_run_writes_the_same_label_maps_either_way(head_onnx, car_video, tmp_path):
    spec = head_onnx.with_suffix(".yaml")
    maps = {}
    for flag in ("--engine-labels", "--no-engine-labels"):
        out = tmp_path / flag.strip("-")
        run_segment(car_video, head_onnx, "--spec", str(spec), flag, max_frames=6, labels_out=out, check=True)
        maps[flag] = [np.array(Image.open(p)) for p in sorted(out.glob("*.png"))]  # palette PNGs: class ids
    assert len(maps["--engine-labels"]) == 6
    assert len(np.unique(np.stack(maps["--engine-labels"]))) > 1  # a map of one class would prove little
    for with_engine, without in zip(maps["--engine-labels"], maps["--no-engine-labels"], strict=True):
        assert with_engine.shape == without.shape == (432, 768)  # the frame's size
        assert np.array_equal(with_engine, without)


def test_auto_runs_int8_on_openvino_and_says_which_isa_it_found():
    order, passed = auto_candidates(None, None, "int8")
    fast = bool({"VNNI", "AMX"} & set(this_cpu_isa() or []))
    if importlib.util.find_spec("openvino") is not None:
        assert order == ["openvino", "onnxruntime"]  # faster than onnxruntime's int8 with VNNI/AMX and on AVX2 alone
        assert any(("int8 on this CPU's" if fast else "without VNNI or AMX") in why for why in passed)
    else:
        assert order == ["onnxruntime"]
    assert auto_candidates(None, None, "fp32")[0] == ["onnxruntime"]  # FP32 files stay on ONNX Runtime
    assert auto_candidates("int8", None, "fp32")[0] == ["onnxruntime"]  # no Q/DQ file: nothing for openvino


@needs_openvino
def test_openvino_serves_every_input_size_with_the_same_labels(head_onnx, car_video):
    """Sources of three sizes, then the first again: the second size makes OpenVINO's one dynamic model."""
    frames = decode(str(car_video), 1)
    reference = create_backend("onnxruntime", head_onnx, SPEC, winograd=False)
    engine = create_backend("openvino", head_onnx, SPEC, labels=True)
    for short_side in (144, 112, 160, 144):
        tensor = CpuPreprocessor(SPEC.with_short_side(short_side))(frames[0]).tensor
        assert tensor.shape[2] == short_side
        engine.prepare(tensor.shape)
        labels = engine.run(tensor)
        assert labels.shape == (1, *reference.run(tensor).shape[2:])
        assert np.mean(labels == np.argmax(reference.run(tensor), axis=1)) == 1.0
