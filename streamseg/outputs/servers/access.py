"""Who may change a local server's state: a bearer token, JSON bodies, and the server's own Origin only.

The rules of Jupyter's local server. A run makes a token of 32 random bytes and writes it to a 0600
file in a 0700 folder of the user's own (``$XDG_RUNTIME_DIR/streamseg``, else ``streamseg-UID`` in the
temp folder); only the file's path is ever printed. A request that changes state (any method but
GET/HEAD) must carry ``Authorization: Bearer TOKEN``, a ``Content-Type: application/json`` body when it
has one, and no ``Origin`` but the server's own: a web page can then neither send it without a
preflight nor read the token. Read-only pages (``/metrics``, ``/health``) stay open, as Prometheus
exporters are.

Any control server uses it the same way::

    rules = AccessRules("on", ApiToken.create())
    refusal = rules.refuse(method, headers)  # None, or the status and reason to answer with
    body = parse_json_body(raw)  # ValueError (answer 400) for bad JSON, deep nesting, non-finite numbers
"""

from __future__ import annotations

import hmac
import json
import logging
import math
import os
import re
import secrets
import stat
import tempfile
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from email.message import Message
from pathlib import Path
from typing import Any, Literal
from urllib.parse import urlsplit

from streamseg.errors import ConfigError
from streamseg.outputs.servers.http import is_loopback

log = logging.getLogger(__name__)

ApiMode = Literal["off", "read-only", "on"]
TOKEN_BYTES = 32
MAX_DEPTH = 16  # nesting of a JSON body: a source entry needs 3
READ_METHODS = ("GET", "HEAD")
_STRINGS = re.compile(rb'"(?:[^"\\]|\\.)*"', re.DOTALL)


@dataclass(frozen=True)
class Refusal:
    """Why a request is refused: the HTTP status and a one-line reason (never the token)."""

    status: int
    reason: str

    @property
    def headers(self) -> dict[str, str]:
        """Headers its answer carries: a 401 names the scheme it wants (RFC 6750)."""
        return {"WWW-Authenticate": 'Bearer realm="streamseg"'} if self.status == 401 else {}


class ApiToken:
    """A bearer token and the file it is kept in; a token this run made is deleted by ``close()``."""

    def __init__(self, value: str, path: Path, *, owned: bool):
        self.value, self.path, self._owned = value, path, owned

    @classmethod
    def create(cls, folder: Path | None = None) -> ApiToken:
        """A new token in a new 0600 file in ``folder`` (default: ``runtime_dir()``)."""
        folder = folder or runtime_dir()
        value = secrets.token_urlsafe(TOKEN_BYTES)
        path = folder / f"api-{os.getpid()}-{secrets.token_hex(4)}.token"
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_NOFOLLOW", 0), 0o600)
        with os.fdopen(fd, "w") as file:
            file.write(value + "\n")
        return cls(value, path, owned=True)

    @classmethod
    def from_file(cls, path: str | Path) -> ApiToken:
        """The caller's own token (``--api-token-file``): the file's first line, at least 16 characters."""
        path = Path(path)
        try:
            value = path.read_text(encoding="utf-8").strip()
            mode = path.stat().st_mode
        except (OSError, UnicodeDecodeError) as err:
            raise ConfigError(
                f"--api-token-file {path}: cannot read it: {getattr(err, 'strerror', None) or err}"
            ) from None
        if len(value) < 16 or any(c.isspace() for c in value):
            raise ConfigError(f"--api-token-file {path}: needs one token of at least 16 characters, no spaces")
        if mode & (stat.S_IRGRP | stat.S_IROTH):
            log.warning("--api-token-file %s: other users can read it (chmod 600 it)", path)
        return cls(value, path, owned=False)

    def matches(self, header: str | None) -> bool:
        """Whether an ``Authorization`` header carries this token (compared in constant time)."""
        scheme, _, presented = (header or "").strip().partition(" ")
        if scheme.lower() != "bearer":
            return False
        return hmac.compare_digest(presented.strip().encode(), self.value.encode())

    def close(self) -> None:
        if self._owned:
            self.path.unlink(missing_ok=True)
            self._owned = False


