"""The torch pre/postprocessing and compositing against the CPU reference, on real footage frames.

Each check runs on the CPU here and again on CUDA where a GPU is present
(``gpu`` marker); the maximum absolute errors are printed (``pytest -s``).
"""

from __future__ import annotations

import av
import numpy as np
import pytest

torch = pytest.importorskip("torch", reason="needs the export extra (torch), or the gpu extra on a GPU machine")

from streamseg.colorspace import rgb_from_nv12  # noqa: E402
from streamseg.composite import Compositor  # noqa: E402
from streamseg.composite.cuda import TorchCompositor  # noqa: E402
from streamseg.devices import cuda_present  # noqa: E402
from streamseg.frames import Frame  # noqa: E402
from streamseg.models import ZOO  # noqa: E402
from streamseg.models.spec import Decode  # noqa: E402
from streamseg.postprocess import CpuPostprocessor  # noqa: E402
from streamseg.postprocess.cuda import TorchPostprocessor  # noqa: E402
from streamseg.preprocess import CpuPreprocessor  # noqa: E402
from streamseg.preprocess.cuda import TorchPreprocessor  # noqa: E402
from streamseg.sources.file import to_rgb  # noqa: E402

CUDA = pytest.param("cuda", marks=[pytest.mark.gpu, pytest.mark.skipif(not cuda_present(), reason="no CUDA GPU")])
DEVICES = ["cpu", CUDA]
FCN = ZOO["fcn_resnet50"].spec
DUC = ZOO["duc_resnet101_hdc"].spec


def sized(spec, size):
    return spec.model_copy(update={"resize": spec.resize.model_copy(update={"size": size})})


@pytest.fixture(scope="module")
def footage(car_video):
    """Three decoded frames of real footage: (rgb, yuv420p planes, colorspace)."""
    frames = []
    with av.open(str(car_video)) as container:
        stream = container.streams.video[0]
        for i, frame in enumerate(container.decode(stream)):
            if i in (0, 150, 300):
                frames.append((to_rgb(frame), frame.to_ndarray(format="yuv420p"), frame.colorspace))
            if i >= 300:
                break
    return frames


@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize(
    "spec",
    [
        sized(FCN, 96),
        sized(FCN, 520),
        DUC,
        sized(FCN, 96).model_copy(update={"dtype": "float16", "color_order": "BGR"}),
    ],
    ids=["shrink", "enlarge", "letterbox", "fp16-bgr"],
)
def test_preprocess_matches_cpu_reference(footage, spec, device):
    cpu, gpu = CpuPreprocessor(spec), TorchPreprocessor(spec, device)
    one_level = max((spec.normalize.range / 255) / s for s in (spec.normalize.std or (1, 1, 1)))
    worst = 0.0
    for i, (rgb, _, _) in enumerate(footage):
        expected = cpu(Frame("car", i, rgb, i, None, 0.0))
        got, geometry = gpu.from_rgb(torch.from_numpy(rgb).to(device))
        assert geometry == expected.geometry and got.dtype == (
            torch.float16 if spec.dtype == "float16" else torch.float32
        )
        error = np.abs(got.float().cpu().numpy() - expected.tensor.astype(np.float32))
        worst = max(worst, float(error.max()))
        off = float((error > one_level / 2).mean())
        assert off < 0.1  # OpenCV's fixed-point bilinear is one level off on a few percent of values
    print(
        f"preprocess {spec.resize.mode} {spec.resize.size} {device}: max abs error {worst:.5f} "
        f"(one pixel level = {one_level:.5f}), {off:.2%} of values one level off"
    )
    assert worst <= one_level * 1.01 + (0.004 if spec.dtype == "float16" else 0)  # OpenCV's fixed point: 1 level


@pytest.mark.parametrize("device", DEVICES)
def test_nv12_to_rgb_matches_ffmpeg(footage, device):
    """NV12 planes (as NVDEC hands them over) against FFmpeg's own YUV -> RGB conversion."""
    for rgb, yuv, colorspace in footage:
        h, w = rgb.shape[:2]
        u = yuv[h : h + h // 4].reshape(h // 2, w // 2)
        v = yuv[h + h // 4 :].reshape(h // 2, w // 2)
        y = torch.from_numpy(np.ascontiguousarray(yuv[:h])).to(device)
        uv = torch.from_numpy(np.stack([u, v], axis=-1)).to(device)
        matrix = "bt709" if colorspace == 1 else "bt601"
        got = rgb_from_nv12(y, uv, matrix=matrix).permute(1, 2, 0).cpu().numpy()
        error = np.abs(got - rgb.astype(np.float32))
        print(f"nv12 -> rgb {device}: max abs error {error.max():.0f} levels, mean {error.mean():.2f}")
        assert error.max() <= 3 and error.mean() < 1.0


@pytest.mark.parametrize("device", DEVICES)
def test_postprocess_matches_cpu_reference(device):
    rng = np.random.default_rng(0)
    cases = [  # (spec, frame size, output)
        (sized(FCN, 96), (432, 768), rng.normal(size=(1, 21, 96, 171)).astype(np.float32)),
        (sized(FCN, 96), (433, 769), rng.normal(size=(1, 21, 12, 22)).astype(np.float32)),  # coarse, odd frame
        (
            FCN.model_copy(update={"decode": Decode(kind="labels")}),
            (432, 768),
            rng.integers(0, 21, (1, 1, 60, 107)).astype(np.int64),
        ),
    ]
    for spec, (fh, fw), output in cases:
        g = CpuPreprocessor(spec).geometry(fh, fw)
        expected = CpuPostprocessor(spec)(output, g)
        got = TorchPostprocessor(spec)(torch.from_numpy(output).to(device), g).cpu().numpy()
        assert got.dtype == np.uint8 and got.shape == expected.shape
        np.testing.assert_array_equal(got, expected)


@pytest.mark.parametrize("device", DEVICES)
def test_duc_postprocess_agrees_with_cpu_reference(device):
    rng = np.random.default_rng(1)
    g = CpuPreprocessor(DUC).geometry(432, 768)
    output = rng.normal(size=(1, 19, 100 * 100 * 16)).astype(np.float32)
    expected = CpuPostprocessor(DUC)(output, g)
    got = TorchPostprocessor(DUC)(torch.from_numpy(output).to(device), g).cpu().numpy()
    agreement = (got == expected).mean()
    print(f"duc labels {device}: agreement {agreement:.5f}")
    assert agreement > 0.999  # bilinear weights: float rounding differs from OpenCV's only at near-ties


@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize("mode", ["overlay", "mask", "side-by-side"])
def test_compositor_matches_cpu_reference(footage, mode, device):
    rgb = footage[1][0]
    labels = np.random.default_rng(2).integers(0, 21, rgb.shape[:2]).astype(np.uint8)
    cpu = Compositor(FCN, mode=mode, alpha=0.4, classes=["car", "person", "bus"])
    got = TorchCompositor(cpu, device)(torch.from_numpy(rgb).to(device), torch.from_numpy(labels).to(device))
    expected = cpu(rgb, labels)
    error = np.abs(got.cpu().numpy().astype(int) - expected)
    assert got.shape == expected.shape and error.max() <= 1 and (error > 0).mean() < 0.01
