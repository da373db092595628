"""A low-latency RTSP viewer on GStreamer (run with the system python3), for the latency benchmark.

    /usr/bin/python3 tests/support/gst_viewer.py rtsp://127.0.0.1:PORT/out

Prints "ARRIVAL_MS STAMP" per decoded frame: the wall clock (ms, mod 2**32) when
the picture was decoded, and the capture stamp that tests/support/camera.py drew into it.
rtph264depay hands on each access unit when its RTP marker bit arrives; FFmpeg's
RTSP demuxer instead waits for the next frame's first packet to find where a
frame ends, one frame interval later. Stops at end of stream or when killed.
"""

import sys
import time

import gi

gi.require_version("Gst", "1.0")
from gi.repository import Gst  # noqa: E402

BITS, BLOCK, ROWS = 32, 8, 2  # the stamp layout of tests/support/camera.py


def read_stamp(data: bytes, stride: int) -> int:
    """camera.read_stamp on a GRAY8 picture, in plain Python (the system python may lack numpy)."""
    per_row, value = BITS // ROWS, 0
    inner = range(2, BLOCK - 2)
    for bit in range(BITS):
        row, col = divmod(bit, per_row)
        y, x = row * BLOCK, col * 2 * BLOCK
        left = sum(data[(y + i) * stride + x + j] for i in inner for j in inner)
        right = sum(data[(y + i) * stride + x + BLOCK + j] for i in inner for j in inner)
        value = (value << 1) | int(left > right)
    return value


def on_sample(sink) -> Gst.FlowReturn:
    sample = sink.emit("pull-sample")
    arrival = int(time.time() * 1000) % 2**BITS
    width = sample.get_caps().get_structure(0).get_value("width")
    stride = (width + 3) // 4 * 4  # GStreamer pads GRAY8 rows to 4 bytes
    ok, info = sample.get_buffer().map(Gst.MapFlags.READ)
    if ok:
        try:
            print(arrival, read_stamp(info.data, stride), flush=True)
        finally:
            sample.get_buffer().unmap(info)
    return Gst.FlowReturn.OK


def main(url: str) -> None:
    Gst.init(None)
    pipeline = Gst.parse_launch(
        f"rtspsrc location={url} protocols=tcp latency=0 ! rtph264depay ! h264parse ! openh264dec "
        "! videoconvert ! video/x-raw,format=GRAY8 "
        "! appsink name=sink emit-signals=true sync=false max-buffers=2 drop=true"
    )
    pipeline.get_by_name("sink").connect("new-sample", on_sample)
    pipeline.set_state(Gst.State.PLAYING)
    bus = pipeline.get_bus()
    bus.timed_pop_filtered(Gst.CLOCK_TIME_NONE, Gst.MessageType.EOS | Gst.MessageType.ERROR)
    pipeline.set_state(Gst.State.NULL)


if __name__ == "__main__":
    try:
        main(sys.argv[1])
    except KeyboardInterrupt:
        pass
