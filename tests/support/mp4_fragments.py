"""Reading a fragmented MP4's boxes: how many video frames its complete fragments hold.

A file cut off by a kill ends inside some fragment; every fragment before it, a
``moof`` followed by its whole ``mdat``, must play. This counts their video samples
from the boxes alone, independently of FFmpeg, so a test can compare it with what
FFmpeg decodes.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass
from itertools import pairwise
from pathlib import Path


@dataclass(frozen=True)
class Box:
    kind: str
    start: int  # offset of the box header
    body: int  # offset of the payload
    end: int  # offset one past the box (may lie beyond the file when cut off)


def boxes(data: bytes, start: int = 0, end: int | None = None) -> list[Box]:
    """The boxes between ``start`` and ``end``, the last one possibly cut off."""
    end = len(data) if end is None else end
    found, at = [], start
    while at + 8 <= end:
        size, kind = struct.unpack(">I4s", data[at : at + 8])
        body = at + 8
        if size == 1:
            if at + 16 > end:
                break
            size = struct.unpack(">Q", data[at + 8 : at + 16])[0]
            body = at + 16
        elif size == 0:
            size = end - at
        if size < body - at:
            break
        found.append(Box(kind.decode("latin-1"), at, body, at + size))
        at += size
    return found


def _child(data: bytes, box: Box, kind: str) -> list[Box]:
    return [b for b in boxes(data, box.body, min(box.end, len(data))) if b.kind == kind]


def video_track_id(data: bytes) -> int:
    """The track id whose handler is ``vide``, from the ``moov``."""
    moov = next(b for b in boxes(data) if b.kind == "moov")
    for trak in _child(data, moov, "trak"):
        tkhd = _child(data, trak, "tkhd")[0]
        version = data[tkhd.body]
        track_id = struct.unpack(">I", data[tkhd.body + (20 if version == 1 else 12) :][:4])[0]
        mdia = _child(data, trak, "mdia")[0]
        hdlr = _child(data, mdia, "hdlr")[0]
        if data[hdlr.body + 8 : hdlr.body + 12] == b"vide":
            return track_id
    raise ValueError("no video track")


def complete_fragment_frames(path: str | Path) -> tuple[int, int]:
    """(video frames in complete fragments, complete fragments): a fragment is complete when its mdat is whole."""
    data = Path(path).read_bytes()
    track = video_track_id(data)
    top = boxes(data)
    frames = fragments = 0
    for moof, mdat in pairwise(top):
        if moof.kind != "moof" or mdat.kind != "mdat" or mdat.end > len(data):
            continue
        fragments += 1
        for traf in _child(data, moof, "traf"):
            tfhd = _child(data, traf, "tfhd")[0]
            if struct.unpack(">I", data[tfhd.body + 4 : tfhd.body + 8])[0] != track:
                continue
            for trun in _child(data, traf, "trun"):
                frames += struct.unpack(">I", data[trun.body + 4 : trun.body + 8])[0]
    return frames, fragments


def is_fragmented(path: str | Path) -> bool:
    return any(b.kind == "moof" for b in boxes(Path(path).read_bytes()))


def playable_frames(path: str | Path) -> list[tuple[int, bool, float]]:
    """(pts, keyframe, picture std) of each frame decoded from the start until the first damaged packet.

    A file cut off by a kill may end inside a packet; a player skips that tail, while
    PyAV raises there, so decoding stops at the first error, as far as a player gets.
    """
    import av

    frames = []
    with av.open(str(path)) as container:
        stream = container.streams.video[0]
        try:
            for packet in container.demux(stream):
                for frame in packet.decode():
                    frames.append((frame.pts, frame.key_frame, float(frame.to_ndarray(format="rgb24").std())))
        except av.FFmpegError:
            pass
    return frames
