"""A small threaded HTTP server on a local port, run in the background."""

from __future__ import annotations

import json
import logging
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from streamseg.errors import SinkError

log = logging.getLogger(__name__)


class QuietHandler(BaseHTTPRequestHandler):
    """Request handler that logs at debug level instead of printing each request."""

    server: BackgroundServer.HTTPServer  # type: ignore[name-defined]

    @property
    def app(self) -> Any:
        """The object this server serves (a ``MetricsServer``, a ``PreviewServer``)."""
        return self.server.app

    def log_message(self, format: str, *args: Any) -> None:
        log.debug("%s: " + format, self.server.name, *args)

    def send_body(self, body: bytes, content_type: str, status: int = 200) -> None:
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(body)))
        self.send_header("Cache-Control", "no-store")
        self.end_headers()
        self.wfile.write(body)

    def send_json(self, data: Any, status: int = 200) -> None:
        self.send_body(json.dumps(data).encode(), "application/json", status)


class BackgroundServer:
    """Serves ``handler`` for ``app`` on ``host:port`` from a daemon thread until ``close()``.

    ``port=0`` picks a free port; ``self.port`` tells which. Binds 127.0.0.1
    unless told otherwise: these pages are for the machine they run on.
    """

    class HTTPServer(ThreadingHTTPServer):
        daemon_threads = True
        allow_reuse_address = True
        name: str
        app: Any

    def __init__(self, name: str, flag: str, handler: type[QuietHandler], app: Any, port: int,
                 host: str = "127.0.0.1"):
        self.name = name
        self.closing = threading.Event()  # long-lived responses (MJPEG) end when it is set
        try:
            self._server = self.HTTPServer((host, port), handler)
        except OSError as err:
            raise SinkError(f"{flag} {port}: cannot listen on {host}:{port}: {err.strerror or err}") from None
        self._server.name, self._server.app = name, app
        self.host, self.port = host, self._server.server_address[1]
        self._thread = threading.Thread(target=self._server.serve_forever, kwargs={"poll_interval": 0.2},
                                        name=f"streamseg-{name}", daemon=True)
        self._thread.start()
        log.info("%s at %s", name, self.url)

    @property
    def url(self) -> str:
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"http://{host}:{self.port}/"

    def close(self) -> None:
        if self.closing.is_set():
            return
        self.closing.set()
        self._server.shutdown()
        self._server.server_close()
        self._thread.join()
