"""A sink that publishes every label map on a ZeroMQ PUB socket."""

from __future__ import annotations

import logging

from streamseg.errors import MissingExtraError, SinkError
from streamseg.frames import Result
from streamseg.logs import redact
from streamseg.outputs.messages.wire import MessageEncoder

log = logging.getLogger(__name__)


def require_zmq():
    try:
        import zmq
    except ImportError:
        raise MissingExtraError("--publish", "publish") from None
    return zmq


class LabelPublisher:
    """Binds a PUB socket at ``endpoint`` (``tcp://127.0.0.1:5555``, ``ipc:///tmp/seg``).

    PUB never blocks the pipeline: a subscriber that falls ``hwm`` messages
    behind loses messages, and one that joins late starts at the next frame.
    """

    def __init__(self, endpoint: str, classes: tuple[str, ...], *, hwm: int = 32):
        zmq = require_zmq()
        self.endpoint = endpoint
        self._classes = classes
        self._encoders: dict[str, MessageEncoder] = {}  # one per source: its name is in every header
        self._context = zmq.Context.instance()
        self._socket = self._context.socket(zmq.PUB)
        self._socket.setsockopt(zmq.SNDHWM, hwm)
        self._socket.setsockopt(zmq.LINGER, 500)  # on close, give queued frames half a second to leave
        try:
            self._socket.bind(endpoint)
        except zmq.ZMQError as err:
            self._socket.close(0)
            raise SinkError(f"--publish {redact(endpoint)}: cannot bind: {err}") from None
        self.sent = 0
        log.info("publishing label maps on %s", redact(endpoint))

    def write(self, result: Result) -> None:
        encoder = self._encoders.get(result.source)
        if encoder is None:
            encoder = self._encoders[result.source] = MessageEncoder(self._classes, redact(result.source))
        self._socket.send_multipart(encoder.encode(result))
        self.sent += 1

    def close(self, complete: bool = True) -> None:
        self._socket.close()
