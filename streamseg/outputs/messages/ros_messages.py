"""A result as ROS 2 messages (CDR bytes), ready for an MCAP file or a Foxglove server.

The schemas are the standard ROS 2 definitions (``ros2msg`` text with their dependencies inlined, as
``ros2 bag record`` stores them), so ROS 2 tools, Foxglove and ``rosbags`` decode them without plugins.
mcap-ros2-support serializes them; the same bytes go to every transport.
"""

from __future__ import annotations

import json
from dataclasses import dataclass

import cv2
import numpy as np

from streamseg.errors import MissingExtraError
from streamseg.frames import Result
from streamseg.logs import redact
from streamseg.outputs.files.summary import class_fractions

_SEPARATOR = "=" * 80 + "\n"
_TIME = "MSG: builtin_interfaces/Time\nint32 sec\nuint32 nanosec\n"
_HEADER = "MSG: std_msgs/Header\nbuiltin_interfaces/Time stamp\nstring frame_id\n"

SCHEMAS = {
    "sensor_msgs/msg/CompressedImage": "std_msgs/Header header\nstring format\nuint8[] data\n"
                                       + _SEPARATOR + _HEADER + _SEPARATOR + _TIME,
    "sensor_msgs/msg/Image": "std_msgs/Header header\nuint32 height\nuint32 width\nstring encoding\n"
                             "uint8 is_bigendian\nuint32 step\nuint8[] data\n"
                             + _SEPARATOR + _HEADER + _SEPARATOR + _TIME,
    "std_msgs/msg/Float32MultiArray": "MultiArrayLayout layout\nfloat32[] data\n" + _SEPARATOR
                                      + "MSG: std_msgs/MultiArrayLayout\nMultiArrayDimension[] dim\n"
                                      "uint32 data_offset\n"
                                      + _SEPARATOR + "MSG: std_msgs/MultiArrayDimension\nstring label\nuint32 size\n"
                                      "uint32 stride\n",
    "std_msgs/msg/String": "string data\n",
}  # fmt: skip

# topic suffix under /streamseg/<source>/ -> message type
CHANNELS = {
    "camera/compressed": "sensor_msgs/msg/CompressedImage",  # the decoded frame, JPEG
    "labels": "sensor_msgs/msg/Image",  # mono8, pixel value = class id
    "overlay/compressed": "sensor_msgs/msg/CompressedImage",  # the composited picture (-o's picture), JPEG
    "class_fractions": "std_msgs/msg/Float32MultiArray",  # data[i] = share of the frame that is class i
    "stats": "std_msgs/msg/String",  # JSON: source, index, time, latency_ms, fractions by class name
}
# with regions and rules (streamseg.events), JSON in std_msgs/String: per frame, and per event start and end
EVENT_CHANNELS = {"coverage": "std_msgs/msg/String", "events": "std_msgs/msg/String"}
JPEG_QUALITY = 85
PREFIX = "/streamseg"  # topics: /streamseg/<source>/<suffix>


def topic(source_name: str, suffix: str) -> str:
    return f"{PREFIX}/{source_name}/{suffix}"


def _encoders() -> dict:
    try:
        from mcap_ros2._dynamic import serialize_dynamic  # the serializer behind mcap_ros2.writer.Writer
    except ImportError:
        raise MissingExtraError("ROS 2 messages (MCAP, Foxglove)", "ros") from None
    return {name: serialize_dynamic(name, text)[name] for name, text in SCHEMAS.items()}


@dataclass(frozen=True)
class RosMessage:
    suffix: str  # topic suffix, a key of CHANNELS
    schema: str  # message type
    data: bytes  # CDR


class RosEncoder:
    """Turns one result into the five messages of ``CHANNELS``, all stamped ``stamp_ns``."""

    def __init__(self, classes: tuple[str, ...]):
        self.classes = classes
        self._encode = _encoders()
        dims = [{"label": "class", "size": len(classes), "stride": len(classes)}]
        self._layout = {"dim": dims, "data_offset": 0}

    def messages(self, result: Result, stamp_ns: int, frame_id: str) -> list[RosMessage]:
        header = {
            "stamp": {"sec": stamp_ns // 1_000_000_000, "nanosec": stamp_ns % 1_000_000_000},
            "frame_id": frame_id,
        }
        labels = np.ascontiguousarray(result.labels, dtype=np.uint8)
        fractions = class_fractions(labels, len(self.classes))
        stats = {
            "source": redact(result.source), "index": result.index, "time": result.time, "stamp_ns": stamp_ns,
            "latency_ms": round(result.latency * 1000, 2),
            "fractions": {c: round(float(f), 6) for c, f in zip(self.classes, fractions) if f > 0},
        }  # fmt: skip
        values = {
            "camera/compressed": {"header": header, "format": "jpeg", "data": _jpeg(result.frame)},
            "labels": {"header": header, "height": labels.shape[0], "width": labels.shape[1], "encoding": "mono8",
                       "is_bigendian": 0, "step": labels.shape[1], "data": labels.tobytes()},
            "overlay/compressed": {"header": header, "format": "jpeg", "data": _jpeg(result.picture)},
            "class_fractions": {"layout": self._layout, "data": fractions.astype(np.float32).tolist()},
            "stats": {"data": json.dumps(stats)},
        }  # fmt: skip
        return [
            RosMessage(suffix, CHANNELS[suffix], self._encode[CHANNELS[suffix]](value))
            for suffix, value in values.items()
        ]

    def json(self, suffix: str, value: dict) -> RosMessage:
        """A JSON document as a ``std_msgs/String`` on one of ``EVENT_CHANNELS`` (coverage, events)."""
        schema = EVENT_CHANNELS[suffix]
        return RosMessage(suffix, schema, self._encode[schema]({"data": json.dumps(value)}))


def _jpeg(rgb: np.ndarray) -> bytes:
    bgr = cv2.cvtColor(rgb, cv2.COLOR_RGB2BGR)
    return cv2.imencode(".jpg", bgr, [cv2.IMWRITE_JPEG_QUALITY, JPEG_QUALITY])[1].tobytes()
