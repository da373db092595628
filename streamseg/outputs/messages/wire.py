"""The label-map message: a small JSON header and the zlib-compressed map.

One ZeroMQ multipart message per frame, three parts:

1. topic, ASCII ``labels`` (subscribers filter on it)
2. header, UTF-8 JSON::

     {"v": 1, "frame": 42, "source": "car.mp4", "pts": 84000, "time": 3.36,
      "capture_time": 1767225600.123, "latency": 0.41, "shape": [432, 768],
      "dtype": "uint8", "encoding": "zlib", "classes": ["road", ...]}

   ``frame`` is the frame index, ``time`` the presentation time in seconds
   (null when the stream gave none), ``capture_time`` the sender's wall clock
   (Unix seconds) when the frame was decoded, ``latency`` seconds from capture
   to the label map, ``classes[i]`` the name of class id ``i``.
3. payload: the label map, row-major ``uint8`` of ``shape``, compressed
   with zlib (``zlib.decompress`` in any language). A receiver should stop
   inflating at ``height * width`` bytes (see ``inflate``) and refuse maps
   larger than it would ever be sent (``max_pixels``, by default the
   largest picture a run reads): the header is only as trustworthy as its
   sender.

The format depends on nothing but JSON and zlib, so a consumer needs neither
streamseg nor numpy (see ``examples/subscriber.py``).
"""

from __future__ import annotations

import json
import math
import zlib
from typing import Any

import numpy as np

from streamseg.frames import Result
from streamseg.stage_options import MAX_PIXELS

TOPIC = b"labels"
VERSION = 1
LEVEL = 1  # fast (1-4 ms a 768x432 frame); smooth maps still shrink ~100x, speckled ones ~4x


class MessageEncoder:
    """Turns results into messages; the per-run part of the header is serialized once."""

    def __init__(self, classes: tuple[str, ...], source: str):
        self._tail = json.dumps({"dtype": "uint8", "encoding": "zlib", "source": source, "classes": list(classes)})

    def encode(self, result: Result) -> list[bytes]:
        labels = np.ascontiguousarray(result.labels, dtype=np.uint8)
        head = json.dumps({
            "v": VERSION, "frame": result.index, "pts": result.pts, "time": result.time,
            "capture_time": result.capture_time, "latency": round(result.latency, 6), "shape": list(labels.shape),
        })  # fmt: skip
        header = head[:-1] + ", " + self._tail[1:]  # join the two JSON objects
        return [TOPIC, header.encode(), zlib.compress(labels.data, LEVEL)]


def decode(parts: list[bytes], max_pixels: int = MAX_PIXELS) -> tuple[dict[str, Any], np.ndarray]:
    """A received multipart message -> (header, labels as an (H, W) uint8 array).

    Anything a buggy or hostile publisher could send raises ValueError: a
    header that misses a field or has the wrong type, a shape past
    ``MAX_SIDE`` or ``max_pixels``, a frame number or time out of range, a
    payload that inflates to more or fewer bytes than the shape declares.
    Decompression stops at the declared size, so a zlib bomb costs at most
    one label map of memory.
    """
    if len(parts) != 3 or parts[0] != TOPIC:
        raise ValueError(f"not a streamseg label message ({len(parts)} parts, topic {parts[0][:16]!r})")
    header = parse_header(parts[1], max_pixels)
    height, width = header["shape"]
    return header, np.frombuffer(inflate(parts[2], height * width), np.uint8).reshape(height, width)


def parse_header(data: bytes, max_pixels: int = MAX_PIXELS) -> dict[str, Any]:
    """The JSON header, checked field by field (see the module docstring)."""
    if len(data) > MAX_HEADER_BYTES:
        raise ValueError(f"header of {len(data)} bytes (at most {MAX_HEADER_BYTES})")
    try:
        header = json.loads(data)
    except ValueError as err:  # also a UnicodeDecodeError
        raise ValueError(f"header is not JSON: {err}") from None
    if not isinstance(header, dict):
        raise ValueError("header is not a JSON object")  # noqa: TRY004 - every bad message is a ValueError
    if header.get("v") != VERSION or header.get("encoding") != "zlib" or header.get("dtype") != "uint8":
        raise ValueError(
            f"unsupported message version {header.get('v')!r} / encoding {header.get('encoding')!r} "
            f"/ dtype {header.get('dtype')!r}"
        )
    shape = header.get("shape")
    if not (isinstance(shape, list) and len(shape) == 2 and all(_is_int(n) and 0 < n <= MAX_SIDE for n in shape)):
        raise ValueError(f"shape must be [height, width], each 1..{MAX_SIDE}: {str(shape)[:40]}")
    if shape[0] * shape[1] > max_pixels:
        raise ValueError(f"a {shape[1]}x{shape[0]} map is over {max_pixels} pixels (--max-pixels)")
    classes = header.get("classes")
    if not (isinstance(classes, list) and 0 < len(classes) <= 256 and all(isinstance(c, str) for c in classes)):
        raise ValueError("classes must be a list of 1..256 names")
    for key, kinds in _FIELDS.items():
        if not isinstance(header.get(key), kinds) or isinstance(header.get(key), bool):
            raise ValueError(f"header field {key!r} missing or of the wrong type")  # noqa: TRY004
    if not 0 <= header["frame"] <= MAX_FRAME:
        raise ValueError(f"frame number out of range 0..{MAX_FRAME}")
    for key in ("capture_time", "time"):
        if header[key] is not None and not _finite(header[key]):
            raise ValueError(f"header field {key!r} is not a finite number of seconds")
    return header


def inflate(payload: bytes, size: int) -> bytes:
    """zlib-decompress exactly ``size`` bytes; more, fewer, or trailing data is an error."""
    inflater = zlib.decompressobj()
    try:
        data = inflater.decompress(payload, size)
        if len(data) == size and not inflater.eof and inflater.decompress(inflater.unconsumed_tail, 1):
            raise ValueError(f"payload inflates past the {size} bytes its shape declares")
    except zlib.error as err:
        raise ValueError(f"payload is not zlib data: {err}") from None
    if len(data) != size or not inflater.eof or inflater.unused_data:
        raise ValueError(f"payload does not inflate to the {size} bytes its shape declares")
    return data


def _is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _finite(value: float) -> bool:
    try:
        return math.isfinite(value)
    except OverflowError:  # an int too large for a float
        return False


def max_message_bytes(max_pixels: int = MAX_PIXELS) -> int:
    """The largest message a subscriber takes for maps of up to ``max_pixels``; zlib adds < 0.1% to random data."""
    return max_pixels * 1001 // 1000 + MAX_HEADER_BYTES


MAX_SIDE = 16384  # pixels: no label map is taller or wider; their product is capped by max_pixels
MAX_FRAME = 2**63 - 1  # frame numbers fit in an int64 (and a file name)
MAX_HEADER_BYTES = 1 << 20  # classes and all
_FIELDS: dict[str, type | tuple[type, ...]] = {
    "frame": int,
    "capture_time": (int, float),
    "time": (int, float, type(None)),
}
