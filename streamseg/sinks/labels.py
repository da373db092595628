"""Per-frame label maps: indexed PNGs with the palette, or one .npz archive."""

from __future__ import annotations

import io
import zipfile
from pathlib import Path

import numpy as np
from PIL import Image

from streamseg.errors import SinkError
from streamseg.frames import Result


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
        flat = [v for rgb in colors for v in rgb]
        self._palette = flat + [0] * (768 - len(flat))

    def write(self, result: Result) -> None:
        labels = np.ascontiguousarray(result.labels)
        image = Image.frombytes("P", (labels.shape[1], labels.shape[0]), labels.tobytes())
        image.putpalette(self._palette)
        image.save(self.folder / f"{result.index:06d}.png", optimize=False, compress_level=1)

    def close(self, complete: bool = True) -> None:
        pass


class NpzLabelSink:
    """One ``labels.npz``: array ``f000123`` per frame, readable with ``np.load``.

    Written entry by entry, so long videos don't pile up in memory, and the
    zip directory is finalized on close.
    """

    def __init__(self, path: str | Path):
        path = Path(path)
        _ensure_dir(path.parent)
        self._zip = zipfile.ZipFile(path, "w", compression=zipfile.ZIP_DEFLATED, compresslevel=1)

    def write(self, result: Result) -> None:
        buffer = io.BytesIO()
        np.save(buffer, result.labels)
        self._zip.writestr(f"f{result.index:06d}.npy", buffer.getvalue())

    def close(self, complete: bool = True) -> None:
        self._zip.close()
