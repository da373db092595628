"""A minimal Foxglove WebSocket protocol client, written from the protocol spec.

foxglove-sdk 0.30 speaks the protocol as ``foxglove.sdk.v1`` (and refuses the older name
``foxglove.websocket.v1``); the ops and binary frames are the same, so this client offers both.

It reads the server's ``advertise`` ops, subscribes to the topics asked for and collects the binary
``messageData`` frames: opcode 0x01, uint32 subscription id, uint64 log time (ns), then the message bytes.
"""

from __future__ import annotations

import json
import struct
import time

from websockets.sync.client import connect

MESSAGE_DATA = 0x01
SUBPROTOCOLS = ["foxglove.sdk.v1", "foxglove.websocket.v1"]


def collect(url: str, topics: list[str], count: int, timeout: float = 60) -> tuple[dict, dict[str, list]]:
    """Until every topic has ``count`` messages: (the advertised channels by topic, [(log_time, bytes)] by topic)."""
    channels: dict[str, dict] = {}
    received: dict[str, list] = {topic: [] for topic in topics}
    by_subscription: dict[int, str] = {}
    deadline = time.monotonic() + timeout
    with connect(url, subprotocols=SUBPROTOCOLS, open_timeout=10, max_size=None) as ws:
        while time.monotonic() < deadline and any(len(v) < count for v in received.values()):
            try:
                frame = ws.recv(timeout=max(0.1, deadline - time.monotonic()))
            except TimeoutError:
                break
            if isinstance(frame, str):
                op = json.loads(frame)
                if op["op"] == "advertise":
                    subscriptions = []
                    for channel in op["channels"]:
                        channels[channel["topic"]] = channel
                        if channel["topic"] in topics:
                            sub = len(by_subscription) + 1
                            by_subscription[sub] = channel["topic"]
                            subscriptions.append({"id": sub, "channelId": channel["id"]})
                    if subscriptions:
                        ws.send(json.dumps({"op": "subscribe", "subscriptions": subscriptions}))
            elif frame[0] == MESSAGE_DATA:
                sub, log_time = struct.unpack_from("<IQ", frame, 1)
                received[by_subscription[sub]].append((log_time, bytes(frame[13:])))
    return channels, received
