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
from urllib.parse import parse_qs

import cv2
import numpy as np

from streamseg.frames import Result
from streamseg.outputs.servers.http import BackgroundServer, QuietHandler
from streamseg.outputs.servers.live import LiveStats
from streamseg.outputs.servers.page import PAGE

BOUNDARY = "streamseg-frame"
JPEG_QUALITY = 80
TOP_CLASSES = 8  # rows in the page's class distribution


class PreviewServer:
    """Serves ``/`` (the page), ``/stream.mjpg``, ``/frame.jpg``, ``/stats.json`` and ``/sources.json``.

    Every path takes ``?source=NAME``; without it, the first source that produced a frame.
    """

    def __init__(
        self,
        pipeline: Any,
        port: int,
        classes: tuple[str, ...],
        colors: tuple[tuple[int, int, int], ...],
        host: str = "127.0.0.1",
    ):
        self.pipeline = pipeline
        self.live = LiveStats(pipeline)
        self.classes = classes
        self.colors = [f"#{r:02x}{g:02x}{b:02x}" for r, g, b in colors]
        self._latest: dict[str, Result] = {}  # source name -> its newest result
        self._new_frame = threading.Condition()
        self._jpeg: dict[str, tuple[int, bytes]] = {}  # source -> (frame index, JPEG) of its newest encoded frame
        self._server = BackgroundServer("preview", "--preview", _PreviewHandler, self, port, host)
        self.closing = self._server.closing
        self.port, self.url = self._server.port, self._server.url

    # -- the sink side: per frame, only a reference and a wake-up -------------------------
    def write(self, result: Result) -> None:
        with self._new_frame:
            self._latest[result.source] = result
            self._new_frame.notify_all()

    def close(self, complete: bool = True) -> None:
        self._server.close()  # sets ``closing`` first, so the woken streams end
        with self._new_frame:
            self._new_frame.notify_all()

    # -- the page side ---------------------------------------------------------------------
    def sources(self) -> list[str]:
        with self._new_frame:
            return list(self._latest)

    def pick(self, source: str | None) -> str | None:
        """The source asked for, else the first that produced a frame."""
        if source:
            return source
        names = self.sources()
        return names[0] if names else None

    def next_jpeg(self, source: str | None, after: int, timeout: float = 1.0) -> tuple[int, bytes] | None:
        """The JPEG of ``source``'s first frame newer than index ``after``; None if none came within ``timeout``."""
        with self._new_frame:
            newer = lambda: self._newer(self.pick(source), after)  # noqa: E731
            if not self._new_frame.wait_for(lambda: newer() or self.closing.is_set(), timeout):
                return None
            name = self.pick(source)
            result = self._latest.get(name) if name else None
        if not name or result is None or not self._newer(name, after):
            return None
        index, jpeg = self._jpeg.get(name, (-1, b""))
        if index != result.index:  # first viewer to ask encodes it; the others reuse it
            bgr = cv2.cvtColor(result.picture, cv2.COLOR_RGB2BGR)
            jpeg = cv2.imencode(".jpg", bgr, [cv2.IMWRITE_JPEG_QUALITY, JPEG_QUALITY])[1].tobytes()
            self._jpeg[name] = (result.index, jpeg)
        return result.index, jpeg

    def _newer(self, source: str | None, after: int) -> bool:
        latest = self._latest.get(source) if source else None
        return latest is not None and latest.index != after

    def stats(self, source: str | None = None) -> dict[str, Any]:
        s = self.live.read()
        name = self.pick(source)
        latest = self._latest.get(name) if name else None
        classes: list[dict[str, Any]] = []
        if latest is not None:
            counts = np.bincount(latest.labels.ravel(), minlength=len(self.classes))[: len(self.classes)]
            fractions = counts / max(1, latest.labels.size)
            for i in np.argsort(-fractions)[:TOP_CLASSES]:
                if fractions[i] > 0:
                    classes.append(
                        {"name": self.classes[i], "fraction": round(float(fractions[i]), 4), "color": self.colors[i]}
                    )
        one = s["sources"].get(name, {}) if name else {}
        return {
            "source": one.get("uri", name or ""), "name": name, "sources": list(s["sources"]),
            "state": one.get("state", s["state"]), "fps": round(one.get("fps", s["fps"]), 3),
            "frames": one.get("frames_out", s["frames_out"]),
            "frame": latest.index if latest else None, "time": latest.time if latest else None,
            "latency_ms": round(latest.latency * 1000, 1) if latest else 0.0,
            "dropped": one.get("dropped", sum(q["dropped"] for q in s["queues"].values())), "classes": classes,
            "regions": self.regions(name),
        }  # fmt: skip

    def regions(self, source: str | None) -> list[dict[str, Any]]:
        """The source's regions (normalized points) and whether each has an event on, for the page to draw."""
        bus = getattr(self.pipeline, "events", None)
        if bus is None or source is None:
            return []
        on = bus.active(source)
        return [
            {"name": r.name, "points": [list(p) for p in r.points], "active": r.name in on}
            for r in bus.regions.get(source, ())
        ]


class _PreviewHandler(QuietHandler):
    def do_GET(self) -> None:
        preview: PreviewServer = self.app
        path, _, query = self.path.partition("?")
        source = parse_qs(query).get("source", [None])[0]
        if path in ("/", "/index.html"):
            self.send_body(PAGE.encode(), "text/html; charset=utf-8")
        elif path == "/stats.json":
            self.send_json(preview.stats(source))
        elif path == "/sources.json":
            self.send_json(preview.sources())
        elif path == "/frame.jpg":
            frame = preview.next_jpeg(source, after=-1, timeout=5.0)
            if frame is None:
                self.send_json({"error": "no frame yet"}, 503)
            else:
                self.send_body(frame[1], "image/jpeg")
        elif path == "/stream.mjpg":
            self._stream(preview, source)
        else:
            self.send_json({"error": "not found"}, 404)

    def _stream(self, preview: PreviewServer, source: str | None) -> None:
        self.send_response(200)
        self.send_header("Content-Type", f"multipart/x-mixed-replace; boundary={BOUNDARY}")
        self.send_header("Cache-Control", "no-store")
        self.end_headers()
        shown = -1
        try:
            while not preview.closing.is_set():
                frame = preview.next_jpeg(source, after=shown)
                if frame is None:
                    if self._viewer_left():  # no frame to write, so no failed write tells: free the slot now
                        return
                    continue
                shown, jpeg = frame
                self.wfile.write(
                    f"--{BOUNDARY}\r\nContent-Type: image/jpeg\r\nContent-Length: {len(jpeg)}\r\n\r\n".encode()
                    + jpeg
                    + b"\r\n"
                )
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
