"""Test videos made with PyAV: odd sizes, variable frame rate, audio, 10-bit, gray."""

from __future__ import annotations

from collections.abc import Sequence
from fractions import Fraction
from pathlib import Path

import av
import numpy as np


def moving_scene(index: int, width: int, height: int) -> np.ndarray:
    """A street-like RGB picture: sky, road, and a box that moves with ``index``."""
    image = np.empty((height, width, 3), np.uint8)
    horizon = height // 2
    image[:horizon] = (90, 140, 200)
    image[horizon:] = (80, 80, 85)
    x = (index * 7) % max(1, width - width // 5)
    image[horizon - height // 8 : horizon + height // 6, x : x + width // 5] = (200, 30, 30)
    noise = (np.arange(width)[None, :] + index) % 16
    image[horizon:, :, 1] = np.clip(80 + noise[:, :].astype(np.int16) - 8, 0, 255).astype(np.uint8)
    return image


def make_video(
    path: str | Path,
    *,
    width: int = 160,
    height: int = 96,
    frames: int = 12,
    fps: int = 10,
    codec: str = "libx264",
    pix_fmt: str = "yuv420p",
    audio: bool = False,
    pts: list[int] | None = None,
    time_base: Fraction | None = None,
    rotation: int = 0,
) -> Path:
    """Write a short test video; ``pts`` (in ``time_base``) makes it variable-frame-rate."""
    path = Path(path)
    with av.open(str(path), "w") as container:
        stream = container.add_stream(codec, rate=fps)
        stream.width, stream.height, stream.pix_fmt = width, height, pix_fmt
        tb = time_base or Fraction(1, fps * 100)
        stream.time_base = tb
        stream.codec_context.time_base = tb
        if codec == "libx264":
            stream.options = {"preset": "ultrafast"}
        astream = None
        if audio:
            astream = container.add_stream("aac", rate=48000)
            astream.layout = "mono"
        for i in range(frames):
            frame = av.VideoFrame.from_ndarray(moving_scene(i, width, height), format="rgb24")
            frame = frame.reformat(format=pix_fmt)
            frame.pts = pts[i] if pts else round(i / (fps * tb))
            frame.time_base = tb
            if rotation:
                frame.rotation = rotation
            for packet in stream.encode(frame):
                container.mux(packet)
        for packet in stream.encode(None):
            container.mux(packet)
        if astream is not None:
            samples_total = int(48000 * frames / fps)
            t = np.arange(samples_total) / 48000
            tone = (0.2 * np.sin(2 * np.pi * 440 * t)).astype(np.float32)
            for start in range(0, samples_total, 1024):
                chunk = tone[start : start + 1024]
                aframe = av.AudioFrame.from_ndarray(chunk[None, :], format="fltp", layout="mono")
                aframe.sample_rate = 48000
                aframe.pts = start
                for packet in astream.encode(aframe):
                    container.mux(packet)
            for packet in astream.encode(None):
                container.mux(packet)
    return path


def cut_clip(video: str | Path, path: str | Path, width: int, height: int, frames: int) -> Path:
    """The first ``frames`` pictures of a real ``video`` scaled to ``width`` x ``height``, as H.264."""
    path = Path(path)
    with av.open(str(video)) as source, av.open(str(path), "w") as target:
        stream = target.add_stream("libx264", rate=10)
        stream.width, stream.height, stream.pix_fmt = width, height, "yuv420p"
        stream.options = {"preset": "ultrafast"}
        for index, frame in enumerate(source.decode(video=0)):
            if index == frames:
                break
            picture = frame.reformat(width=width, height=height, format="yuv420p")
            picture.pts = index
            target.mux(stream.encode(picture))
        target.mux(stream.encode(None))
    return path


def read_video(path: str | Path) -> tuple[list[np.ndarray], list[int], Fraction, dict]:
    """Every decoded frame as RGB, their pts, the time base, and stream facts."""
    with av.open(str(path)) as container:
        stream = container.streams.video[0]
        images, pts = [], []
        for frame in container.decode(stream):
            images.append(frame.to_ndarray(format="rgb24"))
            pts.append(frame.pts)
        facts = {
            "codec": stream.codec_context.name,
            "audio": [a.codec_context.name for a in container.streams.audio],
            "width": stream.codec_context.width,
            "height": stream.codec_context.height,
        }
        return images, pts, stream.time_base, facts


def rotate_mp4(source: str | Path, target: str | Path) -> Path:
    """Copy an MP4, setting its video track's display matrix to 90 degrees clockwise.

    That is what phones write for portrait video: the coded picture is landscape
    and players turn it upright. (PyAV cannot write the matrix itself.)
    """
    import struct

    data = bytearray(Path(source).read_bytes())
    at = data.find(b"tkhd")
    version = data[at + 4]
    # tkhd: version/flags, times, track id, reserved, duration, reserved, layer, group, volume, reserved
    offset = at + 8 + (8 if version == 0 else 16) + 8 + (4 if version == 0 else 8) + 8 + 8
    data[offset : offset + 36] = struct.pack(">9i", 0, 0x10000, 0, -0x10000, 0, 0, 0, 0, 0x40000000)
    Path(target).write_bytes(data)
    return Path(target)


def red_square_video(
    path: str | Path,
    *,
    seconds: float,
    fps: int,
    inside: Sequence[tuple[float, float]],
    width: int = 160,
    height: int = 96,
    gop: int | None = None,
) -> Path:
    """A grey scene with a red square: in the centre during each (from, to) of ``inside`` (seconds, frame
    times ``i / fps``), else left of it before the first visit and right of it after. The centre is
    x 0.4-0.6, y 0.3-0.7; the square (a fifth of the height) fits in it and, outside, touches none of it."""
    path = Path(path)
    side = height // 5
    top = height // 2 - side // 2
    places = {"before": int(0.05 * width), "inside": width // 2 - side // 2, "after": int(0.95 * width) - side}
    with av.open(str(path), "w") as container:
        stream = container.add_stream("libx264", rate=fps)
        stream.width, stream.height, stream.pix_fmt = width, height, "yuv420p"
        tb = Fraction(1, fps * 100)  # the muxer may change the stream's: frames keep this one
        stream.time_base = stream.codec_context.time_base = tb
        stream.options = {"preset": "ultrafast", "crf": "10"}
        if gop:
            stream.codec_context.gop_size = gop
        for i in range(round(seconds * fps)):
            t = i / fps
            if any(start - 1e-9 <= t < end - 1e-9 for start, end in inside):
                where = "inside"
            else:
                where = "before" if t < inside[0][0] else "after"
            image = np.full((height, width, 3), 110, np.uint8)
            x = places[where]
            image[top : top + side, x : x + side] = (255, 0, 0)
            frame = av.VideoFrame.from_ndarray(image, format="rgb24")
            frame.pts, frame.time_base = i * 100, tb
            for packet in stream.encode(frame):
                container.mux(packet)
        for packet in stream.encode(None):
            container.mux(packet)
    return path
