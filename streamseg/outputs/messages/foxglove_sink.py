"""``--foxglove PORT``: the MCAP file's channels, live, over the Foxglove WebSocket protocol (foxglove-sdk).

Open Foxglove, "Open connection", ``ws://127.0.0.1:PORT``: the camera, label and overlay images and the
class fractions (plottable) arrive as they are made. The same ROS 2 messages (CDR, ``ros2msg`` schemas)
as in the MCAP file; a source's channels are advertised with its first frame. The server has its own
foxglove-sdk context, so nothing else in the process logs to it. foxglove-sdk queues per client and sends
from its own threads: a slow viewer loses messages, it never slows the pipeline.
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING

from streamseg.errors import MissingExtraError, SinkError
from streamseg.frames import Result
from streamseg.outputs.messages.ros_messages import CHANNELS, SCHEMAS, RosEncoder, topic
from streamseg.outputs.messages.topics import SourceTopics, stamp_ns

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

    def __init__(self, port: int, classes: tuple[str, ...], *, live: bool, host: str = "127.0.0.1"):
        foxglove = require_foxglove()
        self.encoder = RosEncoder(classes)
        self.live = live
        self._foxglove = foxglove
        self._context = foxglove.Context()
        try:
            self._server = foxglove.start_server(name="streamseg", host=host, port=port, context=self._context)
        except RuntimeError as err:  # foxglove-sdk's FoxgloveError, e.g. "Failed to bind port: Address already in use"
            raise SinkError(f"--foxglove {port}: cannot listen on {host}:{port}: {err}") from None
        self.host, self.port = host, self._server.port
        self.url = f"ws://{host}:{self.port}"
        self._channels: dict[str, Channel] = {}
        self._topics = SourceTopics()
        self.announcement = f"Foxglove WebSocket server at {self.url}"
        log.info("%s", self.announcement)

    def write(self, result: Result) -> None:
        name = self._topics(result.source)
        channels = [self._channel(topic(name, suffix), schema) for suffix, schema in CHANNELS.items()]
        if not any(channel.has_sinks() for channel in channels):
            return  # no sink on these channels: skip the encoding
        stamp = stamp_ns(result, self.live)
        for message in self.encoder.messages(result, stamp, frame_id=name):
            self._channels[topic(name, message.suffix)].log(message.data, log_time=stamp)

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
        for channel in self._channels.values():
            channel.close()
        self._server.stop()