def runtime_dir() -> Path:
    """A 0700 folder of this user's own for token files; refused if someone else made it or can enter it."""
    base = os.environ.get("XDG_RUNTIME_DIR")
    folder = (
        Path(base) / "streamseg"
        if base and os.path.isdir(base)
        else Path(tempfile.gettempdir()) / f"streamseg-{_uid()}"
    )
    try:
        folder.mkdir(mode=0o700, exist_ok=True)
        info = os.lstat(folder)
    except OSError as err:
        raise ConfigError(f"cannot make the folder for the API token {folder}: {err.strerror or err}") from None
    if not stat.S_ISDIR(info.st_mode) or (hasattr(os, "getuid") and info.st_uid != _uid()):
        raise ConfigError(f"{folder} is not a folder of this user's own: remove it, or give --api-token-file")
    if info.st_mode & 0o077:
        os.chmod(folder, 0o700)
    return folder


def _uid() -> int:
    return os.getuid() if hasattr(os, "getuid") else 0


class AccessRules:
    """What a server's ``mode`` lets through, and which changes its ``token`` allows.

    ``origins``: web pages besides the server's own that may send changes (full origins, e.g.
    ``https://example.com``); none by default.
    """

    def __init__(self, mode: ApiMode, token: ApiToken | None, *, origins: Iterable[str] = ()):
        if mode == "on" and token is None:
            raise ValueError("--api on needs a token")
        self.mode, self.token, self.origins = mode, token, tuple(origins)

    def refuse(self, method: str, headers: Mapping[str, str] | Message) -> Refusal | None:
        """None if the request may go on, else the answer to give it (``headers``: a handler's, or a mapping)."""
        if method.upper() in READ_METHODS:
            return Refusal(404, "the sources API is off (--api off)") if self.mode == "off" else None
        if self.mode != "on":
            return Refusal(403, f"this server does not take changes (--api {self.mode})")
        if not origin_allowed(headers.get("Origin"), headers.get("Host"), self.origins):
            return Refusal(403, "requests from another web page's origin are refused")
        assert self.token is not None, "checked in __init__"
        if not self.token.matches(headers.get("Authorization")):
            return Refusal(401, "needs Authorization: Bearer TOKEN (the token file's path is in the start-up lines)")
        length = headers.get("Content-Length")
        has_body = method.upper() in ("POST", "PUT", "PATCH") or (length not in (None, "", "0"))
        if has_body and not is_json(headers.get("Content-Type")):
            return Refusal(403, "needs Content-Type: application/json")
        return None


def is_json(content_type: str | None) -> bool:
    return (content_type or "").split(";", 1)[0].strip().lower() == "application/json"


def origin_allowed(origin: str | None, host: str | None, allowed: Iterable[str] = ()) -> bool:
    """Whether a request's ``Origin`` is the server's own (the ``Host`` it was sent to) or one of ``allowed``.

    No ``Origin`` at all is not a web page (curl, scripts, Prometheus): allowed. ``null`` (a sandboxed
    page, a file) is refused.
    """
    if origin is None:
        return True
    origin = origin.strip().lower()
    if origin in (o.strip().lower().rstrip("/") for o in allowed):
        return True
    try:
        parts = urlsplit(origin)
    except ValueError:
        return False
    if parts.scheme not in ("http", "https") or not parts.netloc or host is None:
        return False
    return parts.netloc == host.strip().lower()


def is_loopback_origin(origin: str | None) -> bool:
    """Whether ``Origin`` is a page served from this machine (``http://127.0.0.1:8000``, ``http://localhost``)."""
    try:
        host = urlsplit((origin or "").strip()).hostname
    except ValueError:
        return False
    return host is not None and is_loopback(host)


def parse_json_body(raw: bytes, max_depth: int = MAX_DEPTH) -> Any:
    """A request body as JSON; ValueError naming the fault for bad UTF-8 or JSON, deep nesting, NaN or infinity."""
    depth = deepest = 0
    for byte in _STRINGS.sub(b'""', raw):  # brackets inside strings do not nest
        if byte in b"[{":
            depth += 1
            deepest = max(deepest, depth)
            if deepest > max_depth:
                raise ValueError(f"JSON nested deeper than {max_depth} levels")
        elif byte in b"]}":
            depth -= 1
    try:
        return json.loads(raw.decode("utf-8"), parse_constant=_no_constant, parse_float=_finite)
    except RecursionError:  # not reached past the depth check; kept so a deep body can never drop the connection
        raise ValueError(f"JSON nested deeper than {max_depth} levels") from None


def _no_constant(name: str) -> float:
    raise ValueError(f"{name} is not a number JSON allows")


def _finite(text: str) -> float:
    value = float(text)
    if not math.isfinite(value):
        raise ValueError(f"number {text[:40]} is out of range")
    return value
