"""A buggy or hostile ZeroMQ publisher cannot exhaust a subscriber: bombs and bad headers are skipped.

A real PUB socket in this process feeds the real ``streamseg subscribe`` (and
``examples/subscriber.py``) in a subprocess; the subprocess's peak RSS is read
from /proc/PID/status.
"""

from __future__ import annotations

import json
import queue
import signal
import subprocess
import sys
import threading
import time
import zlib
from fractions import Fraction

import numpy as np
import pytest

from streamseg.frames import Result
from streamseg.outputs.messages.wire import MessageEncoder, decode
from tests.support.memory import vm_hwm
from tests.support.paths import ROOT

zmq = pytest.importorskip("zmq", reason="needs the publish extra (pyzmq)")

HEIGHT, WIDTH = 432, 768
BOMB_BYTES = 2 << 30  # what the bomb inflates to: 2 GiB of zeros, sent as ~2 MB


def zlib_bomb(total: int, chunk: int = 1 << 24) -> bytes:
    """A valid zlib stream of ``total`` zero bytes, built from one repeated deflate block (fast to make)."""
    deflate = zlib.compressobj(9, zlib.DEFLATED, -15)
    zeros = bytes(chunk)
    block = deflate.compress(zeros) + deflate.flush(zlib.Z_FULL_FLUSH)  # byte-aligned, history reset: repeatable
    end = deflate.flush()
    count = total // chunk
    adler = ((count * chunk) % 65521) << 16 | 1  # adler32 of zeros: a = 1, b = length
    return b"\x78\xda" + block * count + end + adler.to_bytes(4, "big")


