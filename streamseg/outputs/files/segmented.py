"""Segmented recording, as a dashcam does: ``rec/%Y%m%d-%H%M%S.mp4``, a new file every N seconds.

Each segment is its own file with its own encoder, so it starts with a keyframe and
plays alone; it is finalized (flushed, made seekable) as soon as the next one starts.
Segments keep the source's timestamps, so one segment's first frame follows the
previous segment's last. With a size limit the oldest segments of the recording
are deleted, as a loop recorder does: only those it wrote, this run or an earlier
one, as listed in each folder's index (``streamseg.outputs.files.segment_index``); other
files the pattern matches are never touched.
"""

from __future__ import annotations

import fnmatch
import glob
import logging
import os
import re
import time
from concurrent.futures import Future, ThreadPoolExecutor
from pathlib import Path

from streamseg.errors import SinkError
from streamseg.frames import Result, StreamInfo
from streamseg.outputs.files.recording import faststart, is_fragmented_mp4
from streamseg.outputs.files.segment_index import SegmentIndex
from streamseg.outputs.files.video_file import VideoFileSink
from streamseg.stage_options import EncoderOptions

log = logging.getLogger(__name__)

_FIELD = re.compile(r"%.")


def segment_glob(pattern: str) -> str:
    """The shell pattern of every name ``pattern`` can make: each strftime field becomes ``*``."""
    path = Path(pattern)
    if _counted(pattern):
        name = f"{glob.escape(path.stem)}-*{glob.escape(path.suffix)}"
    else:
        name = _wildcards(glob.escape(path.name))
    return os.path.join(_wildcards(glob.escape(str(path.parent))), name)


def _wildcards(text: str) -> str:
    return _FIELD.sub(lambda m: "%" if m.group() == "%%" else "*", text)


def _counted(pattern: str) -> bool:
    """A file name without strftime fields gets a counter: cam.mp4 -> cam-00001.mp4, cam-00002.mp4, ..."""
    return "%" not in Path(pattern).name


