"""GPU decode (NVDEC): the DLPack NV12 -> RGB path on the CPU, the CPU fallback, and on CUDA the real thing."""

from __future__ import annotations

import logging

import av
import numpy as np
import pytest

from streamseg.devices import cuda_present
from streamseg.errors import ConfigError, SourceError
from streamseg.sources.file import FileSource, to_rgb
from streamseg.sources.nvdec import nvdec_unavailable, open_device_source, open_input
from tests.support.videos import make_video

torch = pytest.importorskip("torch", reason="needs the export extra (torch), or the gpu extra on a GPU machine")

from streamseg.sources.nvdec import device_rgb  # noqa: E402


def test_nv12_planes_through_dlpack_match_ffmpeg_rgb(car_video):
    """The exact conversion NVDEC frames take (DLPack planes -> rgb_from_nv12), fed CPU NV12 frames."""
    checked = 0
    with av.open(str(car_video)) as container:
        for index, frame in enumerate(container.decode(video=0)):
            if index not in (0, 120, 240):
                continue
            image = device_rgb(frame.reformat(format="nv12"), torch)
            assert image.dtype == torch.uint8 and tuple(image.shape) == (frame.height, frame.width, 3)
            error = np.abs(image.numpy().astype(np.int16) - to_rgb(frame).astype(np.int16))
            assert error.max() <= 3 and error.mean() < 1.0, (index, error.max(), error.mean())
            checked += 1
            if checked == 3:
                break
    assert checked == 3


def test_device_rgb_refuses_other_layouts(car_video):
    with av.open(str(car_video)) as container:
        frame = next(container.decode(video=0))
    with pytest.raises(SourceError, match="yuv420p"):
        device_rgb(frame, torch)


@pytest.mark.skipif(cuda_present(), reason="checks the fallback where no GPU is present")
def test_auto_falls_back_to_the_cpu_with_one_log_line(tmp_path, caplog):
    video = make_video(tmp_path / "clip.mp4", frames=3)
    with caplog.at_level(logging.INFO, logger="streamseg"):
        source = open_input(str(video), decode="auto", device="cuda")
    try:
        assert isinstance(source, FileSource)
        assert len(list(source.frames())) == 3
    finally:
        source.close()
    lines = [r for r in caplog.records if r.name.startswith("streamseg.sources")]
    assert len(lines) == 1 and "on the CPU, not NVDEC" in lines[0].getMessage()
    assert nvdec_unavailable("h264") in lines[0].getMessage()


@pytest.mark.skipif(cuda_present(), reason="checks the refusal where no GPU is present")
def test_gpu_decode_without_nvdec_is_one_clear_error(tmp_path):
    video = make_video(tmp_path / "clip.mp4", frames=2)
    with pytest.raises(SourceError, match="--decode gpu: "):
        open_input(str(video), decode="gpu", device="cuda")
    source, reason = open_device_source(video)
    assert source is None and reason


def test_gpu_decode_needs_a_cuda_backend_and_cpu_decode_never_tries(tmp_path, caplog):
    video = make_video(tmp_path / "clip.mp4", frames=2)
    with pytest.raises(ConfigError, match="needs a CUDA backend"):
        open_input(str(video), decode="gpu", device="cpu")
    with caplog.at_level(logging.INFO, logger="streamseg"):
        for decode, device in (("cpu", "cuda"), ("auto", "cpu")):
            source = open_input(str(video), decode=decode, device=device)
            assert isinstance(source, FileSource)
            source.close()
    assert not [r for r in caplog.records if r.name.startswith("streamseg.sources")]


def test_nvdec_reasons_name_the_missing_piece():
    from av.codec.hwaccel import hwdevices_available

    if "cuda" not in hwdevices_available():
        assert "no CUDA device support" in nvdec_unavailable("h264")
        return
    assert nvdec_unavailable("prores") == "NVDEC does not decode prores"
    no_gpu = "no CUDA GPU (torch sees none)"
    assert ("h264_cuvid" in av.codecs_available) == (nvdec_unavailable("h264") in (None, no_gpu))
    assert (nvdec_unavailable("h264") is None) == cuda_present()


@pytest.mark.gpu
@pytest.mark.skipif(not cuda_present(), reason="no CUDA GPU")
@pytest.mark.parametrize("codec", ["libx264", "libx265"])
def test_nvdec_frames_match_cpu_decode(tmp_path, codec):
    """On a GPU: every frame, its pts and its pixels (within 3 levels) as the CPU decoder gives them."""
    if codec not in av.codecs_available:
        pytest.skip(f"{codec} encoder not in this FFmpeg")
    video = make_video(tmp_path / "clip.mp4", width=320, height=180, frames=12, codec=codec)
    source, reason = open_device_source(video)
    assert source is not None, reason
    reference = FileSource(video)
    try:
        got, want = list(source.frames()), list(reference.frames())
    finally:
        source.close()
        reference.close()
    assert len(got) == len(want) == 12
    assert source.info.width == 320 and source.info.height == 180
    for a, b in zip(got, want, strict=True):
        assert a.image.device.type == "cuda" and a.image.dtype == torch.uint8 and a.pts == b.pts
        error = np.abs(a.image.cpu().numpy().astype(np.int16) - b.image.astype(np.int16))
        assert error.max() <= 3 and error.mean() < 1.0, (a.index, error.max(), error.mean())
    print(f"nvdec {codec}: 12 frames, pixel error vs CPU decode max {error.max()}, mean {error.mean():.2f}")
