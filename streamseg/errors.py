"""One exception root for streamseg.

Subclasses also inherit the builtin they resemble, so callers can catch either
(as PyAV does: its end-of-file error is also an ``EOFError``). The CLI turns any
``StreamsegError`` into one line on stderr and a non-zero exit.
"""

from __future__ import annotations


class StreamsegError(Exception):
    """Base class of every error streamseg raises on purpose."""

    exit_code = 2


class ConfigError(StreamsegError, ValueError):
    """A config file, spec or option is invalid; the message names the bad key."""


class ModelError(StreamsegError, ValueError):
    """A model is unknown, or its ONNX does not match its spec."""


class SourceError(StreamsegError, OSError):
    """An input cannot be opened or decoded."""


class SinkError(StreamsegError, OSError):
    """An output cannot be opened or written."""


class BackendError(StreamsegError, RuntimeError):
    """An inference backend is unavailable or failed."""


class DownloadError(StreamsegError, OSError):
    """A download failed, or its checksum did not match."""


class MissingExtraError(StreamsegError, ImportError):
    """An optional dependency is missing; the message says what to install."""

    def __init__(self, what: str, extra: str, package: str | None = None):
        hint = f'pip install "streamseg[{extra}]"' if package is None else f"pip install {package}"
        super().__init__(f"{what} needs {package or 'the ' + extra + ' extra'}: {hint}")
