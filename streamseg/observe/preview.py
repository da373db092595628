"""``--preview PORT``: a local page with the composited stream (MJPEG) and live stats.

A sink that keeps only the newest result. JPEG encoding and class counting
happen in the page's request threads, once per new frame, and only while
someone is watching; a slow viewer skips frames, it never slows the pipeline.
"""

from __future__ import annotations

import select
import socket
import threading
from typing import Any

import cv2
import numpy as np

from streamseg.frames import Result
from streamseg.observe.http import BackgroundServer, QuietHandler
from streamseg.observe.live import LiveStats
from streamseg.observe.page import PAGE

BOUNDARY = "streamseg-frame"
JPEG_QUALITY = 80
TOP_CLASSES = 8  # rows in the page's class distribution


class PreviewServer:
    """Serves ``/`` (the page), ``/stream.mjpg``, ``/frame.jpg`` and ``/stats.json``."""

    def __init__(self, pipeline: Any, port: int, classes: tuple[str, ...], colors: tuple[tuple[int, int, int], ...],
                 source: str, host: str = "127.0.0.1"):
        self.live = LiveStats(pipeline)
        self.classes = classes
        self.colors = [f"#{r:02x}{g:02x}{b:02x}" for r, g, b in colors]
        self.source = source
        self._latest: Result | None = None
        self._new_frame = threading.Condition()
        self._jpeg: tuple[int, bytes] = (-1, b"")  # (frame index, JPEG) of the newest encoded frame
        self._server = BackgroundServer("preview", "--preview", _PreviewHandler, self, port, host)
        self.closing = self._server.closing
        self.port, self.url = self._server.port, self._server.url

    # -- the sink side: per frame, only a reference and a wake-up -------------------------
    def write(self, result: Result) -> None:
        with self._new_frame:
            self._latest = result
            self._new_frame.notify_all()

    def close(self, complete: bool = True) -> None:
        self._server.close()  # sets ``closing`` first, so the woken streams end
        with self._new_frame:
            self._new_frame.notify_all()

    # -- the page side ---------------------------------------------------------------------
    def next_jpeg(self, after: int, timeout: float = 1.0) -> tuple[int, bytes] | None:
        """The JPEG of the first frame newer than index ``after``; None if none came within ``timeout``."""
        with self._new_frame:
            if not self._new_frame.wait_for(lambda: self._newer(after) or self.closing.is_set(), timeout):
                return None
            result = self._latest
        if result is None or not self._newer(after):
            return None
        index, jpeg = self._jpeg
        if index != result.index:  # first viewer to ask encodes it; the others reuse it
            bgr = cv2.cvtColor(result.picture, cv2.COLOR_RGB2BGR)
            jpeg = cv2.imencode(".jpg", bgr, [cv2.IMWRITE_JPEG_QUALITY, JPEG_QUALITY])[1].tobytes()
            self._jpeg = (result.index, jpeg)
        return result.index, jpeg

    def _newer(self, after: int) -> bool:
        return self._latest is not None and self._latest.index != after

    def stats(self) -> dict[str, Any]:
        s = self.live.read()
        latest = self._latest
        classes: list[dict[str, Any]] = []
        if latest is not None:
            counts = np.bincount(latest.labels.ravel(), minlength=len(self.classes))[: len(self.classes)]
            fractions = counts / max(1, latest.labels.size)
            for i in np.argsort(-fractions)[:TOP_CLASSES]:
                if fractions[i] > 0:
                    classes.append({"name": self.classes[i], "fraction": round(float(fractions[i]), 4),
                                    "color": self.colors[i]})
        return {
            "source": self.source, "state": s["state"], "fps": round(s["fps"], 3), "frames": s["frames_out"],
            "frame": latest.index if latest else None, "time": latest.time if latest else None,
            "latency_ms": round(latest.latency * 1000, 1) if latest else 0.0,
            "dropped": sum(q["dropped"] for q in s["queues"].values()), "classes": classes,
        }  # fmt: skip


class _PreviewHandler(QuietHandler):
    def do_GET(self) -> None:
        preview: PreviewServer = self.app
        path = self.path.split("?", 1)[0]
        if path in ("/", "/index.html"):
            self.send_body(PAGE.encode(), "text/html; charset=utf-8")
        elif path == "/stats.json":
            self.send_json(preview.stats())
        elif path == "/frame.jpg":
            frame = preview.next_jpeg(after=-1, timeout=5.0)
            if frame is None:
                self.send_json({"error": "no frame yet"}, 503)
            else:
                self.send_body(frame[1], "image/jpeg")
        elif path == "/stream.mjpg":
            self._stream(preview)
        else:
            self.send_json({"error": "not found"}, 404)

    def _stream(self, preview: PreviewServer) -> None:
        self.send_response(200)
        self.send_header("Content-Type", f"multipart/x-mixed-replace; boundary={BOUNDARY}")
        self.send_header("Cache-Control", "no-store")
        self.end_headers()
        shown = -1
        try:
            while not preview.closing.is_set():
                frame = preview.next_jpeg(after=shown)
                if frame is None:
                    if self._viewer_left():  # no frame to write, so no failed write tells: free the slot now
                        return
                    continue
                shown, jpeg = frame
                self.wfile.write(f"--{BOUNDARY}\r\nContent-Type: image/jpeg\r\nContent-Length: {len(jpeg)}\r\n\r\n"
                                 .encode() + jpeg + b"\r\n")
                self.wfile.flush()
        except OSError:  # the viewer left, or stopped reading for HANDLER_TIMEOUT seconds
            pass

    def _viewer_left(self) -> bool:
        """True when the viewer closed its end (readable, and a peek finds end of stream)."""
        try:
            readable, _, _ = select.select([self.connection], [], [], 0)
            return bool(readable) and self.connection.recv(1, socket.MSG_PEEK) == b""
        except OSError:
            return True
