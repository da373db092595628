"""Backend choice and the torch backend, on the CPU: auto selection, precision checks, parity with ONNX Runtime."""

from __future__ import annotations

import importlib.util
import logging
import re

import numpy as np
import pytest

from streamseg.backends import create_backend
from streamseg.devices import cuda_present
from streamseg.errors import BackendError, ConfigError
from streamseg.models import ZOO, spec_from_onnx
from streamseg.sources import open_source
from tests.support.cli import run_cli
from tests.support.footage import compare_on_footage

needs_torch = pytest.mark.export  # skipped without torch, saying so (tests/conftest.py)
SIZE = 96


def test_auto_without_a_gpu_picks_onnxruntime_and_says_so(duc_onnx, caplog):
    if cuda_present():
        pytest.skip("this machine has a GPU")
    with caplog.at_level(logging.INFO, logger="streamseg"):
        backend = create_backend("auto", duc_onnx, ZOO["duc_resnet101_hdc"].spec)
    assert backend.name.startswith("onnxruntime")
    assert "backend auto: chose onnxruntime" in caplog.text and "no CUDA GPU" in caplog.text
    backend.close()


def test_unknown_backend_and_precision_mismatch(duc_onnx):
    spec = ZOO["duc_resnet101_hdc"].spec
    with pytest.raises(ConfigError, match="unknown backend 'tflite'"):
        create_backend("tflite", duc_onnx, spec)
    with pytest.raises(ConfigError, match=r"onnxruntime runs duc_standin.onnx as it is \(fp32\)"):
        create_backend("onnxruntime", duc_onnx, spec, precision="fp16")


def test_tensorrt_without_a_gpu_is_one_clear_error(duc_onnx):
    if cuda_present():
        pytest.skip("this machine has a GPU")
    with pytest.raises(BackendError, match="tensorrt needs a CUDA GPU"):
        create_backend("tensorrt", duc_onnx, ZOO["duc_resnet101_hdc"].spec)


def test_build_engine_without_tensorrt_says_what_to_install(duc_onnx):
    import importlib.util

    if importlib.util.find_spec("tensorrt") or importlib.util.find_spec("tensorrt_rtx"):
        pytest.skip("TensorRT is installed here")
    proc = run_cli("build-engine", "--model", str(duc_onnx), "--precision", "fp16")
    assert proc.returncode != 0 and "Traceback" not in proc.stderr
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("streamseg: error: TensorRT engines needs tensorrt")
    assert "pip install tensorrt" in lines[0]


def test_torch_backend_refuses_models_it_cannot_build(duc_onnx):
    with pytest.raises(BackendError, match="torchvision architectures"):
        create_backend("torch", duc_onnx, ZOO["duc_resnet101_hdc"].spec)


@pytest.fixture(scope="module")
def fcn_pair(fcn_onnx):
    """fcn_resnet50 (random weights) on torch (CPU) and on ONNX Runtime, same file."""
    spec = spec_from_onnx(fcn_onnx)
    spec = spec.model_copy(update={"resize": spec.resize.model_copy(update={"size": SIZE})})
    torch_backend = create_backend("torch", fcn_onnx, spec, threads=2)
    ort_backend = create_backend("onnxruntime", fcn_onnx, spec, winograd=False)  # direct convolution
    yield spec, torch_backend, ort_backend
    torch_backend.close()
    ort_backend.close()


@needs_torch
def test_torch_backend_matches_onnxruntime_on_footage(fcn_pair, car_video):
    spec, torch_backend, ort_backend = fcn_pair
    assert torch_backend.name.startswith("torch") and "cpu" in torch_backend.name
    for relative, agreement in compare_on_footage(torch_backend, ort_backend, spec, car_video, frames=4):
        assert relative < 1e-4 and agreement > 0.999


@needs_torch
def test_cuda_stages_on_the_cpu_match_the_cpu_stages(fcn_pair, car_video):
    """The GPU stage chain, run with CPU tensors, against the pipeline's CPU stages on real frames."""
    from streamseg.composite import Compositor
    from streamseg.postprocess import CpuPostprocessor
    from streamseg.preprocess import CpuPreprocessor
    from streamseg.stages.cuda import CudaStages

    spec, torch_backend, _ = fcn_pair
    compositor = Compositor(spec, mode="side-by-side", alpha=0.6)
    stages = CudaStages(torch_backend, spec, compositor, device="cpu")
    pre, post = CpuPreprocessor(spec), CpuPostprocessor(spec)
    source = open_source(str(car_video), max_frames=3)
    try:
        for frame in source.frames():
            prepared = pre(frame)
            labels = post(torch_backend.run(prepared.tensor), prepared.geometry)
            picture = compositor(frame.image, labels)
            lane = stages.lane()
            result = lane.composite(stages.infer([lane.preprocess(frame)])[0])
            assert result.index == frame.index and result.pts == frame.pts and result.frame is frame.image
            assert result.labels.dtype == np.uint8 and result.picture.shape == picture.shape
            assert (result.labels == labels).mean() > 0.999
            assert (result.picture != picture).any(axis=2).mean() < 0.002
    finally:
        source.close()


