"""A small threaded HTTP server on a local port, run in the background.

Hardened for a hostile network: each connection has a socket timeout, at most
``MAX_CLIENTS`` are served at once (the rest get a quick 503), and a server
bound to a loopback address answers only requests whose ``Host`` names the
loopback (DNS rebinding cannot reach it from a web page). A few quick pages
(``always``: ``/health``) are answered even when every slot is taken: the
accepting thread serves them itself when their whole request is already there.
"""

from __future__ import annotations

import ipaddress
import json
import logging
import socket
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from streamseg.errors import SinkError

log = logging.getLogger(__name__)

HANDLER_TIMEOUT = 10.0  # seconds a connection may sit without sending or taking data
MAX_CLIENTS = 32  # connections served at once, MJPEG streams included
INLINE_TIMEOUT = 0.5  # seconds the accepting thread gives an always-answered request to take its answer
LOCAL_HOSTS = ("localhost", "127.0.0.1", "::1")
BUSY = (
    b"HTTP/1.1 503 Service Unavailable\r\nContent-Type: text/plain\r\nContent-Length: 21\r\n"
    b"Retry-After: 1\r\nConnection: close\r\n\r\ntoo many connections\n"
)


class QuietHandler(BaseHTTPRequestHandler):
    """Request handler that logs at debug level instead of printing each request."""

    server: BackgroundServer.HTTPServer

    def setup(self) -> None:
        # StreamRequestHandler applies it to the socket; typeshed calls it a class variable, it is read per instance
        self.timeout = INLINE_TIMEOUT if self.server.inline.active else self.server.handler_timeout  # type: ignore[misc]
        super().setup()

    def handle(self) -> None:
        if self.server.inline.active:  # on the accepting thread: one request, then close
            self.close_connection = True
            self.handle_one_request()
        else:
            super().handle()

    def parse_request(self) -> bool:
        if not super().parse_request():
            return False
        if self.server.local_only and not is_local_host(self.headers.get("Host")):
            self.close_connection = True
            self.send_json({"error": "this server answers only for localhost (see --serve-host)"}, 403)
            return False
        return True

    @property
    def app(self) -> Any:
        """The object this server serves (a ``MetricsServer``, a ``PreviewServer``)."""
        return self.server.app

    def log_message(self, format: str, *args: Any) -> None:
        log.debug("%s: " + format, self.server.name, *args)

    def send_body(
        self, body: bytes, content_type: str, status: int = 200, headers: dict[str, str] | None = None
    ) -> None:
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(body)))
        self.send_header("Cache-Control", "no-store")
        for key, value in (headers or {}).items():
            self.send_header(key, value)
        self.end_headers()
        self.wfile.write(body)

    def send_json(self, data: Any, status: int = 200, headers: dict[str, str] | None = None) -> None:
        self.send_body(json.dumps(data).encode(), "application/json", status, headers)

    def refused_by(self, rules: Any) -> bool:
        """Answer the refusal when ``rules`` (an ``access.AccessRules``) refuse this request; True if answered."""
        refusal = rules.refuse(self.command, self.headers)
        if refusal is None:
            return False
        self.close_connection = True  # its body, if any, is not read
        self.send_json({"error": refusal.reason}, refusal.status, headers=refusal.headers)
        return True


def is_local_host(header: str | None) -> bool:
    """True for a ``Host`` header naming the loopback (any port), or none at all (not a browser)."""
    if header is None:
        return True
    host = header.strip().lower()
    if host.startswith("["):  # [::1]:8080
        host = host[1 : host.find("]")] if "]" in host else host
    elif host.count(":") == 1:
        host = host.split(":", 1)[0]
    return host in LOCAL_HOSTS


def is_loopback(host: str) -> bool:
    try:
        return host == "localhost" or ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


class _Inline(threading.local):
    active = False  # True on the accepting thread while it serves an always-answered page itself


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
        handler_timeout: float
        local_only: bool
        slots: threading.BoundedSemaphore
        always: tuple[bytes, ...]  # request lines answered even when the slots are full
        inline: _Inline

        def process_request(self, request, client_address) -> None:
            if not self.slots.acquire(blocking=False):
                if not self._answer_inline(request, client_address):
                    self._refuse(request)
                return
            try:
                super().process_request(request, client_address)
            except BaseException:
                self.slots.release()
                raise

        def process_request_thread(self, request, client_address) -> None:
            try:
                super().process_request_thread(request, client_address)
            finally:
                self.slots.release()

        def _answer_inline(self, request: socket.socket, client_address) -> bool:
            """Serve an ``always`` page on this thread if its whole request has arrived; False if not one."""
            if not self.always:
                return False
            try:
                request.settimeout(0.05)
                head = request.recv(8192, socket.MSG_PEEK)
            except OSError:
                return False
            if b"\r\n\r\n" not in head or not head.startswith(self.always):
                return False
            self.inline.active = True
            try:
                self.finish_request(request, client_address)
            except Exception:
                self.handle_error(request, client_address)
            finally:
                self.inline.active = False
                self.shutdown_request(request)
            return True

        def _refuse(self, request: socket.socket) -> None:
            """Answer 503 from the accepting thread, without waiting on the client: no thread, no slot."""
            try:
                request.settimeout(0.05)
                try:
                    request.recv(65536)  # take the request if it is there, so closing does not reset the reply
                except OSError:
                    pass
                request.sendall(BUSY)
                request.shutdown(socket.SHUT_WR)
            except OSError:
                pass
            finally:
                request.close()

        def handle_error(self, request, client_address) -> None:
            log.debug("%s: connection from %s failed", self.name, client_address, exc_info=True)  # noqa: LOG014 - called from an except

    def __init__(
        self,
        name: str,
        flag: str,
        handler: type[QuietHandler],
        app: Any,
        port: int,
        host: str = "127.0.0.1",
        *,
        timeout: float | None = None,
        max_clients: int | None = None,
        always: tuple[str, ...] = (),
    ):
        self.name = name
        self.closing = threading.Event()  # long-lived responses (MJPEG) end when it is set
        try:
            self._server = self.HTTPServer((host, port), handler)
        except OSError as err:
            raise SinkError(f"{flag} {port}: cannot listen on {host}:{port}: {err.strerror or err}") from None
        server = self._server
        server.name, server.app = name, app
        server.handler_timeout = HANDLER_TIMEOUT if timeout is None else timeout
        server.slots = threading.BoundedSemaphore(MAX_CLIENTS if max_clients is None else max_clients)
        server.local_only = is_loopback(host)  # --serve-host 0.0.0.0 (or a LAN address) accepts any Host
        server.always = tuple(f"GET {path}{end}".encode() for path in always for end in (" ", "?"))
        server.inline = _Inline()
        self.host, self.port = host, server.server_address[1]
        self._thread = threading.Thread(
            target=server.serve_forever, kwargs={"poll_interval": 0.2}, name=f"streamseg-{name}", daemon=True
        )
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
