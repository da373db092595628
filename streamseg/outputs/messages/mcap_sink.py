"""``-o run.mcap`` / ``--mcap FILE``: every frame as ROS 2 messages in an MCAP file.

Written with the ``mcap`` library (profile ``ros2``, CDR messages, ``ros2msg`` schemas), readable by
``ros2 bag play``, Foxglove, ``rosbags`` and the mcap readers. Each frame ends its chunk and is flushed to
the OS, so a killed run leaves a file whose every complete frame reads back (a summary-less MCAP:
readers fall back to a linear scan); ``close`` writes the summary and index.
"""

from __future__ import annotations

import contextlib
import json
import logging
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from streamseg.errors import MissingExtraError, SinkError
from streamseg.frames import Result
from streamseg.logs import redact
from streamseg.outputs.messages.ros_messages import PREFIX, SCHEMAS, RosEncoder, topic
from streamseg.outputs.messages.topics import SourceTopics, coverage_document, event_stamp_ns, stamp_ns

log = logging.getLogger(__name__)


def _writer_class():
    try:
        from mcap.writer import CompressionType, Writer
    except ImportError:
        raise MissingExtraError("MCAP output", "ros") from None
    return Writer, CompressionType


class McapSink:
    """One MCAP file for all sources: topics ``/streamseg/<source>/<channel>`` (see ``ros_messages.CHANNELS``),
    and with regions and rules ``coverage`` per frame and ``events`` per event start and end (JSON strings).
    """

    def __init__(
        self, path: str | Path, classes: tuple[str, ...], colors: tuple[tuple[int, int, int], ...], *, live: bool
    ):
        Writer, CompressionType = _writer_class()
        self.encoder = RosEncoder(classes)
        self.path = Path(path)
        self.live = live
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            self._file = open(self.path, "wb")  # noqa: SIM115 - open for the whole run, closed in close()
        except OSError as err:
            raise SinkError(f"cannot write {self.path}: {err.strerror or err}") from None
        self._failed = False  # a write failed (a full disk): close only closes the file, writing nothing more
        # chunk_size only bounds a chunk; flush() ends one per frame anyway
        self._writer = Writer(self._file, chunk_size=4 << 20, compression=CompressionType.ZSTD)
        self._channels: dict[str, int] = {}
        self._topics = SourceTopics()
        with self._writing():
            self._writer.start(profile="ros2", library="streamseg")
            self._schemas = {
                name: self._writer.register_schema(name, "ros2msg", text.encode()) for name, text in SCHEMAS.items()
            }
            self._writer.add_metadata("streamseg", {
                "classes": json.dumps(list(classes)), "palette": json.dumps([list(c) for c in colors]),
                "clock": "capture time (Unix)" if live else "media time (pts * time_base)",
            })  # fmt: skip
            self._writer.flush()
        self.frames = 0
        self._lock = threading.Lock()  # sources' output threads write frames, and events, into one file
        self.announcement = f"writing ROS 2 messages to {self.path}"

    @contextlib.contextmanager
    def _writing(self) -> Iterator[None]:
        """Any write error (a full disk: ENOSPC, EFBIG) as ``cannot write PATH: why``; the file stays as it was."""
        if self._failed:
            raise SinkError(f"cannot write {self.path}: an earlier write failed")
        try:
            yield
        except OSError as err:
            self._failed = True
            raise SinkError(f"cannot write {self.path}: {err.strerror or err}") from None

    def write(self, result: Result) -> None:
        with self._lock:
            self._write(result)

    def publish_event(self, source: str, message: dict[str, Any]) -> None:
        """An event's start or end on ``/streamseg/<source>/events``, stamped as frames are (media or capture time)."""
        stamp = event_stamp_ns(message, self.live)
        with self._lock, self._writing():
            self._add(self._topics(source), self.encoder.json("events", message), stamp, 0)
            self._writer.flush()

    def _add(self, name: str, message: Any, stamp: int, sequence: int) -> None:
        channel = self._channel(topic(name, message.suffix), message.schema)
        self._writer.add_message(channel, log_time=stamp, publish_time=stamp, data=message.data, sequence=sequence)

    def _write(self, result: Result) -> None:
        new = result.source not in self._topics
        name = self._topics(result.source)
        stamp = stamp_ns(result, self.live)
        with self._writing():
            if new:
                self._writer.add_metadata(
                    f"streamseg.source.{name}", {"source": redact(result.source), "topic_prefix": f"{PREFIX}/{name}"}
                )
            for message in self.encoder.messages(result, stamp, frame_id=name):
                self._add(name, message, stamp, result.index)
            if result.coverage is not None:
                self._add(name, self.encoder.json("coverage", coverage_document(result)), stamp, result.index)
            self._writer.flush()  # one chunk per frame, handed to the OS: survives a kill of this process
        self.frames += 1

    def _channel(self, name: str, schema: str) -> int:
        channel = self._channels.get(name)
        if channel is None:
            channel = self._channels[name] = self._writer.register_channel(name, "cdr", self._schemas[schema])
        return channel

    def close(self, complete: bool = True) -> None:
        if self._file.closed:
            return
        if self._failed:  # the frames written before the failure read back by a linear scan
            with contextlib.suppress(OSError):
                self._file.close()
            return
        try:
            with self._writing():
                self._writer.finish()  # summary and chunk index: fast seeking readers
                self._file.close()
        finally:
            with contextlib.suppress(OSError):
                self._file.close()
        log.info("wrote %d frames to %s", self.frames, self.path)
