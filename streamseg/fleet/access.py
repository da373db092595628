"""Who may change the fleet: a bearer token from a file only this user can read, as Jupyter does.

The token lives in ``$XDG_RUNTIME_DIR/streamseg/serve-PORT.token`` (else a ``streamseg-UID`` folder in the
temp dir), folder 0700, file 0600. Its path is printed, never the token. A request that changes state
(POST, DELETE) needs ``Authorization: Bearer TOKEN``, a JSON body type, and, when the browser sends an
``Origin``, the server's own. Reading (GET) stays open, as Prometheus exporters are.
"""

from __future__ import annotations

import hmac
import os
import secrets
import tempfile
from pathlib import Path
from typing import Any

from streamseg.errors import ConfigError


def token_folder() -> Path:
    runtime = os.environ.get("XDG_RUNTIME_DIR")
    if runtime and os.path.isdir(runtime):
        return Path(runtime) / "streamseg"
    return Path(tempfile.gettempdir()) / f"streamseg-{os.getuid()}"


class Access:
    """The token of one server; ``refusal(...)`` says why a request may not change state (None: it may)."""

    def __init__(self, port: int, folder: Path | None = None):
        folder = folder or token_folder()
        try:
            folder.mkdir(mode=0o700, parents=True, exist_ok=True)
            if folder.stat().st_uid != os.getuid() or folder.stat().st_mode & 0o077:
                raise ConfigError(f"{folder}: not a private folder of this user (mode 0700 expected)")
            self.path = folder / f"serve-{port}.token"
            self.token = secrets.token_urlsafe(32)
            descriptor = os.open(self.path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
            with os.fdopen(descriptor, "w") as file:
                file.write(self.token + "\n")
            os.chmod(self.path, 0o600)
        except OSError as err:
            raise ConfigError(f"cannot write the API token in {folder}: {err.strerror or err}") from None

    def refusal(self, method: str, headers: Any, own_origins: tuple[str, ...]) -> tuple[int, str] | None:
        """(status, why) when the request may not change state; None when it may."""
        given = headers.get("Authorization") or ""
        scheme, _, token = given.partition(" ")
        if scheme.lower() != "bearer" or not hmac.compare_digest(token.strip(), self.token):
            return 401, f"a token is needed: Authorization: Bearer $(cat {self.path})"
        origin = headers.get("Origin")
        if origin is not None and origin.rstrip("/") not in own_origins:
            return 403, "requests from another origin may not change the fleet"
        kind = (headers.get("Content-Type") or "").split(";")[0].strip().lower()
        if method == "POST" and kind != "application/json":
            return 415, "the body must be JSON (Content-Type: application/json)"
        return None

    def close(self) -> None:
        try:
            self.path.unlink()
        except OSError:
            pass
