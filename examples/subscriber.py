"""A label-map consumer in another process (or on another host), without streamseg.

    streamseg run street.mp4 -m fcn_resnet50 --publish tcp://127.0.0.1:5555 &
    python examples/subscriber.py tcp://127.0.0.1:5555

Needs only pyzmq and numpy: the message is topic, JSON header, zlib-compressed
uint8 label map (see docs/downstream.md). The header is checked and the payload
inflated only up to the size the header declares, so a malformed message or a
zlib bomb from a buggy publisher is skipped with a warning.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
import zlib

import numpy as np
import zmq

MAX_SIDE = 16384  # no label map is taller or wider
MAX_PIXELS = 7680 * 4320  # nor larger than the largest picture a run reads by default (--max-pixels)


def parse(header_bytes: bytes, payload: bytes) -> tuple[dict, np.ndarray]:
    """(header, labels) from one message; ValueError when anything is off."""
    header = json.loads(header_bytes)  # a JSONDecodeError is a ValueError
    if not isinstance(header, dict) or header.get("v") != 1 or header.get("encoding") != "zlib":
        raise ValueError("not a version 1 zlib label message")
    shape, classes = header.get("shape"), header.get("classes")
    if not (isinstance(shape, list) and len(shape) == 2 and all(type(n) is int and 0 < n <= MAX_SIDE for n in shape)):
        raise ValueError(f"bad shape {str(shape)[:40]}")
    if shape[0] * shape[1] > MAX_PIXELS:
        raise ValueError(f"a {shape[1]}x{shape[0]} map is over {MAX_PIXELS} pixels")
    if not (isinstance(classes, list) and all(isinstance(name, str) for name in classes)):
        raise ValueError("classes missing or not a list of names")
    if type(header.get("frame")) is not int or type(header.get("capture_time")) not in (int, float):
        raise ValueError("frame or capture_time missing")
    if not 0 <= header["frame"] < 2**63 or not abs(header["capture_time"]) < 1e12:
        raise ValueError("frame or capture_time out of range")
    size = shape[0] * shape[1]
    inflater = zlib.decompressobj()
    try:
        data = inflater.decompress(payload, size)  # never more than the declared map: a zlib bomb stops here
        if len(data) == size and not inflater.eof and inflater.decompress(inflater.unconsumed_tail, 1):
            raise ValueError("payload larger than its shape")
    except zlib.error as err:
        raise ValueError(f"payload is not zlib data: {err}") from None
    if len(data) != size or not inflater.eof or inflater.unused_data:
        raise ValueError("payload size does not match its shape")
    return header, np.frombuffer(data, np.uint8).reshape(shape)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("endpoint", help="where `streamseg run --publish` publishes, e.g. tcp://127.0.0.1:5555")
    parser.add_argument("--count", type=int, default=0, help="stop after N label maps (0: run until Ctrl-C)")
    args = parser.parse_args()

    socket = zmq.Context.instance().socket(zmq.SUB)
    socket.setsockopt(zmq.MAXMSGSIZE, MAX_PIXELS * 2)  # a bigger message drops the publisher, not us
    socket.connect(args.endpoint)
    socket.setsockopt(zmq.SUBSCRIBE, b"labels")
    received = 0
    try:
        while args.count == 0 or received < args.count:
            parts = socket.recv_multipart()
            try:
                if len(parts) != 3:
                    raise ValueError(f"{len(parts)} parts, expected 3")
                header, labels = parse(parts[1], parts[2])
            except ValueError as err:
                print(f"skipping a message: {err}", file=sys.stderr, flush=True)
                continue
            received += 1
            # e.g. hand `labels` to a perception module; here: how much of the picture is road and car
            # row by row: np.bincount widens what it counts to int64, 8 bytes a pixel; a row at a time stays small
            counts = sum(np.bincount(row, minlength=256) for row in labels)
            shares = {
                name: counts[i] / labels.size for i, name in enumerate(header["classes"]) if name in ("road", "car")
            }
            age_ms = 1000 * (time.time() - header["capture_time"])
            height, width = labels.shape
            print(
                f"frame {header['frame']} {width}x{height} age {age_ms:.0f} ms "
                + " ".join(f"{name} {100 * share:.1f}%" for name, share in shares.items()),
                flush=True,
            )
    except KeyboardInterrupt:
        pass
    finally:
        socket.close(0)


if __name__ == "__main__":
    main()
