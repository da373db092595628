"""Real servers and clients for the live tests, all on 127.0.0.1 with free ports.

``RtspRelay``: gst-rtsp-server (tests/support/rtsp_relay.py) under the system python3,
restartable on the same port. ``Camera``: tests/support/camera.py publishing to it.
``RtmpServer``: nginx with its RTMP module. ``StreamReader``: a PyAV reader
thread that reconnects and records every frame.
"""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import sys
import threading
import time
from functools import cache
from pathlib import Path

import av
import numpy as np

from tests.support.camera import latency_ms, now_millis, read_stamp, stamp_white_level, taken_since

HERE = Path(__file__).resolve().parent
SYSTEM_PYTHON = "/usr/bin/python3"
RELAY_CHECK = """
import gi
gi.require_version("Gst", "1.0"); gi.require_version("GstRtspServer", "1.0")
from gi.repository import Gst, GstRtspServer
Gst.init(None)
elements = ("rtph264depay", "rtph264pay", "h264parse", "appsrc", "appsink")
missing = [e for e in elements if not Gst.ElementFactory.find(e)]
assert not missing, missing
"""


def free_port(kind: int = socket.SOCK_STREAM) -> int:
    with socket.socket(socket.AF_INET, kind) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@cache
def relay_missing() -> str | None:
    """Why the RTSP relay cannot run here (None when it can)."""
    if not os.access(SYSTEM_PYTHON, os.X_OK):
        return f"{SYSTEM_PYTHON} not found"
    proc = subprocess.run([SYSTEM_PYTHON, "-c", RELAY_CHECK], capture_output=True, text=True, timeout=60)
    if proc.returncode != 0:
        return (
            "needs gir1.2-gst-rtsp-server-1.0, python3-gi, gstreamer1.0-plugins-{base,good,bad} "
            f"(.ci/run installs them): {proc.stderr.strip().splitlines()[-1] if proc.stderr.strip() else ''}"
        )
    return None


class Server:
    """A server process on 127.0.0.1 that tests can kill and bring back on the same port."""

    port: int

    def start(self) -> Server:
        raise NotImplementedError

    def stop(self) -> None:
        raise NotImplementedError

    def restart(self, down: float = 1.0) -> None:
        """Kill the server (every connection drops), stay down ``down`` seconds, listen again on the same port."""
        self.stop()
        time.sleep(down)
        for _ in range(20):  # the port may linger a moment
            try:
                self.start()
                return
            except RuntimeError:
                time.sleep(0.25)
        raise RuntimeError(f"{type(self).__name__} could not restart on port {self.port}")

    def __enter__(self):
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()


class RtspRelay(Server):
    """Publishers RECORD to ``/NAME-in``, readers PLAY ``/NAME`` — for each name given."""

    def __init__(self, *names: str):
        self.port = free_port()
        self.pairs = [f"/{name}-in=/{name}" for name in names]
        self._proc: subprocess.Popen | None = None

    def url(self, path: str) -> str:
        return f"rtsp://127.0.0.1:{self.port}/{path}"

    def start(self, timeout: float = 15) -> RtspRelay:
        self._proc = subprocess.Popen(
            [SYSTEM_PYTHON, str(HERE / "rtsp_relay.py"), str(self.port), *self.pairs],
            stdout=subprocess.PIPE,
            stderr=subprocess.DEVNULL,
            text=True,
        )
        deadline = time.monotonic() + timeout
        line = self._proc.stdout.readline()  # "ready" once it listens
        if line.strip() != "ready" or time.monotonic() > deadline:
            self.stop()
            raise RuntimeError(f"rtsp relay did not start on port {self.port}")
        return self

    def stop(self) -> None:
        if self._proc is not None:
            self._proc.kill()
            self._proc.wait(timeout=10)
            self._proc.stdout.close()
            self._proc = None


