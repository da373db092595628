"""Model specs, the zoo, and the numerics of preprocessing and output decoding."""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np
import onnxruntime as ort
import pytest
import yaml

from streamseg import Pipeline
from streamseg.config import RunConfig
from streamseg.errors import ConfigError
from streamseg.frames import Frame
from streamseg.models import ZOO, open_model, spec_from_onnx
from streamseg.models.spec import ModelSpec
from streamseg.postprocess import CpuPostprocessor, duc_unpack
from streamseg.preprocess import CpuPreprocessor, plan_geometry
from streamseg.sources import open_source
from tests.support.cli import run_cli
from tests.support.paths import ROOT


@pytest.mark.parametrize("name", sorted(ZOO))
def test_shipped_configs_spell_out_the_zoo_specs(name):
    config = RunConfig.from_yaml(ROOT / "configs" / f"{name}.yaml")
    assert config.model == name
    assert config.spec == ZOO[name].spec


def test_spec_derives_class_count_and_default_palette():
    spec = ZOO["fcn_resnet50"].spec
    assert spec.num_classes == 21 and len(spec.colors) == 21
    assert spec.colors[15] == (192, 128, 128)  # VOC "person"


def test_spec_rejects_inconsistent_palette():
    data = ZOO["duc_resnet101_hdc"].spec.model_dump()
    data["palette"] = data["palette"][:5]
    with pytest.raises(ConfigError, match="palette has 5 colors for 19 classes"):
        ModelSpec.from_mapping(data, "x.yaml")


def test_export_embeds_the_spec(duc_onnx):
    assert spec_from_onnx(duc_onnx) == ZOO["duc_resnet101_hdc"].spec
    handle = open_model(str(duc_onnx))
    path, spec = handle.path, handle.spec
    assert path == Path(duc_onnx) and spec.output_name == "seg_loss"


def test_models_list_shows_sources_and_accuracy():
    proc = run_cli("models", "list", check=True)
    assert "fcn-resnet50-12.onnx" in proc.stdout and "60.50% on COCO val2017" in proc.stdout
    assert "81.92% on Cityscapes val" in proc.stdout


def test_fetch_offline_is_one_clear_line(tmp_path):
    import os
    import subprocess
    import sys

    env = {
        **os.environ,
        "STREAMSEG_CACHE": str(tmp_path),
        "https_proxy": "http://127.0.0.1:9",
        "HTTPS_PROXY": "http://127.0.0.1:9",
    }
    proc = subprocess.run(
        [sys.executable, "-m", "streamseg", "models", "fetch", "duc_resnet101_hdc:int8"],
        capture_output=True,
        text=True,
        env=env,
        timeout=120,
    )
    assert proc.returncode != 0 and "Traceback" not in proc.stderr
    assert "streamseg: error: cannot download" in proc.stderr
    assert not list(tmp_path.rglob("*.onnx"))


def test_geometry_rules():
    spec = ZOO["fcn_resnet50"].spec
    g = plan_geometry(spec.resize, 432, 768)
    assert g.content_size == g.input_size == (520, 924)
    duc = ZOO["duc_resnet101_hdc"].spec
    g = plan_geometry(duc.resize, 1080, 1920)
    assert g.content_size == (450, 800) and g.input_size == (800, 800)
    g = plan_geometry(duc.resize, 359, 641)
    assert g.input_size == (800, 800) and g.content_size == (448, 800)


def test_preprocessing_matches_the_reference_formula(car_video):
    """RGB, resized short side, (x/255 - mean)/std, NCHW — as torchvision's preset does it."""
    spec = ZOO["fcn_resnet50"].spec.model_copy(
        update={"resize": ZOO["fcn_resnet50"].spec.resize.model_copy(update={"size": 200})}
    )
    frame = next(open_source(str(car_video)).frames())
    prepared = CpuPreprocessor(spec)(frame)
    resized = cv2.resize(frame.image, (356, 200), interpolation=cv2.INTER_AREA).astype(np.float64) / 255
    expected = ((resized - [0.485, 0.456, 0.406]) / [0.229, 0.224, 0.225]).transpose(2, 0, 1)[None]
    assert prepared.tensor.shape == (1, 3, 200, 356) and prepared.tensor.dtype == np.float32
    np.testing.assert_allclose(prepared.tensor, expected, atol=1e-5)


def test_duc_padding_is_the_mean_color():
    spec = ZOO["duc_resnet101_hdc"].spec
    image = np.full((100, 200, 3), 7, np.uint8)
    frame = Frame("x", 0, image, 0, None, 0.0)
    tensor = CpuPreprocessor(spec)(frame).tensor
    assert tensor.shape == (1, 3, 800, 800)
    expected = np.broadcast_to((7 - np.array([122.675, 116.669, 104.008]))[:, None, None], (3, 400, 800))
    np.testing.assert_allclose(tensor[0, :, :400, :], expected, atol=1e-4)
    assert not tensor[0, :, 400:, :].any()  # padding = mean, i.e. zero after subtraction


