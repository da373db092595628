"""A camera simulator: publishes a moving scene over RTSP or RTMP with PyAV, stamped with its capture time.

    python tests/support/camera.py rtsp://127.0.0.1:PORT/cam-in --fps 15 --size 160x96
    python tests/support/camera.py rtmp://127.0.0.1:PORT/live/cam

The capture time (ms, mod 2**32) is drawn into the top rows as Manchester-coded
blocks: each bit is a (white, black) or (black, white) pair, so it survives
H.264 and a colour overlay blended over both halves alike. Reconnects whenever
the server goes away, until killed.
"""

from __future__ import annotations

import argparse
import sys
import time
from fractions import Fraction
from pathlib import Path

import av
import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))  # the repository root, when run as a script
from streamseg.outputs.streams.nodelay import disable_nagle, socket_fds  # noqa: E402
from tests.support.videos import moving_scene  # noqa: E402

BITS = 32
BLOCK = 8  # pixels per half-bit; the stamp is BITS * 2 * BLOCK wide over two rows of 16 bits
ROWS = 2


def stamp_size() -> tuple[int, int]:
    return ROWS * BLOCK, BITS // ROWS * 2 * BLOCK  # (height, width)


def draw_stamp(image: np.ndarray, millis: int) -> None:
    """Write ``millis`` (mod 2**32) into the top-left corner of ``image`` in place (if it fits)."""
    if image.shape[0] < stamp_size()[0] or image.shape[1] < stamp_size()[1]:
        return
    per_row = BITS // ROWS
    for bit in range(BITS):
        one = (millis >> (BITS - 1 - bit)) & 1
        row, col = divmod(bit, per_row)
        y, x = row * BLOCK, col * 2 * BLOCK
        image[y : y + BLOCK, x : x + BLOCK] = 255 if one else 0
        image[y : y + BLOCK, x + BLOCK : x + 2 * BLOCK] = 0 if one else 255


def read_stamp(image: np.ndarray) -> int:
    """The ``millis`` that ``draw_stamp`` wrote, from a decoded (and maybe overlaid) picture."""
    gray = image[: ROWS * BLOCK].astype(np.int32).sum(axis=2)
    per_row, value = BITS // ROWS, 0
    inner = slice(2, BLOCK - 2)  # block centres: edges blur in the codec
    for bit in range(BITS):
        row, col = divmod(bit, per_row)
        y, x = row * BLOCK, col * 2 * BLOCK
        left = gray[y : y + BLOCK, x : x + BLOCK][inner, inner].mean()
        right = gray[y : y + BLOCK, x + BLOCK : x + 2 * BLOCK][inner, inner].mean()
        value = (value << 1) | int(left > right)
    return value


def stamp_white_level(image: np.ndarray) -> float:
    """Mean over the stamp's white half-blocks (their centres) of each pixel's darkest channel.

    255 for the camera's own picture; a colour overlay blended over it tints the
    white, so the darkest channel drops (to ~(255 + that channel) / 2 at alpha 0.5).
    """
    value, per_row, inner = read_stamp(image), BITS // ROWS, slice(2, BLOCK - 2)
    levels = []
    for bit in range(BITS):
        row, col = divmod(bit, per_row)
        y, x = row * BLOCK, col * 2 * BLOCK + (0 if (value >> (BITS - 1 - bit)) & 1 else BLOCK)
        levels.append(image[y : y + BLOCK, x : x + BLOCK][inner, inner].min(axis=2).mean())
    return float(np.mean(levels))


def now_millis() -> int:
    return int(time.time() * 1000) % 2**BITS


def latency_ms(stamp: int) -> int:
    return (now_millis() - stamp) % 2**BITS


def publish(url: str, fps: int, width: int, height: int, gop: int) -> None:
    """Publish until killed; on any error wait a little and publish again."""
    index = 0
    while True:
        try:
            index = _publish_once(url, fps, width, height, gop, index)
        except (av.FFmpegError, OSError) as err:
            print(f"camera: {type(err).__name__}: {err}; retrying", file=sys.stderr, flush=True)
        time.sleep(0.3)


def _publish_once(url: str, fps: int, width: int, height: int, gop: int, index: int) -> int:
    tb = Fraction(1, 90000)
    muxer, options = ("flv", {}) if url.startswith("rtmp://") else ("rtsp", {"rtsp_transport": "tcp"})
    sockets_before = socket_fds()
    with av.open(url, "w", format=muxer, options=options, timeout=3) as container:
        stream = container.add_stream("libx264", rate=fps)
        stream.width, stream.height, stream.pix_fmt = width, height, "yuv420p"
        stream.time_base = stream.codec_context.time_base = tb
        stream.codec_context.gop_size = gop
        stream.options = {"preset": "ultrafast", "tune": "zerolatency", "x264-params": "sliced-threads=0:threads=1"}
        start = time.monotonic()
        next_at = start
        while True:
            image = moving_scene(index, width, height)
            draw_stamp(image, now_millis())
            frame = av.VideoFrame.from_ndarray(image, format="rgb24")
            frame.pts, frame.time_base = round((time.monotonic() - start) * 90000), tb
            for packet in stream.encode(frame):
                container.mux(packet)
            # once connected, send each frame's packets at once, as streamseg's outputs do
            if sockets_before is not None and disable_nagle(socket_fds() - sockets_before):
                sockets_before = None
            index += 1
            next_at += 1 / fps
            time.sleep(max(0.0, next_at - time.monotonic()))


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("url")
    parser.add_argument("--fps", type=int, default=15)
    parser.add_argument("--size", default="160x96")
    parser.add_argument("--gop", type=int, default=0, help="keyframe interval [default: fps/2]")
    args = parser.parse_args()
    w, h = (int(v) for v in args.size.split("x"))
    try:
        publish(args.url, args.fps, w, h, args.gop or max(1, args.fps // 2))
    except KeyboardInterrupt:
        pass
