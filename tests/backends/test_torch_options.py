"""The torch backend's options: batches of frames, torch.compile, the input dtype it asks for; CPU, and CUDA."""

from __future__ import annotations

import shutil

import numpy as np
import pytest

from streamseg.backends import create_backend
from streamseg.devices import cuda_present
from streamseg.models import spec_from_onnx

pytestmark = pytest.mark.export  # skipped without torch, saying so (tests/conftest.py)


def _frames(n: int, height: int = 64, width: int = 96) -> np.ndarray:
    """Normalized-looking input: smooth gradients and a block, different per frame."""
    rng = np.random.default_rng(7)
    base = np.linspace(-1.5, 1.5, width, dtype=np.float32)[None, None, None, :].repeat(height, 2).repeat(3, 1)
    batch = np.repeat(base, n, 0) + 0.3 * rng.standard_normal((n, 3, height, width)).astype(np.float32)
    for i in range(n):
        batch[i, :, 10 + 5 * i : 30 + 5 * i, 20:50] += 1.0
    return batch


@pytest.fixture(scope="module")
def eager(fcn_onnx):
    backend = create_backend("torch", fcn_onnx, spec_from_onnx(fcn_onnx), threads=2)
    yield backend
    backend.close()


@pytest.mark.slow
def test_a_batch_gives_each_frame_its_own_result(eager):
    batch = _frames(3)
    together = eager.run(batch)
    assert together.shape[0] == 3 and eager.input_dtype == "float32" and eager.device == "cpu"
    for i in range(3):
        alone = eager.run(batch[i : i + 1])
        assert np.abs(together[i : i + 1] - alone).max() <= 1e-4 * np.abs(alone).max()
        assert (together[i].argmax(0) == alone[0].argmax(0)).all()
    assert not (together[0].argmax(0) == together[2].argmax(0)).all()  # different frames, different labels


@pytest.mark.slow
@pytest.mark.skipif(
    shutil.which("g++") is None and shutil.which("c++") is None,
    reason="torch.compile on the CPU generates C++: needs a C++ compiler",
)
def test_compiled_model_labels_equal_eager(fcn_onnx, eager):
    """About 1.5 min on 2 cores: inductor compiles ResNet-50 once for this shape."""
    compiled = create_backend("torch", fcn_onnx, spec_from_onnx(fcn_onnx), threads=2, compile=True)
    try:
        assert "compiled" in compiled.name
        batch = _frames(2)
        want, got = eager.run(batch), compiled.run(batch)
        relative = float(np.linalg.norm(got - want) / np.linalg.norm(want))
        assert relative < 1e-4 and (got.argmax(1) == want.argmax(1)).all()
    finally:
        compiled.close()


@pytest.mark.gpu
@pytest.mark.skipif(not cuda_present(), reason="no CUDA GPU")
@pytest.mark.parametrize("compile", [False, True], ids=["eager", "compiled"])
def test_cuda_fp16_graphs_batches_agree_with_fp32_cpu(fcn_onnx, eager, compile):
    """On a GPU: FP16 channels_last with CUDA graphs, batch 1 and 8, against the CPU FP32 labels."""
    import torch

    gpu = create_backend(
        "torch", fcn_onnx, spec_from_onnx(fcn_onnx), precision="fp16", cuda_graphs=True, compile=compile
    )
    try:
        assert gpu.device == "cuda" and gpu.input_dtype == "float16"
        batch = _frames(8)
        want = eager.run(batch).argmax(1)
        for n in (1, 8):
            got = gpu.run(torch.from_numpy(batch[:n]).cuda().half())
            assert got.dtype == torch.float16 and got.shape[0] == n
            agree = float((got.float().argmax(1).cpu().numpy() == want[:n]).mean())
            print(f"torch cuda fp16 {'compiled' if compile else 'eager'} batch {n}: labels agree {agree:.4%}")
            assert agree >= 0.995
    finally:
        gpu.close()
