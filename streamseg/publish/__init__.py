"""Label maps over the network: a ZeroMQ PUB sink and its documented wire format."""

from streamseg.publish.wire import TOPIC, decode
from streamseg.publish.zmq_pub import LabelPublisher

__all__ = ["TOPIC", "LabelPublisher", "decode"]
