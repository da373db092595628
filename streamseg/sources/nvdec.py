"""Video files decoded on the GPU: NVDEC through PyAV's CUDA hwaccel, frames kept on the device.

PyAV (18+) decodes with ``hwaccel=HWAccel("cuda", is_hw_owned=True)`` into
CUDA frames whose NV12 planes export through DLPack: Y as (H, W) and the
interleaved chroma as (H/2, W/2, 2), both views of the decoder's own device
memory. ``device_rgb`` turns them into an RGB uint8 (H, W, 3) torch tensor on
the GPU (``rgb_from_nv12``, the stream's BT.601/709 matrix and range), so no
picture crosses to the host until the encoder or a label sink wants it.

``open_input`` is what a pipeline calls: NVDEC for a file when the backend
runs on CUDA and NVDEC can decode the file's codec, else the ordinary CPU
source, with one log line saying why (``--decode auto``); ``--decode gpu``
makes that fallback an error instead, ``--decode cpu`` never tries.
"""

from __future__ import annotations

import logging
from pathlib import Path

import av

from streamseg.errors import ConfigError, SourceError
from streamseg.sources.base import Source
from streamseg.sources.file import DecodedFile, decode_reason
from streamseg.sources.limits import FrameTooLargeError, check_stream
from streamseg.stage_options import MAX_PIXELS, SourceOptions

log = logging.getLogger(__name__)

# the stream's codec -> FFmpeg's NVDEC (cuvid) decoder of it; its presence says this FFmpeg can use NVDEC for it
CUVID = {
    "h264": "h264_cuvid",
    "hevc": "hevc_cuvid",
    "av1": "av1_cuvid",
    "vp9": "vp9_cuvid",
    "vp8": "vp8_cuvid",
    "mpeg4": "mpeg4_cuvid",
    "mpeg2video": "mpeg2_cuvid",
    "mpeg1video": "mpeg1_cuvid",
    "vc1": "vc1_cuvid",
    "mjpeg": "mjpeg_cuvid",
}
_BT709 = 1  # AVCOL_SPC_BT709; unspecified and the 601 variants convert as BT.601, as swscale does
_FULL_RANGE = 2  # AVCOL_RANGE_JPEG


def nvdec_unavailable(codec: str | None = None) -> str | None:
    """Why NVDEC cannot decode ``codec`` (any codec when None) here; None when it can."""
    from av.codec.hwaccel import hwdevices_available

    from streamseg.devices import cuda_present

    if "cuda" not in hwdevices_available():
        return "this FFmpeg (PyAV) build has no CUDA device support"
    if codec is not None:
        cuvid = CUVID.get(codec)
        if cuvid is None:
            return f"NVDEC does not decode {codec}"
        if cuvid not in av.codecs_available:
            return f"this FFmpeg (PyAV) build has no NVDEC decoder for {codec} ({cuvid})"
    if not cuda_present():
        return "no CUDA GPU (torch sees none)"
    return None


def device_rgb(frame: av.VideoFrame, torch, stream=None):
    """RGB uint8 (H, W, 3) torch tensor from an NV12 frame, on the frame's device (CUDA, or the CPU for tests).

    The planes cross by DLPack, with no copy; only the converted picture is new memory,
    so the decoder's surface goes back to its pool as soon as this returns.
    """
    from streamseg.colorspace import rgb_from_nv12

    layout = frame.sw_format.name if frame.sw_format is not None else frame.format.name
    if layout != "nv12":
        raise SourceError(f"GPU decode gave {layout} frames; only 8-bit 4:2:0 (nv12) converts on the device")
    # a capsule, not the planes themselves: torch.from_dlpack(plane) would pass a stream PyAV refuses
    y = torch.from_dlpack(frame.planes[0].__dlpack__())
    uv = torch.from_dlpack(frame.planes[1].__dlpack__())
    rgb = rgb_from_nv12(
        y,
        uv,
        matrix="bt709" if int(frame.colorspace) == _BT709 else "bt601",
        full_range=int(frame.color_range) == _FULL_RANGE,
    )
    image = rgb.to(torch.uint8).permute(1, 2, 0)
    turns = round((frame.rotation or 0) / 90) % 4  # upright, as the CPU source makes it
    if turns:
        image = torch.rot90(image, turns, dims=(0, 1))
    return image.contiguous()


