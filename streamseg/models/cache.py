"""Cache folders only this user can write, and cached files re-checked against their pinned sha256.

An engine or a model loaded from a cache runs as code and weights with the
user's rights, so a cache that someone else can write is refused, not
trusted: folders are created 0700 and must stay owned by the user, with no
group or other write bit. A zoo file is re-hashed at load unless a small
record beside it (``NAME.sha256.json``: size, mtime, sha256) says that this
exact file was verified already.
"""

from __future__ import annotations

import json
import os
import stat
import tempfile
from pathlib import Path

from streamseg.errors import ConfigError, ModelError


def private_dir(folder: str | Path, *, create: bool = True) -> Path:
    """``folder``, created 0700 when missing; refused when another user owns it or others may write it."""
    folder = Path(folder)
    if create and not folder.is_dir():
        try:
            folder.mkdir(mode=0o700, parents=True, exist_ok=True)
        except OSError as err:
            raise ConfigError(f"cannot create cache folder {folder}: {err.strerror or err}") from None
    if folder.is_dir():
        check_private(folder)
    return folder


def check_private(folder: Path) -> None:
    info = folder.stat()  # the folder a symlink points at is the one that matters
    if info.st_uid != os.getuid():
        raise ConfigError(
            f"cache folder {folder} belongs to uid {info.st_uid}, not to you (uid {os.getuid()}): "
            "refusing to load from it (set STREAMSEG_CACHE to a folder of yours)"
        )
    if info.st_mode & (stat.S_IWGRP | stat.S_IWOTH):
        raise ConfigError(
            f"cache folder {folder} is writable by others (mode {stat.S_IMODE(info.st_mode):04o}): "
            f"refusing to load from it (chmod 700 {folder})"
        )


def verified_record(path: Path) -> Path:
    return path.with_name(path.name + ".sha256.json")


def check_pinned(path: Path, sha256: str, hash_file) -> None:
    """Refuse ``path`` unless its bytes hash to ``sha256``; re-hashed only when its size or mtime changed."""
    info = path.stat()
    stamp = {"size": info.st_size, "mtime_ns": info.st_mtime_ns, "sha256": sha256}
    record = verified_record(path)
    try:
        if json.loads(record.read_text()) == stamp:
            return
    except (OSError, ValueError):
        pass  # no record yet, or an unreadable one: hash the file
    actual = hash_file(path)
    if actual != sha256:
        raise ModelError(
            f"{path} does not match its pinned sha256 (has {actual[:12]}…, expected {sha256[:12]}…): "
            "delete it and fetch it again"
        )
    record_verified(path, sha256)


def record_verified(path: Path, sha256: str) -> None:
    """Note beside ``path`` that its current bytes (by size and mtime) hash to ``sha256``."""
    info = path.stat()
    stamp = {"size": info.st_size, "mtime_ns": info.st_mtime_ns, "sha256": sha256}
    write_atomic(verified_record(path), json.dumps(stamp).encode())


def write_atomic(path: Path, data: bytes) -> None:
    """Write to a unique temporary file beside ``path``, then rename it into place."""
    fd, tmp = tempfile.mkstemp(prefix=path.name + ".", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