@needs_torch
def test_pipeline_runs_on_the_torch_backend(fcn_onnx, car_video, tmp_path):
    from streamseg.pipeline import Pipeline

    out = tmp_path / "torch.mp4"
    summary = Pipeline(
        car_video, model=fcn_onnx, backend="torch", input_size=SIZE, max_frames=3, outputs=[str(out)]
    ).run()
    assert summary.frames_out == 3 and summary.backend.startswith("torch")
    assert out.stat().st_size > 0


@needs_torch
def test_torch_backend_refuses_int8(fcn_onnx):
    with pytest.raises(ConfigError, match="fp32 or fp16, not int8"):
        create_backend("torch", fcn_onnx, spec_from_onnx(fcn_onnx), precision="int8")


needs_openvino = pytest.mark.skipif(importlib.util.find_spec("openvino") is None, reason="needs the openvino extra")


def _cpu_computes(capability: str) -> bool:
    import openvino

    return capability in openvino.Core().get_property("CPU", "OPTIMIZATION_CAPABILITIES")


@needs_openvino
@pytest.mark.parametrize("precision", ["fp32", "bf16"])
def test_openvino_matches_onnxruntime_on_footage(fcn_onnx, car_video, precision):
    if precision == "bf16" and not _cpu_computes("BF16"):
        pytest.skip("this CPU has no native BF16")
    spec = spec_from_onnx(fcn_onnx)
    spec = spec.model_copy(update={"resize": spec.resize.model_copy(update={"size": SIZE})})
    ours = create_backend("openvino", fcn_onnx, spec, precision=precision)
    reference = create_backend("onnxruntime", fcn_onnx, spec, winograd=False)
    assert ours.name == f"openvino (CPU, {precision})"
    try:
        for relative, agreement in compare_on_footage(ours, reference, spec, car_video, frames=3):
            # BF16 keeps 8 bits of mantissa: logits move by about 1%, labels only where two classes are close
            assert relative < (1e-4 if precision == "fp32" else 5e-2)
            assert agreement > (0.999 if precision == "fp32" else 0.99)
    finally:
        ours.close()
        reference.close()


@needs_openvino
def test_auto_takes_openvino_for_bf16_and_others_refuse_it(duc_onnx, caplog):
    spec = ZOO["duc_resnet101_hdc"].spec
    for name in ("torch", "tensorrt"):
        with pytest.raises(ConfigError, match=f"bf16 runs on --backend openvino \\(CPU\\), not {name}"):
            create_backend(name, duc_onnx, spec, precision="bf16")
    with pytest.raises(ConfigError, match=r"onnxruntime runs duc_standin.onnx as it is \(fp32\).*--backend openvino"):
        create_backend("onnxruntime", duc_onnx, spec, precision="bf16")
    with pytest.raises(ConfigError, match=r"openvino runs duc_standin.onnx as it is \(fp32\) or in bf16"):
        create_backend("openvino", duc_onnx, spec, precision="int8")
    if not _cpu_computes("BF16"):
        with pytest.raises(BackendError, match="this CPU does not compute bf16"):
            create_backend("openvino", duc_onnx, spec, precision="bf16")
        return
    with caplog.at_level(logging.INFO, logger="streamseg"):
        backend = create_backend("auto", duc_onnx, spec, precision="bf16")
    assert backend.name == "openvino (CPU, bf16)" and "backend auto: chose openvino (CPU, bf16)" in caplog.text
    backend.close()


@needs_openvino
def test_run_on_openvino_writes_the_video(duc_onnx, car_video, tmp_path):
    import av

    out = tmp_path / "openvino.mp4"
    proc = run_cli(
        "run", str(car_video), "-o", str(out), "--model", str(duc_onnx), "--backend", "openvino", "--max-frames", "4"
    )
    assert proc.returncode == 0, proc.stderr
    # a file: as many streams as OpenVINO's throughput hint picks for this machine's cores
    assert re.search(r"on openvino \(CPU, fp32(, \d+ streams)?\)", proc.stderr), proc.stderr
    with av.open(str(out)) as container:
        assert sum(1 for _ in container.decode(video=0)) == 4
