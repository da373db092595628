"""``--foxglove PORT``: the MCAP file's channels, live, over the Foxglove WebSocket protocol (foxglove-sdk).

Open Foxglove, "Open connection", ``ws://127.0.0.1:PORT``: the camera, label and overlay images and the
class fractions (plottable) arrive as they are made. The same ROS 2 messages (CDR, ``ros2msg`` schemas)
as in the MCAP file, with a source's ``coverage`` (per frame) and ``events`` (per event start and end) where it
has regions and rules; a source's channels are advertised with its first frame. The server has its own
foxglove-sdk context, so nothing else in the process logs to it. foxglove-sdk queues per client and sends
from its own threads: a slow viewer loses messages, it never slows the pipeline. Clients reach the server
through ``OriginGate``, which refuses web pages of other origins and foreign ``Host`` names.
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING, Any

from streamseg.errors import MissingExtraError, SinkError
from streamseg.frames import Result
from streamseg.outputs.messages.foxglove_gate import OriginGate, hidden_loopback
from streamseg.outputs.messages.ros_messages import CHANNELS, EVENT_CHANNELS, SCHEMAS, RosEncoder, topic
from streamseg.outputs.messages.topics import SourceTopics, coverage_document, event_stamp_ns, stamp_ns

if TYPE_CHECKING:
    from foxglove import Channel

log = logging.getLogger(__name__)


def require_foxglove():
    try:
        import foxglove
    except ImportError:
        raise MissingExtraError("--foxglove", "foxglove") from None
    return foxglove


class FoxgloveSink:
    """A Foxglove WebSocket server on ``host:port`` (port 0: a free one; ``self.port`` says which)."""

    def __init__(
        self,
        port: int,
        classes: tuple[str, ...],
        *,
        live: bool,
        host: str = "127.0.0.1",
        origins: tuple[str, ...] = ("https://app.foxglove.dev",),
    ):
        foxglove = require_foxglove()
        self.encoder = RosEncoder(classes)
        self.live = live
        self._foxglove = foxglove
        self._context = foxglove.Context()
        self._server = self._start_hidden(foxglove)
        try:
            self._gate = OriginGate(host, port, (self._server_host, self._server.port), origins=origins)
        except OSError as err:
            self._server.stop()
            raise SinkError(f"--foxglove {port}: cannot listen on {host}:{port}: {err.strerror or err}") from None
        self.host, self.port = host, self._gate.port
        self.url = f"ws://{host}:{self.port}"
        self._channels: dict[str, Channel] = {}
        self._topics = SourceTopics()
        self.announcement = f"Foxglove WebSocket server at {self.url}"
        log.info("%s", self.announcement)

    def _start_hidden(self, foxglove):
        """The SDK's server on a random loopback address (127.0.0.1 where only that one exists), any free port."""
        failure: Exception | None = None
        for address in (hidden_loopback(), "127.0.0.1"):
            try:
                server = foxglove.start_server(name="streamseg", host=address, port=0, context=self._context)
            except RuntimeError as err:  # foxglove-sdk's FoxgloveError, e.g. "Failed to bind port"
                failure = err
                continue
            self._server_host = address
            return server
        raise SinkError(f"--foxglove: cannot start the Foxglove server: {failure}")

    def write(self, result: Result) -> None:
        name = self._topics(result.source)
        stamp = stamp_ns(result, self.live)
        if result.coverage is not None:  # a source with regions: its events channel is advertised with it
            coverage, _ = (self._channel(topic(name, suffix), schema) for suffix, schema in EVENT_CHANNELS.items())
            if coverage.has_sinks():
                coverage.log(self.encoder.json("coverage", coverage_document(result)).data, log_time=stamp)
        channels = [self._channel(topic(name, suffix), schema) for suffix, schema in CHANNELS.items()]
        if not any(channel.has_sinks() for channel in channels):
            return  # no sink on these channels: skip the encoding
        for message in self.encoder.messages(result, stamp, frame_id=name):
            self._channels[topic(name, message.suffix)].log(message.data, log_time=stamp)

    def publish_event(self, source: str, message: dict[str, Any]) -> None:
        """An event's start or end on ``/streamseg/<source>/events``, stamped as the MCAP file stamps it."""
        encoded = self.encoder.json("events", message)
        channel = self._channel(topic(self._topics(source), encoded.suffix), encoded.schema)
        channel.log(encoded.data, log_time=event_stamp_ns(message, self.live))

    def _channel(self, name: str, schema: str) -> Channel:
        channel = self._channels.get(name)
        if channel is None:
            fg = self._foxglove
            channel = fg.Channel(
                name,
                message_encoding="cdr",
                context=self._context,
                schema=fg.Schema(name=schema, encoding="ros2msg", data=SCHEMAS[schema].encode()),
            )
            self._channels[name] = channel
        return channel

    def close(self, complete: bool = True) -> None:
        self._gate.close()
        for channel in self._channels.values():
            channel.close()
        self._server.stop()
