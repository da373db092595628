"""A label-map consumer in another process (or on another host), without streamseg.

    streamseg run street.mp4 -m fcn_resnet50 --publish tcp://127.0.0.1:5555 &
    python examples/subscriber.py tcp://127.0.0.1:5555

Needs only pyzmq and numpy: the message is topic, JSON header, zlib-compressed
uint8 label map (see docs/downstream.md).
"""

from __future__ import annotations

import argparse
import json
import time
import zlib

import numpy as np
import zmq


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("endpoint", help="where `streamseg run --publish` publishes, e.g. tcp://127.0.0.1:5555")
    parser.add_argument("--count", type=int, default=0, help="stop after N label maps (0: run until Ctrl-C)")
    args = parser.parse_args()

    socket = zmq.Context.instance().socket(zmq.SUB)
    socket.connect(args.endpoint)
    socket.setsockopt(zmq.SUBSCRIBE, b"labels")
    received = 0
    try:
        while args.count == 0 or received < args.count:
            _topic, header_bytes, payload = socket.recv_multipart()
            header = json.loads(header_bytes)
            labels = np.frombuffer(zlib.decompress(payload), np.uint8).reshape(header["shape"])
            received += 1
            # e.g. hand `labels` to a perception module; here: how much of the picture is road and car
            counts = np.bincount(labels.ravel(), minlength=len(header["classes"]))
            shares = {name: counts[i] / labels.size for i, name in enumerate(header["classes"]) if name in ("road", "car")}
            age_ms = 1000 * (time.time() - header["capture_time"])
            height, width = labels.shape
            print(f"frame {header['frame']} {width}x{height} age {age_ms:.0f} ms "
                  + " ".join(f"{name} {100 * share:.1f}%" for name, share in shares.items()), flush=True)
    except KeyboardInterrupt:
        pass
    finally:
        socket.close(0)


if __name__ == "__main__":
    main()
