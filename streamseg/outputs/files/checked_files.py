"""The files a muxer opens besides its main output (HLS segments and playlists), opened here.

FFmpeg's HLS muxer writes its segments through I/O contexts of its own and does not
report their write errors: a full disk leaves truncated segments and a run that
"succeeds". Opened through PyAV's ``io_open`` as Python files instead, every failed
write raises SinkError naming the file, out of ``mux()``.
"""

from __future__ import annotations

from streamseg.errors import SinkError

AVIO_FLAG_WRITE = 2


class CheckedFile:
    """A binary file whose write failures raise SinkError with its path."""

    def __init__(self, path: str, mode: str):
        self.path = path
        try:
            self._file = open(path, mode)  # noqa: SIM115 - FFmpeg closes it through close()
        except OSError as err:
            raise SinkError(f"cannot write {path}: {err.strerror or err}") from None

    def _checked(self, operation, *args):
        try:
            return operation(*args)
        except OSError as err:
            raise SinkError(f"cannot write {self.path}: {err.strerror or err}") from None

    def write(self, data: bytes) -> int:
        return self._checked(self._file.write, data)

    def read(self, size: int = -1) -> bytes:
        return self._file.read(size)

    def seek(self, offset: int, whence: int = 0) -> int:
        return self._file.seek(offset, whence)

    def tell(self) -> int:
        return self._file.tell()

    def flush(self) -> None:
        self._checked(self._file.flush)

    def close(self) -> None:
        self._checked(self._file.close)


def open_checked(url: str, flags: int, options: dict) -> CheckedFile:
    """PyAV's ``io_open`` callback: ``url`` is a path or a ``file:`` URL."""
    path = url[len("file:") :] if url.startswith("file:") else url
    return CheckedFile(path, "wb" if flags & AVIO_FLAG_WRITE else "rb")