class NvdecSource(DecodedFile):
    """The first video stream of a file, decoded by NVDEC; ``Frame.image`` is a torch CUDA tensor.

    Opening decodes the first frame, so a file NVDEC cannot take fails here
    (``SourceError``), before the pipeline starts.
    """

    decode_errors = (av.FFmpegError, NotImplementedError)
    decoder = " on the GPU"

    def __init__(
        self, path: str | Path, *, max_frames: int | None = None, device_index: int = 0, max_pixels: int = MAX_PIXELS
    ):
        import torch
        from av.codec.hwaccel import HWAccel

        self._torch = torch
        self.path = str(path)
        self.max_frames = max_frames
        self.max_pixels = max_pixels
        self.device = torch.device("cuda", device_index)
        accel = HWAccel("cuda", device=str(device_index), allow_software_fallback=False, is_hw_owned=True)
        try:
            self._container = av.open(self.path, hwaccel=accel)
        except (av.FFmpegError, NotImplementedError, ValueError) as err:
            raise SourceError(f"{self.path}: NVDEC cannot open it: {decode_reason(err)}") from None
        try:
            if not self._container.streams.video:
                raise SourceError(f"{self.path} has no video stream")
            self._stream = self._container.streams.video[0]
            check_stream(self._stream, self.path, max_pixels)  # before the decoder allocates a picture
            self._convert_stream = torch.cuda.Stream(self.device)
            self._decoded = self._container.decode(self._stream)
            first = self._next_decoded()
            if first is None:
                raise SourceError(f"{self.path}: no decodable video frames")
            if first.format.name != "cuda":  # FFmpeg fell back to software decoding after all
                raise SourceError(f"{self.path}: decoded to {first.format.name} in system memory, not on the GPU")
            self._first = first
            self._first_image = self._convert(first)
        except BaseException:
            self._container.close()
            raise
        self.info = self._describe()

    @property
    def codec(self) -> str:
        return self._stream.codec_context.name

    def _convert(self, frame: av.VideoFrame):
        torch = self._torch
        # FFmpeg copies out of NVDEC on the legacy default stream: wait for that copy alone
        torch.cuda.default_stream(self.device).synchronize()
        with torch.cuda.stream(self._convert_stream):
            image = device_rgb(frame, torch)
        self._convert_stream.synchronize()  # the next stage reads it from another thread and stream
        return image


def open_device_source(
    path: str | Path, *, max_frames: int | None = None, max_pixels: int = MAX_PIXELS
) -> tuple[NvdecSource | None, str | None]:
    """(an NVDEC source, None), or (None, why not) when this file cannot be decoded on the GPU here."""
    if not Path(path).is_file():
        return None, "NVDEC input covers video files; other inputs decode on the CPU"
    reason = nvdec_unavailable()
    if reason is not None:
        return None, reason
    codec = _codec_of(path)
    reason = nvdec_unavailable(codec) if codec else "no video stream"
    if reason is not None:
        return None, reason
    try:
        return NvdecSource(path, max_frames=max_frames, max_pixels=max_pixels), None
    except FrameTooLargeError:
        raise  # the CPU decoder would refuse it too
    except SourceError as err:
        return None, str(err)


def open_input(
    uri: str,
    *,
    decode: str = "auto",
    device: str = "cpu",
    max_frames: int | None = None,
    options: SourceOptions = SourceOptions(),
    **source_options,
) -> Source:
    """The source a pipeline reads: NVDEC frames on the GPU where asked and possible, else ``open_source``'s.

    ``device`` is where the backend runs; GPU decode only pays (and only runs) for ``cuda``.
    ``source_options`` go to ``open_source`` as they are.
    """
    from streamseg.sources import open_source

    if decode not in ("auto", "cpu", "gpu"):
        raise ConfigError(f"decode: must be auto, cpu or gpu, got {decode!r}")
    if decode == "gpu" and device != "cuda":
        raise ConfigError(f"--decode gpu needs a CUDA backend; the model runs on {device}")
    if decode == "cpu" or device != "cuda":
        return open_source(uri, max_frames=max_frames, options=options, **source_options)
    source: NvdecSource | None
    reason: str | None
    if options.realtime:
        reason = "--realtime paces the CPU decoder"
        source = None
    else:
        source, reason = open_device_source(uri, max_frames=max_frames, max_pixels=options.max_pixels)
    if source is not None:
        log.info("decode: NVDEC (%s on %s), frames stay on the GPU", source.codec, source.device)
        return source
    if decode == "gpu":
        raise SourceError(f"--decode gpu: {reason}")
    log.warning("decode: on the CPU, not NVDEC: %s", reason)
    return open_source(uri, max_frames=max_frames, options=options, **source_options)


def _codec_of(path: str | Path) -> str | None:
    try:
        with av.open(str(path)) as container:
            streams = container.streams.video
            return streams[0].codec_context.name if streams else None
    except av.FFmpegError:
        return None
