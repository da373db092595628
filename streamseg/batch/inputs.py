"""Batch inputs: files, folders (searched recursively), globs and ``@list.txt`` files, each with its root.

An input's outputs mirror its path relative to its root under OUTDIR: a folder is its files' root, a glob's
root is the folder before its first wildcard, and a file named directly (or in a list) is its own folder's.
"""

from __future__ import annotations

import dataclasses
import glob
import os
from dataclasses import dataclass
from pathlib import Path

from streamseg.errors import ConfigError, SourceError

# what a folder search picks up; a file named directly is taken whatever its extension
VIDEO_EXTENSIONS = frozenset(
    {".mp4", ".m4v", ".mov", ".mkv", ".webm", ".avi", ".ts", ".mts", ".m2ts", ".mpg", ".mpeg", ".flv", ".wmv", ".3gp"}
)
# containers the output keeps; anything else is written as .mp4
KEPT_CONTAINERS = frozenset({".mp4", ".mkv", ".mov"})
_WILDCARDS = frozenset("*?[")


@dataclass(frozen=True)
class VideoInput:
    path: Path  # absolute
    relative: Path  # under its root: where its outputs go under OUTDIR
    problem: str | None = None  # why this video cannot be done (its outputs clash with another's): it fails alone

    @property
    def key(self) -> str:
        """The video's name in the manifest: its path relative to its root, with forward slashes."""
        return self.relative.as_posix()


def collect_inputs(specs: tuple[str, ...] | list[str], outdir: Path) -> list[VideoInput]:
    """Every video ``specs`` name, once each, in a stable order.

    Files under ``outdir`` are left out, symbolic links that lead there too: OUTDIR holds outputs and is never
    read. A video whose outputs would be another's comes back with a ``problem`` (it fails alone).
    """
    outdir = outdir.resolve()
    found: dict[Path, VideoInput] = {}
    inside = 0
    for spec in specs:
        for item in _expand(spec):
            if item.path.is_relative_to(outdir) or item.path.resolve().is_relative_to(outdir):
                inside += 1
            elif item.path not in found:
                found[item.path] = item
    if not found and inside:
        raise ConfigError(
            f"no videos found in {', '.join(specs)} outside OUTDIR: every one found ({inside}) lies in {outdir}, "
            "where a batch writes its outputs and never reads; give -o a folder outside the inputs"
        )
    return _mark_clashes(list(found.values()))


def _expand(spec: str) -> list[VideoInput]:
    if spec.startswith("@"):
        return _from_list(Path(spec[1:]))
    if any(c in _WILDCARDS for c in spec):
        return _from_glob(spec)
    path = Path(spec)
    if path.is_dir():
        return _from_folder(path)
    if path.is_file():
        return [VideoInput(path.resolve(), Path(path.name))]
    raise SourceError(f"input not found: {spec}")


def _from_folder(folder: Path) -> list[VideoInput]:
    root = folder.resolve()
    videos = []
    for dirpath, dirnames, filenames in os.walk(root):
        dirnames[:] = sorted(d for d in dirnames if not d.startswith("."))
        for name in sorted(filenames):
            if not name.startswith(".") and Path(name).suffix.lower() in VIDEO_EXTENSIONS:
                path = Path(dirpath) / name
                videos.append(VideoInput(path, path.relative_to(root)))
    return videos


def _from_glob(pattern: str) -> list[VideoInput]:
    parts = Path(pattern).parts
    fixed = next(i for i, part in enumerate(parts) if any(c in _WILDCARDS for c in part))
    root = Path(*parts[:fixed]).resolve() if fixed else Path.cwd()
    matches = sorted(Path(p).resolve() for p in glob.glob(pattern, recursive=True) if Path(p).is_file())
    return [VideoInput(p, p.relative_to(root)) for p in matches]


def _from_list(listing: Path) -> list[VideoInput]:
    """One input per line (files, folders or globs); blank lines and ``#`` comments skipped.

    Relative lines are relative to the list file's folder, so a list travels with its videos.
    """
    try:
        lines = listing.read_text().splitlines()
    except OSError as err:
        raise SourceError(f"cannot read input list {listing}: {err.strerror or err}") from None
    items = []
    for line in lines:
        line = line.strip()
        if line and not line.startswith("#"):
            path = Path(line) if Path(line).is_absolute() else listing.parent / line
            items.extend(_expand(str(path)))
    return items


def _mark_clashes(items: list[VideoInput]) -> list[VideoInput]:
    """A video whose outputs would land on another's path fails alone, the first one keeping them: ``x.mp4`` and
    ``x.mkv`` in one folder (``x.labels/``, ``x.summary.csv``), or ``a/x.mp4`` and ``b/x.mp4`` named separately."""
    seen: dict[Path, Path] = {}
    marked = []
    for item in items:
        target = output_stem(item.relative)
        first = seen.setdefault(target, item.path)
        if first != item.path:
            if first.parent == item.path.parent:
                advice = "two videos with one name in one folder: rename one of them"
            else:
                advice = "give their common parent folder instead, so their outputs keep their folders apart"
            problem = f"its outputs ({target.as_posix()}.*) would be those of {first}: {advice}"
            item = dataclasses.replace(item, problem=problem)
        marked.append(item)
    return marked


def output_stem(relative: Path) -> Path:
    return relative.with_suffix("")


def video_output(relative: Path) -> Path:
    """The output video's path under OUTDIR: the input's, in its own container when that holds H.264."""
    suffix = relative.suffix.lower()
    return relative if suffix in KEPT_CONTAINERS else relative.with_suffix(".mp4")
