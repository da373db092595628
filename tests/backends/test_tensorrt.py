"""On a CUDA GPU: TensorRT FP16 parity with the FP32 reference, engine reuse and rebuild, the GPU path end to end.

Everything here carries the ``gpu`` marker and skips without a CUDA GPU
(TensorRT tests also skip without ``tensorrt``/``tensorrt_rtx``).
"""

from __future__ import annotations

import importlib.util

import numpy as np
import pytest

from streamseg.backends import create_backend
from streamseg.devices import cuda_present
from streamseg.models import spec_from_onnx
from streamseg.sources import open_source
from tests.support.cli import run_cli

HAS_TRT = any(importlib.util.find_spec(m) for m in ("tensorrt", "tensorrt_rtx"))
pytestmark = [pytest.mark.gpu, pytest.mark.skipif(not cuda_present(), reason="no CUDA GPU")]
needs_trt = pytest.mark.skipif(not HAS_TRT, reason="no tensorrt or tensorrt_rtx module")
SIZE = 520


def footage_tensors(car_video, spec, frames=4):
    from streamseg.preprocess import CpuPreprocessor

    pre = CpuPreprocessor(spec.model_copy(update={"dtype": "float32"}))
    source = open_source(str(car_video), max_frames=frames)
    try:
        return [pre(frame).tensor for frame in source.frames()]
    finally:
        source.close()


@pytest.fixture(scope="module")
def fcn_spec(fcn_onnx):
    spec = spec_from_onnx(fcn_onnx)
    return spec.model_copy(update={"resize": spec.resize.model_copy(update={"size": SIZE})})


def compare(candidate, reference, tensors, label: str, minimum: float) -> None:
    for i, tensor in enumerate(tensors):
        ours = np.asarray(candidate.run(tensor), np.float32)
        ref = np.asarray(reference.run(tensor), np.float32)
        relative = np.abs(ours - ref).max() / np.abs(ref).max()
        agreement = (ours.argmax(1) == ref.argmax(1)).mean()
        print(f"{label} frame {i}: relative logit error {relative:.2e}, label agreement {agreement:.5f}")
        assert agreement >= minimum


@needs_trt
def test_tensorrt_fp16_agrees_with_fp32_reference(fcn_onnx, fcn_spec, car_video, tmp_path):
    engine = create_backend("tensorrt", fcn_onnx, fcn_spec, precision="fp16", engine_dir=tmp_path)
    reference = create_backend("onnxruntime", fcn_onnx, fcn_spec)
    compare(engine, reference, footage_tensors(car_video, fcn_spec), "tensorrt fp16 vs onnxruntime fp32", 0.995)


def test_torch_cuda_fp16_agrees_with_fp32_reference(fcn_onnx, fcn_spec, car_video):
    backend = create_backend("torch", fcn_onnx, fcn_spec, precision="fp16")
    assert backend.device == "cuda"
    reference = create_backend("onnxruntime", fcn_onnx, fcn_spec)
    compare(backend, reference, footage_tensors(car_video, fcn_spec), "torch cuda fp16 vs onnxruntime fp32", 0.995)


def test_torch_cuda_graphs_replay_the_same_scores(fcn_onnx, fcn_spec, car_video):
    plain = create_backend("torch", fcn_onnx, fcn_spec, precision="fp16")
    graphed = create_backend("torch", fcn_onnx, fcn_spec, precision="fp16", cuda_graphs=True)
    for tensor in footage_tensors(car_video, fcn_spec, frames=3):
        np.testing.assert_allclose(graphed.run(tensor), plain.run(tensor), atol=1e-2)


@needs_trt
def test_engine_cache_reuse_and_rebuild(fcn_onnx, tmp_path):
    args = (
        "build-engine",
        "--model",
        str(fcn_onnx),
        "--precision",
        "fp16",
        "--size",
        "256",
        "--engine-dir",
        str(tmp_path),
    )
    first = run_cli(*args, check=True)
    assert first.stdout.startswith("built ")
    second = run_cli(*args, check=True)
    assert second.stdout.startswith("reused ")
    engine = next(tmp_path.glob("*.engine"))
    engine.write_bytes(engine.read_bytes()[:1000])  # corrupt it: the next build notices and rebuilds
    third = run_cli(*args, check=True)
    assert third.stdout.startswith("built ")


def test_run_on_gpu_end_to_end(car_video, fcn_onnx, tmp_path):
    """streamseg run … --backend auto --precision fp16 on real footage, with the GPU stages."""
    out = tmp_path / "gpu.mp4"
    proc = run_cli(
        "-v",
        "run",
        str(car_video),
        "-o",
        str(out),
        "--model",
        str(fcn_onnx),
        "--backend",
        "auto",
        "--precision",
        "fp16",
        "--max-frames",
        "60",
        "--no-progress",
        check=True,
    )
    assert "backend auto: chose" in proc.stderr and "onnxruntime" not in proc.stderr.split("chose", 1)[1].split("\n")[0]
    import av

    with av.open(str(out)) as container:
        assert sum(1 for _ in container.decode(video=0)) == 60
