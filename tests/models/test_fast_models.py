"""The mobile models (LR-ASPP and DeepLabV3 on MobileNetV3-Large): zoo entries, export, torch backend, INT8, train."""

from __future__ import annotations

import numpy as np
import onnx
import onnxruntime as ort
import pytest

from streamseg.backends import create_backend
from streamseg.models import ZOO, spec_from_onnx
from tests.support.cli import run_cli
from tests.support.extras import HAS_TORCH

FAST = ("lraspp_mobilenet_v3_large", "deeplabv3_mobilenet_v3_large")
SIZE = 96
needs_torch = pytest.mark.export  # skipped without torch, saying so (tests/conftest.py)


def test_models_list_shows_the_fast_models_with_published_accuracy_and_flops():
    proc = run_cli("models", "list", check=True)
    lines = proc.stdout
    assert "lraspp_mobilenet_v3_large: Lite R-ASPP" in lines and "deeplabv3_mobilenet_v3_large: DeepLabV3" in lines
    assert "mIoU 57.90% on COCO val2017, VOC classes (torchvision)" in lines
    assert "mIoU 60.30% on COCO val2017, VOC classes (torchvision)" in lines
    assert "2.1 GFLOPs at 520x520" in lines and "10.5 GFLOPs at 520x520" in lines
    assert "weights LRASPP_MobileNet_V3_Large_Weights.COCO_WITH_VOC_LABELS_V1" in lines


@needs_torch
@pytest.mark.slow  # importing torchvision alone takes seconds
@pytest.mark.parametrize("name", FAST)
def test_zoo_figures_are_torchvisions_own(name):
    """Accuracy and FLOPs in the zoo are the ones torchvision's weight entry publishes."""
    from streamseg.models.torch_compat import import_torchvision

    entry = ZOO[name]
    enum_name, member = entry.torchvision_weights.split(".")
    weights = getattr(getattr(import_torchvision().models.segmentation, enum_name), member)
    metrics = weights.meta["_metrics"]["COCO-val2017-VOC-labels"]
    published = {(a.metric, a.value) for a in entry.accuracy}
    assert {("mIoU", metrics["miou"]), ("pixel acc", metrics["pixel_acc"])} <= published
    assert entry.gflops == weights.meta["_ops"]
    assert weights.transforms().resize_size == [entry.spec.resize.size]
    assert list(weights.meta["categories"]) == list(entry.spec.classes)


@needs_torch
@pytest.mark.slow
@pytest.mark.parametrize("name", FAST)
def test_training_builds_the_fast_models_with_new_class_counts(name):
    import torch

    from streamseg.training.models import MODELS, _last_layers, build_model

    model = build_model(name, 6)
    with torch.no_grad():
        out = model.eval()(torch.randn(1, 3, 64, 96))
    assert out["out"].shape == (1, 6, 64, 96)
    assert ("aux" in out) == MODELS[name].aux  # LR-ASPP has no aux head
    # what --weights pretrained does to the 21-class model: every last layer replaced
    for owner, attr in _last_layers(model):
        assert getattr(owner, attr).out_channels == 6


@pytest.fixture(scope="module", params=FAST)
def exported(request, tmp_path_factory):
    """NAME exported with random weights through the real CLI."""
    if not HAS_TORCH:
        pytest.skip("needs the export extra (torch, torchvision)")
    path = tmp_path_factory.mktemp("fast") / f"{request.param}.onnx"
    run_cli("models", "export", request.param, "--weights", "none", "--output", str(path), check=True)
    return request.param, path


@pytest.mark.export
@pytest.mark.slow
def test_export_has_the_spec_and_dynamic_size(exported):
    from streamseg.bench.flops import count_macs

    name, path = exported
    assert spec_from_onnx(path) == ZOO[name].spec
    # torchvision's "GFLOPS" are multiply-adds (see docs/benchmarks.md); the exported graph has them all
    # but the aux head (DeepLabV3's: 0.02 G) and LR-ASPP's 1x1 conv on the pooled 1x1 map (shape unresolved)
    assert count_macs(path, (1, 3, 520, 520)).gmacs == pytest.approx(ZOO[name].gflops, rel=0.01)
    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    for h, w in ((96, 160), (120, 120)):
        out = session.run(None, {"input": np.random.default_rng(0).normal(size=(1, 3, h, w)).astype(np.float32)})[0]
        assert out.shape == (1, 21, h, w)


@pytest.mark.export
@pytest.mark.slow
def test_torch_backend_matches_onnxruntime_on_footage(exported, car_video):
    from tests.support.footage import compare_on_footage

    _name, path = exported
    spec = spec_from_onnx(path)
    spec = spec.model_copy(update={"resize": spec.resize.model_copy(update={"size": SIZE})})
    torch_backend = create_backend("torch", path, spec, threads=2)
    ort_backend = create_backend("onnxruntime", path, spec, winograd=False)
    try:
        for relative, agreement in compare_on_footage(torch_backend, ort_backend, spec, car_video, frames=3):
            assert relative < 1e-4 and agreement > 0.999
    finally:
        torch_backend.close()
        ort_backend.close()