def good_message(index: int) -> list[bytes]:
    labels = np.zeros((HEIGHT, WIDTH), np.uint8)
    labels[HEIGHT // 2 :] = 1
    picture = np.zeros((HEIGHT, WIDTH, 3), np.uint8)
    result = Result("cam0", index, index, Fraction(1, 25), time.time(), picture, labels, picture, 0.01)
    return MessageEncoder(("sky", "road"), "cam0").encode(result)


def hostile_messages() -> list[tuple[str, list[bytes]]]:
    topic, header, payload = good_message(500)
    fields = json.loads(header)
    no_classes = {k: v for k, v in fields.items() if k != "classes"}
    huge = {**fields, "shape": [100000, 100000]}
    return [
        ("bomb", [topic, header, zlib_bomb(BOMB_BYTES)]),
        ("no classes", [topic, json.dumps(no_classes).encode(), payload]),
        ("huge shape", [topic, json.dumps(huge).encode(), zlib_bomb(1 << 26)]),
        ("not json", [topic, b'{"v": 1,', payload]),
        ("two parts", [topic, header]),
    ]


def test_zlib_bomb_is_refused_by_decode():
    topic, header, _ = good_message(1)
    with pytest.raises(ValueError, match="inflates past"):
        decode([topic, header, zlib_bomb(1 << 28)])


def test_decode_checks_the_header():
    topic, header, payload = good_message(1)
    fields = json.loads(header)
    for bad in (
        {**fields, "shape": [432]},
        {**fields, "shape": [0, 768]},
        {**fields, "shape": [432.0, 768]},
        {**fields, "classes": "road"},
        {**fields, "classes": [1, 2]},
        {**fields, "dtype": "float32"},
        {**fields, "frame": "1"},
        {k: v for k, v in fields.items() if k != "capture_time"},
    ):
        with pytest.raises(ValueError):
            decode([topic, json.dumps(bad).encode(), payload])
    with pytest.raises(ValueError, match="inflate to the"):  # a payload shorter than the shape
        decode([topic, header, zlib.compress(bytes(HEIGHT * WIDTH - 1))])


class Lines(threading.Thread):
    """Collects a subprocess's stdout lines in a queue."""

    def __init__(self, stream):
        super().__init__(daemon=True)
        self.stream, self.lines = stream, queue.Queue()

    def run(self) -> None:
        for line in self.stream:
            self.lines.put(line)

    def wait_for(self, needle: str, timeout: float, publish=None) -> bool:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if publish is not None:
                publish()
            try:
                if needle in self.lines.get(timeout=0.1):
                    return True
            except queue.Empty:
                pass
        return False


def peak_rss_mb(pid: int) -> float:
    peak = vm_hwm(pid)
    assert peak > 0, "no VmHWM"
    return peak / 2**20


SUBSCRIBERS = {  # endpoint -> argv, and how each prints a received frame
    "streamseg-subscribe": (
        lambda url: ["-m", "streamseg", "subscribe", url, "--json", "--timeout", "60"],
        '"frame": {}',
    ),
    "example": (lambda url: [str(ROOT / "examples" / "subscriber.py"), url], "frame {} "),
}


@pytest.mark.parametrize("subscriber", SUBSCRIBERS)
def test_subscriber_survives_bomb_and_bad_headers_with_bounded_memory(subscriber: str):
    argv, seen = SUBSCRIBERS[subscriber]
    context = zmq.Context.instance()
    pub = context.socket(zmq.PUB)
    port = pub.bind_to_random_port("tcp://127.0.0.1")
    proc = subprocess.Popen(
        [sys.executable, *argv(f"tcp://127.0.0.1:{port}")], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
    )
    out = Lines(proc.stdout)
    out.start()
    try:
        # PUB/SUB drops what is sent before the subscription lands: publish until the first map is described
        assert out.wait_for(seen.format(0), 30, publish=lambda: pub.send_multipart(good_message(0))), "never attached"
        for _name, message in hostile_messages():
            pub.send_multipart(message)
        assert out.wait_for(seen.format(1000), 30, publish=lambda: pub.send_multipart(good_message(1000))), (
            "stopped receiving good messages after the hostile ones"
        )
        peak = peak_rss_mb(proc.pid)
        proc.send_signal(signal.SIGINT)
        _, err = proc.communicate(timeout=20)
    finally:
        proc.kill()
        pub.close(0)
    assert proc.returncode == 0, err
    assert "Traceback" not in err
    skipped = [line for line in err.splitlines() if "skipping a message" in line]
    assert len(skipped) == len(hostile_messages()), err  # one warning per bad message
    print(f"{subscriber}: peak RSS {peak:.0f} MB")
    assert peak < 250, f"peak RSS {peak:.0f} MB after a {BOMB_BYTES >> 20} MiB zlib bomb"


def declared_map(height: int, width: int, frame: int = 7) -> list[bytes]:
    """A valid message for a ``height`` x ``width`` map of zeros: 16384 x 16384 is 256 MiB sent as ~261 KB."""
    topic, header, _ = good_message(0)
    fields = {**json.loads(header), "shape": [height, width], "frame": frame}
    deflate = zlib.compressobj(9)
    row = bytes(width)
    payload = b"".join(deflate.compress(row) for _ in range(height)) + deflate.flush()
    return [topic, json.dumps(fields).encode(), payload]


def subscribe_to(pub_port: int, *args: str) -> tuple[subprocess.Popen, Lines]:
    proc = subprocess.Popen(
        [sys.executable, "-m", "streamseg", "subscribe", f"tcp://127.0.0.1:{pub_port}", "--json", *args],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    out = Lines(proc.stdout)
    out.start()
    return proc, out


@pytest.mark.slow
def test_a_huge_declared_map_is_skipped_before_it_is_inflated(tmp_path):
    """The issue's 261 KB message declaring 16384x16384 took 2.4 GB; and a 301-digit frame number, saved with
    ``-o DIR``, crashed the subscriber with exit 70. Both are skipped with a warning; the next map is saved."""
    huge = declared_map(16384, 16384)
    assert len(b"".join(huge)) < 300_000
    topic, header, payload = good_message(3)
    long_frame = [topic, json.dumps({**json.loads(header), "frame": 10**300}).encode(), payload]
    pub = zmq.Context.instance().socket(zmq.PUB)
    port = pub.bind_to_random_port("tcp://127.0.0.1")
    proc, out = subscribe_to(port, "-o", str(tmp_path / "maps"), "--timeout", "60")
    try:
        assert out.wait_for('"frame": 0', 30, publish=lambda: pub.send_multipart(good_message(0))), "never attached"
        pub.send_multipart(huge)
        pub.send_multipart(long_frame)
        assert out.wait_for('"frame": 1000', 30, publish=lambda: pub.send_multipart(good_message(1000)))
        peak = peak_rss_mb(proc.pid)
        proc.send_signal(signal.SIGINT)
        _, err = proc.communicate(timeout=20)
    finally:
        proc.kill()
        pub.close(0)
    assert proc.returncode == 0 and "Traceback" not in err, err
    skipped = [line for line in err.splitlines() if "skipping a message" in line]
    assert any("16384x16384 map is over 33177600 pixels" in line for line in skipped), err
    assert any("frame number out of range" in line for line in skipped), err
    assert (tmp_path / "maps" / "001000.png").exists()
    assert peak < 250, f"peak RSS {peak:.0f} MB"


@pytest.mark.slow
def test_classes_of_a_large_allowed_map_are_counted_without_widening():
    """Allowed with --max-pixels, a 16384x16384 map costs about its own 256 MiB once or twice, not the 2 GiB of an
    int64 copy for np.bincount."""
    pub = zmq.Context.instance().socket(zmq.PUB)
    port = pub.bind_to_random_port("tcp://127.0.0.1")
    proc, out = subscribe_to(port, "--max-pixels", str(16384 * 16384), "--timeout", "60")
    huge = declared_map(16384, 16384, frame=7)
    try:
        assert out.wait_for('"frame": 0', 30, publish=lambda: pub.send_multipart(good_message(0))), "never attached"
        pub.send_multipart(huge)
        assert out.wait_for('"frame": 7', 60)
        peak = peak_rss_mb(proc.pid)
        proc.send_signal(signal.SIGINT)
        _, err = proc.communicate(timeout=20)
    finally:
        proc.kill()
        pub.close(0)
    assert proc.returncode == 0 and "Traceback" not in err, err
    print(f"peak RSS {peak:.0f} MB")
    assert peak < 1000, f"peak RSS {peak:.0f} MB"