class SegmentedVideoSink:
    """Writes ``pattern`` (strftime fields filled at each segment's start) every ``segment_seconds`` of video.

    ``keep_bytes`` caps the total size of the recording's segments; the oldest go first,
    never the one being written.
    """

    def __init__(
        self,
        pattern: str | Path,
        info: StreamInfo,
        options: EncoderOptions = EncoderOptions(),
        *,
        segment_seconds: float,
        keep_bytes: int | None = None,
    ):
        if segment_seconds <= 0:
            raise SinkError(f"{pattern}: segment length must be positive, not {segment_seconds}")
        self.pattern = self.name = str(pattern)
        self.info = info
        self.options = options
        self.segment_seconds = segment_seconds
        self.keep_bytes = keep_bytes
        self.segments: list[str] = []  # this run's, oldest first
        self.deleted: list[str] = []
        self._current: VideoFileSink | None = None
        self._start: float | None = None  # media time of the current segment's first frame
        self._previous_delivered = 0
        self._finalizer = ThreadPoolExecutor(1, thread_name_prefix="segments")  # off the output thread
        self._pending: list[Future] = []

    @property
    def delivered(self) -> int:
        """Frames encoded into any segment."""
        return self._previous_delivered + (self._current.delivered if self._current else 0)

    def write(self, result: Result) -> None:
        if result.pts is None:
            raise SinkError(f"{self.pattern}: segments are cut by frame timestamps, and this frame has none")
        seconds = float(result.pts * self.info.time_base)
        if self._current is not None and self._start is not None and seconds - self._start >= self.segment_seconds:
            self._cut(seconds)
        current = self._current if self._current is not None else self._begin(seconds)
        current.write(result)

    def _begin(self, seconds: float) -> VideoFileSink:
        path = self._next_name()
        try:
            Path(path).parent.mkdir(parents=True, exist_ok=True)
        except OSError as err:
            raise SinkError(f"cannot create {Path(path).parent}: {err.strerror or err}") from None
        try:
            SegmentIndex(Path(path).parent).add(Path(path).name)
        except OSError as err:
            raise SinkError(f"cannot write {Path(path).parent}: {err.strerror or err}") from None
        first = not self.segments
        self._current = VideoFileSink(path, self.info, self.options, audio_since=None if first else seconds)
        self._start = seconds
        self.segments.append(path)
        log.info("recording %s", path)
        return self._current

    def _cut(self, next_start: float) -> None:
        """Close the current segment (its audio runs up to the next one's first frame) and finalize it."""
        segment, self._current = self._current, None
        if segment is None:
            return
        self._previous_delivered += segment.delivered
        segment.finish(audio_until=next_start, seekable=False)
        self._pending.append(self._finalizer.submit(self._finalize, segment.path))

    def _finalize(self, path: str) -> None:
        """Off the output thread: rewrite a closed segment seekable, push it to disk, apply the size cap."""
        if is_fragmented_mp4(path):
            faststart(path)
        _sync(path)
        self._prune()

    def _next_name(self) -> str:
        pattern = Path(self.pattern)
        if _counted(self.pattern):
            pattern = pattern.with_name(f"{pattern.stem}-{len(self.segments) + 1:05d}{pattern.suffix}")
        name = time.strftime(str(pattern), time.localtime())
        candidate, n = name, 1
        while candidate in self.segments or os.path.lexists(candidate):  # never overwrite a segment
            n += 1
            stem, suffix = os.path.splitext(name)
            candidate = f"{stem}-{n}{suffix}"
        return candidate

    def _prune(self) -> None:
        if self.keep_bytes is None:
            return
        current = self.segments[-1] if self._current is not None else None
        found = {os.path.realpath(p): p for p in self._recorded()}
        found.update({os.path.realpath(p): p for p in self.segments if os.path.exists(p)})
        sizes = {}
        for real, path in found.items():
            try:
                stat = os.stat(real)
            except OSError:  # deleted meanwhile
                continue
            sizes[path] = (stat.st_mtime, stat.st_size)
        total = sum(size for _, size in sizes.values())
        for path in sorted(sizes, key=lambda p: sizes[p][0]):  # oldest first
            if total <= self.keep_bytes:
                break
            if current is not None and os.path.realpath(path) == os.path.realpath(current):
                continue
            try:
                os.unlink(path)
            except FileNotFoundError:
                pass
            except OSError as err:
                log.warning("%s: old segment not deleted: %s", path, err.strerror or err)
                continue
            try:
                SegmentIndex(Path(path).parent).remove(Path(path).name)
            except OSError as err:  # deleted all the same; a later prune skips the missing file
                log.warning("%s: not removed from the segment index: %s", path, err.strerror or err)
            total -= sizes[path][1]
            self.deleted.append(path)
            # the first deletion is a warning, so nobody learns of the loop from a missing file; then one info each
            level = logging.WARNING if len(self.deleted) == 1 else logging.INFO
            log.log(level, "deleted old segment %s (recording over --keep-gigabytes %g)", path, self.keep_bytes / 1e9)

    def _recorded(self) -> list[str]:
        """The segments this recording wrote, this run or earlier, that are still listed in their folders' index."""
        folders, name = os.path.split(segment_glob(self.pattern))
        return [
            os.path.join(folder, listed)
            for folder in glob.glob(folders or ".")
            for listed in SegmentIndex(folder).names()
            if fnmatch.fnmatchcase(listed, name)
        ]

    def close(self, complete: bool = True) -> None:
        """Finalize the last segment and wait until every segment is rewritten and pruned."""
        try:
            if self._current is not None:
                segment, self._current = self._current, None
                self._previous_delivered += segment.delivered
                segment.close(complete)  # also makes it seekable
                self._pending.append(self._finalizer.submit(self._finalize_last, segment.path))
        finally:
            self._finalizer.shutdown(wait=True)
        for future in self._pending:
            future.result()

    def _finalize_last(self, path: str) -> None:
        _sync(path)
        self._prune()


def _sync(path: str) -> None:
    """Push a finished file to the disk, so a power cut keeps it."""
    try:
        fd = os.open(path, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)