@pytest.mark.export
@pytest.mark.slow
def test_weights_copy_survives_folded_batchnorm(tmp_path, car_video):
    """LR-ASPP with BatchNorm statistics far from identity: the exporter folds them, the torch backend must too.

    (Random weights keep BN at mean 0 / var 1, where folding changes almost nothing.)
    """
    import torch

    from streamseg.models.export import build_fcn, embed_spec, export_torch_module
    from tests.support.footage import compare_on_footage

    name = "lraspp_mobilenet_v3_large"
    module = build_fcn(name, None, num_classes=21)
    x = np.random.default_rng(0).normal(size=(1, 3, SIZE, 160)).astype(np.float32)
    with torch.no_grad():
        plain = module.eval()(torch.from_numpy(x))["out"].numpy()  # BN at its initial, identity statistics
    g = torch.Generator().manual_seed(1)
    with torch.no_grad():
        for bn in (m for m in module.modules() if isinstance(m, torch.nn.BatchNorm2d)):
            n = bn.num_features
            bn.running_mean.copy_(torch.randn(n, generator=g) * 0.2)
            bn.running_var.copy_(torch.rand(n, generator=g) + 0.5)
            bn.weight.copy_(torch.rand(n, generator=g) + 0.5)
            bn.bias.copy_(torch.randn(n, generator=g) * 0.2)
    path = tmp_path / "lraspp_bn.onnx"
    export_torch_module(module, path)
    embed_spec(path, ZOO[name].spec)
    spec = ZOO[name].spec.model_copy(update={"resize": ZOO[name].spec.resize.model_copy(update={"size": SIZE})})
    torch_backend = create_backend("torch", path, spec, threads=2)
    ort_backend = create_backend("onnxruntime", path, spec, winograd=False)
    try:
        results = compare_on_footage(torch_backend, ort_backend, spec, car_video, frames=2)
    finally:
        torch_backend.close()
        ort_backend.close()
    for relative, agreement in results:
        assert relative < 1e-4 and agreement > 0.999
    with torch.no_grad():
        eager = module.eval()(torch.from_numpy(x))["out"].numpy()
    onnx_out = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"]).run(None, {"input": x})[0]
    assert np.abs(eager - onnx_out).max() < 1e-4 * np.abs(eager).max()
    assert np.abs(eager - plain).max() > 0.1 * np.abs(plain).max()  # the statistics matter: folding is tested


@pytest.mark.export
@pytest.mark.slow
def test_int8_quantize_runs_on_the_fast_models(exported, car_video, tmp_path):
    name, path = exported
    out = tmp_path / f"{name}-int8.onnx"
    proc = run_cli(
        "quantize",
        "--model",
        str(path),
        "--calib",
        str(car_video),
        "--frames",
        "4",
        "--size",
        str(SIZE),
        "--output",
        str(out),
        check=True,
    )
    assert "int8 Q/DQ" in proc.stdout
    spec = ZOO[name].spec  # the calibration size becomes the model's own input size
    assert spec_from_onnx(out) == spec.model_copy(update={"resize": spec.resize.model_copy(update={"size": SIZE})})
    session = ort.InferenceSession(str(out), providers=["CPUExecutionProvider"])
    ops = {node.op_type for node in onnx.load(str(out)).graph.node}
    assert {"QuantizeLinear", "DequantizeLinear"} <= ops
    x = np.random.default_rng(0).normal(size=(1, 3, SIZE, 160)).astype(np.float32)
    assert session.run(None, {"input": x})[0].shape == (1, 21, SIZE, 160)


@pytest.mark.export
@pytest.mark.slow
def test_train_lraspp_then_run_it_on_onnxruntime_and_torch(tmp_path):
    """`streamseg train --model lraspp_mobilenet_v3_large` (no aux head) exports an ONNX both backends run alike."""
    if not HAS_TORCH:
        pytest.skip("needs the export extra (torch, torchvision)")
    data, out = tmp_path / "synth", tmp_path / "lraspp"
    run_cli("datasets", "synth", "--out", str(data), "--n", "24", "--video-frames", "6", check=True)
    run_cli(
        "train",
        "--model",
        "lraspp_mobilenet_v3_large",
        "--weights",
        "none",
        "--data",
        str(data),
        "--output",
        str(out),
        "--epochs",
        "1",
        "--batch",
        "4",
        "--crop-size",
        "96",
        "--no-progress",
        check=True,
        timeout=1200,
    )
    spec = spec_from_onnx(out / "model.onnx")
    assert spec.name.startswith("lraspp_mobilenet_v3_large") and spec.num_classes == 6
    torch_backend = create_backend("torch", out / "model.onnx", spec, threads=2)  # architecture from the name
    ort_backend = create_backend("onnxruntime", out / "model.onnx", spec)
    try:
        x = np.random.default_rng(0).normal(size=(1, 3, 96, 128)).astype(np.float32)
        got, expected = torch_backend.run(x), ort_backend.run(x)
    finally:
        torch_backend.close()
        ort_backend.close()
    assert got.shape == expected.shape == (1, 6, 96, 128)
    assert np.abs(got - expected).max() < 1e-4 * np.abs(expected).max()
    proc = run_cli(
        "run",
        str(data / "heldout" / "heldout.mp4"),
        "-o",
        str(tmp_path / "out.mp4"),
        "--model",
        str(out / "model.onnx"),
        check=True,
    )
    assert (tmp_path / "out.mp4").stat().st_size > 0 and "Traceback" not in proc.stderr