def zoo_duc_postprocess(raw: np.ndarray, input_hw, content_hw, frame_hw) -> tuple[np.ndarray, np.ndarray]:
    """The model zoo's duc-postprocess.py (labels and the resized scores), written independently of streamseg."""
    label_num, ds_rate, cell_width = raw.shape[1], 8, 2
    feat_h, feat_w = input_hw[0] // ds_rate, input_hw[1] // ds_rate
    labels = np.empty((label_num, feat_h * 4, feat_w * 4), raw.dtype)
    packed = raw.reshape(label_num, 4, 4, feat_h, feat_w)
    for i in range(4):  # sub-pixel (i, j) of cell (y, x) lands at (4y + i, 4x + j)
        for j in range(4):
            labels[:, i::4, j::4] = packed[:, i, j]
    labels = labels[:, : content_hw[0] // cell_width, : content_hw[1] // cell_width]
    labels = cv2.resize(np.transpose(labels, [1, 2, 0]), (frame_hw[1], frame_hw[0]), interpolation=cv2.INTER_LINEAR)
    return np.argmax(labels, axis=2).astype(np.uint8), labels


def test_duc_decode_equals_the_zoo_reshape():
    rng = np.random.default_rng(1)
    raw = rng.normal(size=(1, 19, 160000)).astype(np.float32)
    ref = np.transpose(raw.reshape(19, 4, 4, 100, 100), (0, 3, 1, 4, 2)).reshape(19, 400, 400)
    assert np.array_equal(duc_unpack(raw, (800, 800), 8, 4), ref)
    spec = ZOO["duc_resnet101_hdc"].spec
    g = plan_geometry(spec.resize, 432, 768)  # content 450x800 inside 800x800
    labels = CpuPostprocessor(spec)(raw, g)
    expected, scores = zoo_duc_postprocess(raw, (800, 800), g.content_size, (432, 768))
    # streamseg resizes plane by plane, the zoo all 19 channels at once: OpenCV's two paths round
    # differently (~1e-4), so labels may differ only where the zoo's two best classes are that close
    differ = labels != expected
    top2 = np.sort(scores, axis=2)[..., -2:]
    assert differ.mean() < 1e-4
    assert (top2[..., 1] - top2[..., 0])[differ].max(initial=0) < 1e-3


@pytest.mark.parametrize("frame_hw", [(432, 768), (359, 641)])
def test_duc_labels_on_any_number_of_threads_are_the_argmax_of_resized_planes(frame_hw):
    """The threaded running maximum against np.argmax over a stack of per-class resized planes."""
    rng = np.random.default_rng(2)
    raw = rng.normal(size=(1, 19, 160000)).astype(np.float32)
    raw[0, 11] = raw[0, 4]  # exact ties across the runs' split: the lower class must win, as in np.argmax
    raw[0, 2] = raw[0, 1]  # and inside a run
    spec = ZOO["duc_resnet101_hdc"].spec
    g = plan_geometry(spec.resize, *frame_hw)
    unpacked = duc_unpack(raw, g.input_size, 8, 4)
    rows, cols = (round(c * 400 / i) for c, i in zip(g.content_size, g.input_size))
    stack = np.stack(
        [
            cv2.resize(np.ascontiguousarray(plane[:rows, :cols]), frame_hw[::-1], interpolation=cv2.INTER_LINEAR)
            for plane in unpacked
        ]
    )
    expected = np.argmax(stack, axis=0).astype(np.uint8)
    assert not (expected == 11).any() and not (expected == 2).any()
    for workers in (1, 2, 3):
        labels = CpuPostprocessor(spec, workers=workers)(raw, g)
        assert labels.shape == frame_hw and np.array_equal(labels, expected), workers


def test_pipeline_labels_equal_a_direct_onnxruntime_run(car_video, duc_onnx):
    """Independent path: decode, preprocess by formula, plain ORT session, zoo decode."""
    with Pipeline(car_video, duc_onnx, max_frames=3) as p:
        results = list(p)
    session = ort.InferenceSession(str(duc_onnx), providers=["CPUExecutionProvider"])
    for r in results:
        scaled = cv2.resize(r.frame, (800, 450), interpolation=cv2.INTER_LINEAR).astype(np.float32)  # upscale
        data = np.zeros((1, 3, 800, 800), np.float32)
        data[0, :, :450, :] = (scaled - np.array([122.675, 116.669, 104.008], np.float32)).transpose(2, 0, 1)
        raw = session.run(["seg_loss"], {"data": data})[0]
        expected, _ = zoo_duc_postprocess(raw, (800, 800), (450, 800), (432, 768))
        assert (r.labels == expected).mean() > 0.999  # float rounding may flip a near-tie


@pytest.mark.export
def test_fcn_export_matches_torch(tmp_path):
    """The exported ONNX (dynamic H/W) computes what the torchvision model computes."""
    import torch

    from streamseg.models.export import build_fcn

    model = build_fcn("fcn_resnet50", None, num_classes=21, seed=0)
    x = np.random.default_rng(0).normal(size=(1, 3, 96, 136)).astype(np.float32)
    with torch.no_grad():
        expected = model(torch.from_numpy(x))["out"].numpy()
    path = tmp_path / "m.onnx"
    run_cli("models", "export", "fcn_resnet50", "--output", str(path), check=True)
    got = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"]).run(["out"], {"input": x})[0]
    np.testing.assert_allclose(got, expected, rtol=1e-3, atol=1e-3)
    assert np.abs(expected).max() > 0  # random but non-zero weights


def test_spec_yaml_round_trip(tmp_path):
    spec = ZOO["duc_resnet101_hdc"].spec
    path = tmp_path / "s.yaml"
    path.write_text(yaml.safe_dump(spec.model_dump(mode="json")))
    assert ModelSpec.from_yaml(path) == spec
