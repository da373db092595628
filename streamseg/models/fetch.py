"""Checksum-pinned downloads of zoo files into the user cache."""

from __future__ import annotations

import hashlib
import os
import tempfile
import urllib.error
import urllib.request
from pathlib import Path

from streamseg.errors import DownloadError
from streamseg.models.cache import private_dir, record_verified
from streamseg.models.spec import ModelSource


def cache_dir() -> Path:
    """``$STREAMSEG_CACHE``, else ``$XDG_CACHE_HOME/streamseg``, else ``~/.cache/streamseg``."""
    explicit = os.environ.get("STREAMSEG_CACHE")
    if explicit:
        return Path(explicit)
    base = os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache"
    return Path(base) / "streamseg"


def cache_folder(name: str, *, create: bool = True) -> Path:
    """``cache_dir() / name`` (``models``, ``engines``), both levels private to this user (see ``models.cache``)."""
    private_dir(cache_dir(), create=create)
    return private_dir(cache_dir() / name, create=create)


def cached_path(source: ModelSource) -> Path:
    return cache_dir() / "models" / source.url.rsplit("/", 1)[-1]


def sha256_of(path: str | Path, chunk: int = 1 << 20) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        while block := f.read(chunk):
            digest.update(block)
    return digest.hexdigest()


def fetch(source: ModelSource, *, progress=None, timeout: float = 30.0) -> Path:
    """The cached file for ``source``, downloading and verifying it first if needed."""
    target = cached_path(source)
    cache_folder("models")
    if target.exists() and sha256_of(target) == source.sha256:
        return target
    # a unique temporary name in the same folder: two fetches at once never write into one file
    fd, name = tempfile.mkstemp(prefix=target.name + ".", suffix=".part", dir=target.parent)
    partial = Path(name)
    try:
        with urllib.request.urlopen(source.url, timeout=timeout) as response, os.fdopen(fd, "wb") as out:
            total = int(response.headers.get("Content-Length") or 0) or source.size
            if progress is not None:
                progress.reset(total=total)
            while block := response.read(1 << 20):
                out.write(block)
                if progress is not None:
                    progress.update(len(block))
    except (urllib.error.URLError, OSError) as err:
        partial.unlink(missing_ok=True)
        reason = getattr(err, "reason", None) or getattr(err, "strerror", None) or err
        raise DownloadError(f"cannot download {source.url}: {reason} (offline? see README: working offline)") from None
    except BaseException:
        partial.unlink(missing_ok=True)
        raise
    actual = sha256_of(partial)
    if actual != source.sha256:
        partial.unlink(missing_ok=True)
        raise DownloadError(f"{source.url}: sha256 {actual} does not match the pinned {source.sha256}")
    partial.chmod(0o644)  # mkstemp made it 0600; a downloaded model is no secret
    partial.replace(target)
    record_verified(target, source.sha256)  # a load re-hashes it only if it changes
    return target
