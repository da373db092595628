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
   with zlib (``zlib.decompress`` in any language).

The format depends on nothing but JSON and zlib, so a consumer needs neither
streamseg nor numpy (see ``examples/subscriber.py``).
"""

from __future__ import annotations

import json
import zlib
from typing import Any

import numpy as np

from streamseg.frames import Result

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


def decode(parts: list[bytes]) -> tuple[dict[str, Any], np.ndarray]:
    """A received multipart message -> (header, labels as an (H, W) uint8 array)."""
    if len(parts) != 3 or parts[0] != TOPIC:
        raise ValueError(f"not a streamseg label message ({len(parts)} parts, topic {parts[0][:16]!r})")
    header = json.loads(parts[1])
    if header.get("v") != VERSION or header.get("encoding") != "zlib":
        raise ValueError(f"unsupported message version {header.get('v')} / encoding {header.get('encoding')}")
    labels = np.frombuffer(zlib.decompress(parts[2]), np.uint8).reshape(header["shape"])
    return header, labels
