"""``streamseg subscribe ENDPOINT``: print (or save) the label maps a ``run --publish`` sends."""

from __future__ import annotations

import json
import time
from pathlib import Path

import click
import cv2
import numpy as np

from streamseg.cli.command import Command, examples
from streamseg.cli.flags import output_option
from streamseg.errors import SinkError, SourceError
from streamseg.logs import redact
from streamseg.stage_options import MAX_PIXELS

TOP = 3  # classes named per line


@click.command(
    cls=Command,
    renamed={"--save": "--output"},
    epilog=examples(
        "streamseg subscribe tcp://127.0.0.1:5555", "streamseg subscribe tcp://127.0.0.1:5555 -n 100 --json -o labels/"
    ),
)
@click.argument("endpoint")
@click.option("-n", "--count", type=click.IntRange(min=1), help="Exit after N label maps [default: run until Ctrl-C].")
@click.option("--timeout", type=click.FloatRange(min=0.1), help="Give up after this many seconds without a message.")
@click.option("--json", "as_json", is_flag=True, help="One JSON object per message: the header plus class fractions.")
@output_option(
    "Also save each label map as DIR/NNNNNN.png.", dest="save", type=click.Path(file_okay=False), metavar="DIR"
)
@click.option(
    "--max-pixels",
    type=click.IntRange(min=1),
    default=MAX_PIXELS,
    help="Skip label maps larger than N pixels, before inflating them [default: 33177600, 7680x4320].",
)
def subscribe(
    endpoint: str, count: int | None, timeout: float | None, as_json: bool, save: str | None, max_pixels: int
) -> None:
    """Connect to ENDPOINT (e.g. tcp://127.0.0.1:5555) and describe each label map received."""
    from streamseg.outputs.messages.wire import TOPIC, decode, max_message_bytes
    from streamseg.outputs.messages.zmq_pub import require_zmq

    zmq = require_zmq()
    folder = Path(save) if save else None
    if folder is not None:
        folder.mkdir(parents=True, exist_ok=True)
    context = zmq.Context.instance()
    socket = context.socket(zmq.SUB)
    # retry every 10 ms (not 100): a subscriber started before the run attaches in time for its first frames
    socket.setsockopt(zmq.RECONNECT_IVL, 10)
    socket.setsockopt(zmq.MAXMSGSIZE, max_message_bytes(max_pixels))  # a bigger one drops that publisher, not us
    try:
        socket.connect(endpoint)
    except zmq.ZMQError as err:
        socket.close(0)
        raise SourceError(f"cannot connect to {redact(endpoint)}: {err}") from None
    socket.setsockopt(zmq.SUBSCRIBE, TOPIC)
    poller = zmq.Poller()
    poller.register(socket, zmq.POLLIN)
    received = 0
    try:
        while count is None or received < count:
            if not poller.poll(None if timeout is None else timeout * 1000):
                if received == 0:
                    raise SourceError(f"no label maps from {redact(endpoint)} within {timeout:g} s")
                break  # the stream went quiet: done
            try:
                header, labels = decode(socket.recv_multipart(), max_pixels)
            except ValueError as err:  # a malformed header, a zlib bomb: one warning, then the next message
                click.echo(f"streamseg: skipping a message: {err}", err=True)
                continue
            received += 1
            if folder is not None:  # saved before its line: a reader that saw frame N finds its PNG
                _save_png(folder / f"{header['frame']:06d}.png", labels)
            click.echo(_describe(header, class_fractions(labels), as_json))
    except KeyboardInterrupt:
        pass
    finally:
        socket.close(0)
    click.echo(f"streamseg: received {received} label maps", err=True)


def class_fractions(labels: np.ndarray) -> np.ndarray:
    """The share of each class id 0..255, counted on the uint8 map itself (np.bincount would first widen every
    pixel to int64: 8 bytes a pixel)."""
    counts = cv2.calcHist([labels], [0], None, [256], [0, 256]).ravel().astype(np.float64)
    return counts / max(1, labels.size)


def _describe(header: dict, fractions: np.ndarray, as_json: bool) -> str:
    names = header["classes"]
    if as_json:
        shares = {names[i]: round(float(f), 6) for i, f in enumerate(fractions[: len(names)]) if f > 0}
        return json.dumps({**{k: v for k, v in header.items() if k != "classes"}, "fractions": shares})
    top = np.argsort(-fractions)[:TOP]
    classes = "  ".join(f"{names[i] if i < len(names) else i} {100 * fractions[i]:.1f}%" for i in top if fractions[i])
    when = "-" if header["time"] is None else f"{header['time']:.3f}s"
    age_ms = (time.time() - header["capture_time"]) * 1000
    h, w = header["shape"]
    return f"frame {header['frame']:>6}  t={when}  {w}x{h}  age {age_ms:.0f} ms  {classes}"


def _save_png(path: Path, labels: np.ndarray) -> None:
    from PIL import Image

    try:
        Image.fromarray(labels).save(path, compress_level=1)
    except OSError as err:
        raise SinkError(f"cannot write {path}: {err.strerror or err}") from None
