"""Per-frame label maps: indexed PNGs with the palette, or one .npz archive.

PNGs are written under a temporary name and renamed, so a killed run leaves only
whole label maps. A zip (npz) has its directory at the end, so a killed run cannot
leave a readable one: the archive is built as ``labels.npz.partial`` (each entry flushed,
so ``zip -FF`` can salvage them) and renamed to ``labels.npz`` at close; use PNGs where
label maps must survive a crash.
"""

from __future__ import annotations

import io
import os
import zipfile
from pathlib import Path

import numpy as np
from PIL import Image

from streamseg.errors import SinkError
from streamseg.frames import Result

PARTIAL = ".partial"


def _ensure_dir(path: Path) -> Path:
    try:
        path.mkdir(parents=True, exist_ok=True)
    except OSError as err:
        raise SinkError(f"cannot create {path}: {err.strerror or err}") from None
    return path


class PngLabelSink:
    """``DIR/000123.png``: 8-bit paletted, pixel value = class id, viewable as a mask."""

    def __init__(self, folder: str | Path, colors: tuple[tuple[int, int, int], ...]):
        self.folder = _ensure_dir(Path(folder))
        self.name = str(self.folder)
        self.delivered = 0
        flat = [v for rgb in colors for v in rgb]
        self._palette = flat + [0] * (768 - len(flat))

    def write(self, result: Result) -> None:
        labels = np.ascontiguousarray(result.labels)
        image = Image.frombytes("P", (labels.shape[1], labels.shape[0]), labels.tobytes())
        image.putpalette(self._palette)
        path = self.folder / f"{result.index:06d}.png"
        temporary = self.folder / f".{path.name}.{os.getpid()}.tmp"
        try:
            image.save(temporary, format="PNG", optimize=False, compress_level=1)
            os.replace(temporary, path)  # a reader (or a kill) never sees half a PNG
        except OSError as err:
            _remove_quietly(temporary)
            raise SinkError(f"cannot write {path}: {err.strerror or err}") from None
        self.delivered += 1

    def close(self, complete: bool = True) -> None:
        pass


class NpzLabelSink:
    """One ``labels.npz``: array ``f000123`` per frame, readable with ``np.load``.

    Written entry by entry, so long videos don't pile up in memory, as
    ``labels.npz.partial``; the zip directory is written and the file renamed on close.
    """

    def __init__(self, path: str | Path):
        self.path = Path(path)
        self.name = str(self.path)
        self.delivered = 0
        _ensure_dir(self.path.parent)
        self._partial = self.path.with_name(self.path.name + PARTIAL)
        try:
            self._zip = zipfile.ZipFile(self._partial, "w", compression=zipfile.ZIP_DEFLATED, compresslevel=1)
        except OSError as err:
            raise SinkError(f"cannot write {self._partial}: {err.strerror or err}") from None

    def write(self, result: Result) -> None:
        buffer = io.BytesIO()
        np.save(buffer, result.labels)
        try:
            self._zip.writestr(f"f{result.index:06d}.npy", buffer.getvalue())
            if self._zip.fp is not None:  # None only once closed
                self._zip.fp.flush()  # on disk entry by entry: `zip -FF` can salvage them after a kill
        except OSError as err:
            raise SinkError(f"cannot write {self._partial}: {err.strerror or err}") from None
        self.delivered += 1

    def close(self, complete: bool = True) -> None:
        try:
            self._zip.close()
            os.replace(self._partial, self.path)
        except OSError as err:
            raise SinkError(f"cannot write {self.path}: {err.strerror or err}") from None


def _remove_quietly(path: Path) -> None:
    try:
        os.unlink(path)
    except OSError:
        pass