class Camera:
    """tests/support/camera.py publishing to ``url`` in a child process (it republishes after server restarts)."""

    def __init__(self, url: str, *, fps: int = 15, size: str = "320x192"):
        self.args = [sys.executable, str(HERE / "camera.py"), url, "--fps", str(fps), "--size", size]
        self._proc: subprocess.Popen | None = None

    def __enter__(self) -> Camera:
        self._proc = subprocess.Popen(self.args, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        return self

    def __exit__(self, *exc: object) -> None:
        self._proc.kill()
        self._proc.wait(timeout=10)


class StreamReader(threading.Thread):
    """Reads ``url`` with PyAV until stopped, reconnecting on errors; keeps arrival times and facts per frame."""

    def __init__(
        self,
        url: str,
        *,
        options: dict[str, str] | None = None,
        timeout: float = 3.0,
        keep_images: int = 3,
        read_stamps: bool = False,
    ):
        super().__init__(daemon=True)
        self.url = url
        self.options = options or {}
        self.timeout = timeout
        self.arrivals: list[float] = []  # time.monotonic() per decoded frame
        self.pts: list[list[int | None]] = []  # per connection, the pts of each frame
        self.sizes: set[tuple[int, int]] = set()
        self.images: list[np.ndarray] = []
        self.keep_images = keep_images
        self.on_frame = None  # optional callback(image) in the reader thread
        # with read_stamps, per frame: the capture stamp tests/support/camera.py drew (now_millis() then), ms from it
        # to its decoding here, and how white the stamp's white blocks still are (255 from the camera; an overlay
        # tints them)
        self.stamps: list[int] = []
        self.ages: list[int] = []
        self.whites: list[float] = []
        self.read_stamps = read_stamps
        self._halt = threading.Event()

    def run(self) -> None:
        while not self._halt.is_set():
            try:
                with av.open(self.url, options=self.options, timeout=self.timeout) as container:
                    self._read(container)
            except (av.FFmpegError, OSError):
                pass
            self._halt.wait(0.2)

    def _read(self, container) -> None:
        stream = container.streams.video[0]
        pts: list[int | None] = []
        self.pts.append(pts)
        for packet in container.demux(stream):
            if self._halt.is_set():
                return
            try:
                frames = packet.decode()
            except av.InvalidDataError:  # joined mid-GOP
                continue
            for frame in frames:
                self.arrivals.append(time.monotonic())
                pts.append(frame.pts)
                self.sizes.add((frame.width, frame.height))
                if len(self.images) < self.keep_images or self.on_frame is not None or self.read_stamps:
                    image = frame.to_ndarray(format="rgb24")
                    if self.read_stamps:
                        stamp = read_stamp(image)
                        self.stamps.append(stamp)
                        self.ages.append(latency_ms(stamp))
                        self.whites.append(stamp_white_level(image))
                    if len(self.images) < self.keep_images:
                        self.images.append(image)
                    if self.on_frame is not None:
                        self.on_frame(image)

    def frames_since(self, moment: float) -> int:
        return sum(1 for t in list(self.arrivals) if t >= moment)

    def wait_for_frames(self, count: int, *, since: float = 0.0, timeout: float = 20.0) -> bool:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.frames_since(since) >= count:
                return True
            time.sleep(0.1)
        return False

    def wait_for_pictures_taken_since(self, moment: int, *, timeout: float = 20.0) -> bool:
        """Wait for a decoded frame captured at or after ``moment`` (a ``now_millis()`` value), and not in the future:
        a stamp read wrong lands in that window about never."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            now = now_millis()
            if any(taken_since(stamp, moment) and taken_since(now, stamp) for stamp in list(self.stamps)):
                return True
            time.sleep(0.1)
        return False

    def stop(self) -> None:
        self._halt.set()
        self.join(timeout=self.timeout + 5)


RTMP_MODULE = Path("/usr/lib/nginx/modules/ngx_rtmp_module.so")
NGINX_CONF = """\
load_module {module};
daemon off;
master_process off;
worker_processes 1;
pid {folder}/nginx.pid;
error_log {folder}/error.log warn;
events {{ worker_connections 64; }}
rtmp {{
    server {{
        listen 127.0.0.1:{port};
        application live {{ live on; record off; }}
    }}
}}
"""


def rtmp_missing() -> str | None:
    """Why the RTMP server cannot run here (None when it can)."""
    if shutil.which("nginx") is None or not RTMP_MODULE.is_file():
        return "needs nginx-light and libnginx-mod-rtmp (.ci/run installs them)"
    return None


class RtmpServer(Server):
    """nginx with its RTMP module on 127.0.0.1: publishers and players meet at ``rtmp://…/live/NAME``."""

    def __init__(self, folder: Path):
        self.port = free_port()
        self.folder = folder
        self._proc: subprocess.Popen | None = None

    def url(self, name: str) -> str:
        return f"rtmp://127.0.0.1:{self.port}/live/{name}"

    def start(self, timeout: float = 10) -> RtmpServer:
        self.folder.mkdir(parents=True, exist_ok=True)
        conf = self.folder / "nginx.conf"
        conf.write_text(NGINX_CONF.format(module=RTMP_MODULE, folder=self.folder, port=self.port))
        self._proc = subprocess.Popen(
            ["nginx", "-p", str(self.folder), "-e", str(self.folder / "error.log"), "-c", str(conf)],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            with socket.socket() as s:
                if s.connect_ex(("127.0.0.1", self.port)) == 0:
                    return self
            if self._proc.poll() is not None:
                break
            time.sleep(0.05)
        self.stop()
        raise RuntimeError(f"nginx-rtmp did not start on port {self.port}")

    def stop(self) -> None:
        if self._proc is not None:
            self._proc.kill()
            self._proc.wait(timeout=10)
            self._proc = None
