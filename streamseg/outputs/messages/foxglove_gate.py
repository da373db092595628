"""A gate in front of foxglove-sdk's WebSocket server that refuses foreign Origins and Hosts.

foxglove-sdk 0.30 has no hook on the WebSocket handshake (its ``ServerListener`` sees subscriptions,
never headers), so the SDK's server listens on a random loopback address and port, and this gate on
the port the user asked for. It reads each connection's request head and answers 403 when the
``Origin`` is neither the server's own, a page served from this machine, nor one of ``--foxglove-origin``
(by default the Foxglove web app), or when a loopback server is named by a ``Host`` that is not the
loopback (DNS rebinding).
Otherwise it relays the connection's bytes both ways untouched: a slow viewer is a slow client of
the SDK, which drops its messages without slowing the pipeline.

What stays open: a process on this machine can read the SDK's own address (``/proc/net/tcp``) and
connect to it directly; such a process could send any Origin it likes anyway.
"""

from __future__ import annotations

import http.client
import io
import logging
import secrets
import socket
import threading
from collections.abc import Iterable

from streamseg.outputs.servers.access import is_loopback_origin, origin_allowed
from streamseg.outputs.servers.http import is_local_host, is_loopback

log = logging.getLogger(__name__)

MAX_HEAD = 16 * 1024  # bytes of a handshake's request line and headers
HEAD_TIMEOUT = 10.0  # seconds a client has to send them
MAX_CLIENTS = 32
CHUNK = 256 * 1024


def hidden_loopback() -> str:
    """A random address in 127.0.0.0/8 (Linux routes all of it to the loopback): no web page can guess it."""
    return f"127.{1 + secrets.randbelow(254)}.{secrets.randbelow(256)}.{1 + secrets.randbelow(254)}"


class OriginGate:
    """Listens on ``host:port`` (0: a free port; ``self.port`` says which), relays checked clients to ``upstream``."""

    def __init__(self, host: str, port: int, upstream: tuple[str, int], *, origins: Iterable[str] = ()):
        self.upstream = upstream
        self.origins = tuple(origins)
        self.local_only = is_loopback(host)
        self._listener = socket.create_server((host, port), family=_family(host), reuse_port=False)
        self.port = self._listener.getsockname()[1]
        self._slots = threading.BoundedSemaphore(MAX_CLIENTS)
        self._open: set[socket.socket] = set()
        self._lock = threading.Lock()
        self._closing = threading.Event()
        self._thread = threading.Thread(target=self._accept, name="streamseg-foxglove-gate", daemon=True)
        self._thread.start()

    def _accept(self) -> None:
        while not self._closing.is_set():
            try:
                client, _ = self._listener.accept()
            except OSError:
                return  # closed
            if not self._slots.acquire(blocking=False):
                _answer(client, 503, "too many connections")
                continue
            self._track(client)
            threading.Thread(target=self._serve, args=(client,), name="streamseg-foxglove-client", daemon=True).start()

    def _serve(self, client: socket.socket) -> None:
        upstream: socket.socket | None = None
        try:
            head = _read_head(client)
            if head is None:
                return
            refusal = self._refusal(head)
            if refusal is not None:
                log.warning("Foxglove server: refused a client: %s", refusal)
                _answer(client, 403, refusal)
                return
            upstream = socket.create_connection(self.upstream, timeout=5)
            self._track(upstream)
            client.settimeout(None)
            upstream.settimeout(None)
            upstream.sendall(head)
            back = threading.Thread(target=_pipe, args=(upstream, client), name="streamseg-foxglove-relay", daemon=True)
            back.start()
            _pipe(client, upstream)
            back.join()
        except OSError as err:
            log.debug("Foxglove gate: a connection ended: %s", err)
        finally:
            for sock in (client, upstream):
                if sock is not None:
                    self._untrack(sock)
            self._slots.release()

    def _refusal(self, head: bytes) -> str | None:
        """Why a handshake is refused, or None."""
        try:
            headers = http.client.parse_headers(io.BytesIO(head.split(b"\r\n", 1)[1]))
        except (IndexError, http.client.HTTPException):
            return "not an HTTP request"
        host = headers.get("Host")
        if self.local_only and not is_local_host(host):
            return f"Host {host!r} is not this machine's loopback (see --serve-host)"
        origin = headers.get("Origin")
        if not (origin_allowed(origin, host, self.origins) or is_loopback_origin(origin)):
            return f"Origin {headers.get('Origin')!r} is not allowed (--foxglove-origin)"
        return None

    def _track(self, sock: socket.socket) -> None:
        with self._lock:
            self._open.add(sock)

    def _untrack(self, sock: socket.socket) -> None:
        with self._lock:
            self._open.discard(sock)
        sock.close()

    def close(self) -> None:
        if self._closing.is_set():
            return
        self._closing.set()
        self._listener.close()
        with self._lock:
            for sock in self._open:
                try:
                    sock.shutdown(socket.SHUT_RDWR)
                except OSError:
                    pass
        self._thread.join(timeout=5)


def _family(host: str) -> socket.AddressFamily:
    return socket.AF_INET6 if ":" in host else socket.AF_INET


def _read_head(client: socket.socket) -> bytes | None:
    """The request line and headers (and whatever followed them), or None if they do not come whole in time."""
    client.settimeout(HEAD_TIMEOUT)
    data = b""
    while b"\r\n\r\n" not in data:
        if len(data) > MAX_HEAD:
            _answer(client, 431, "request head too large")
            return None
        chunk = client.recv(4096)
        if not chunk:
            return None
        data += chunk
    return data


def _answer(client: socket.socket, status: int, reason: str) -> None:
    body = (reason + "\n").encode()
    phrase = {403: "Forbidden", 431: "Request Header Fields Too Large", 503: "Service Unavailable"}[status]
    try:
        client.sendall(
            f"HTTP/1.1 {status} {phrase}\r\nContent-Type: text/plain\r\nContent-Length: {len(body)}\r\n"
            "Connection: close\r\n\r\n".encode()
            + body
        )
        client.shutdown(socket.SHUT_WR)
    except OSError:
        pass
    finally:
        client.close()


def _pipe(source: socket.socket, target: socket.socket) -> None:
    """Copy until ``source`` ends, then end ``target``'s writing side."""
    try:
        while chunk := source.recv(CHUNK):
            target.sendall(chunk)
    except OSError:
        pass
    finally:
        try:
            target.shutdown(socket.SHUT_WR)
        except OSError:
            pass
