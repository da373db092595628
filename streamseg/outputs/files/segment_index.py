"""The list of segments a loop recording wrote, kept in each segment folder, so ``--keep-gigabytes`` deletes only
those: a file that merely matches the name pattern (someone's ``thesis-defense.mp4`` next to ``%Y%m%d-%H%M%S.mp4``)
is never the recorder's to delete.

``.streamseg-segments`` holds one file name per line. A segment is listed before its first byte is written and
unlisted once deleted, so later runs of the same recording continue the loop over earlier runs' segments. Every
change takes an exclusive ``flock``: two sources recording into one folder, or two runs, keep one list.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
from collections.abc import Iterator
from pathlib import Path

INDEX_NAME = ".streamseg-segments"


class SegmentIndex:
    """The recorder's own segments in ``folder``, by file name."""

    def __init__(self, folder: str | Path):
        self.path = Path(folder) / INDEX_NAME

    @contextlib.contextmanager
    def _locked(self, create: bool) -> Iterator[int | None]:
        try:
            fd = os.open(self.path, os.O_RDWR | (os.O_CREAT if create else 0), 0o644)
        except (FileNotFoundError, NotADirectoryError):
            yield None
            return
        try:
            fcntl.flock(fd, fcntl.LOCK_EX)
            yield fd
        finally:
            os.close(fd)  # releases the lock

    def names(self) -> list[str]:
        with self._locked(create=False) as fd:
            return [] if fd is None else _read(fd)

    def add(self, name: str) -> None:
        with self._locked(create=True) as fd:
            assert fd is not None, "created"
            os.lseek(fd, 0, os.SEEK_END)
            os.write(fd, (name + "\n").encode())
            os.fsync(fd)  # listed on disk before the segment's first byte: a crash never orphans one

    def remove(self, name: str) -> None:
        with self._locked(create=False) as fd:
            if fd is None:
                return
            kept = [n for n in _read(fd) if n != name]
            os.ftruncate(fd, 0)
            os.lseek(fd, 0, os.SEEK_SET)
            os.write(fd, "".join(n + "\n" for n in kept).encode())


def _read(fd: int) -> list[str]:
    os.lseek(fd, 0, os.SEEK_SET)
    data = b""
    while chunk := os.read(fd, 1 << 16):
        data += chunk
    return [line for line in data.decode(errors="replace").splitlines() if line and "/" not in line]
