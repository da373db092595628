"""How video files are muxed so a killed run leaves them playable, and made seekable at a clean close.

While a run records, MP4/MOV files are written fragmented: an empty ``moov`` first,
then one ``moof``+``mdat`` fragment per keyframe and at least every second, each
pushed to the kernel as it is cut (``flush_packets``). A SIGKILL or a crash
leaves every complete fragment playable. Matroska is resilient by design; its
clusters are cut every second and flushed the same way.

At a clean close the fragmented MP4 is copied (no re-encoding) into a normal MP4
with its index first (``faststart``) under a temporary name, then renamed over
the fragmented one: a kill during that copy still leaves the fragmented file.

A file being recorded is also ``fsync``ed every couple of seconds from a background
thread, so a power cut, which loses what the kernel has not written back yet, loses
little more than a kill does.
"""

from __future__ import annotations

import logging
import math
import os
import threading
from fractions import Fraction
from pathlib import Path

import av

log = logging.getLogger(__name__)

FRAGMENT_SECONDS = 1.0  # the most a kill loses, plus the encoder's few frames of delay
SYNC_SECONDS = 2.0  # how often a file being recorded is pushed to the disk: what a power cut loses on top
MP4_SUFFIXES = (".mp4", ".m4v", ".mov")
MATROSKA_SUFFIXES = (".mkv", ".webm")


def muxer_options(path: str, *time_bases: Fraction | None) -> dict[str, str]:
    """Options for ``av.open(path, "w")`` that keep a partly written file playable.

    MP4 keeps each stream's first timestamp exactly (edit lists in a movie timescale that
    every stream's ``time_bases`` divides), as a non-fragmented file does, rather than shifting the streams so that
    the earliest (often an AAC priming packet) starts at zero.
    """
    suffix = Path(path).suffix.lower()
    options = {"flush_packets": "1"}  # each write reaches the kernel: a killed process loses nothing written
    if suffix in MP4_SUFFIXES:
        # delay_moov: the (empty) moov goes out with the first fragment, when the first timestamps are known
        options["movflags"] = "frag_keyframe+empty_moov+default_base_moof+delay_moov"
        options["frag_duration"] = str(int(FRAGMENT_SECONDS * 1_000_000))
        options.update(_exact_timescale(*time_bases))
    elif suffix in MATROSKA_SUFFIXES:
        options["cluster_time_limit"] = str(int(FRAGMENT_SECONDS * 1000))
    return options


def _exact_timescale(*time_bases: Fraction | None) -> dict[str, str]:
    """An MP4 movie timescale that holds every stream's start exactly (not rounded to ms, the default)."""
    known = [tb for tb in time_bases if tb is not None]
    if not known or len(known) < len(time_bases) or any(tb.numerator != 1 for tb in known):
        return {}
    scale = math.lcm(*(tb.denominator for tb in known))
    return {"movie_timescale": str(scale)} if 0 < scale < 2**31 else {}


def is_fragmented_mp4(path: str) -> bool:
    return Path(path).suffix.lower() in MP4_SUFFIXES


def temporary_name(path: str, purpose: str) -> str:
    """A hidden name next to ``path`` (same file system, so a rename is atomic), unique to this process."""
    real = Path(os.path.realpath(path))
    return str(real.with_name(f".{real.name}.{purpose}-{os.getpid()}{real.suffix}"))


def faststart(path: str) -> bool:
    """Rewrite a fragmented MP4 at ``path`` as a normal MP4 with its index first; False (and a warning) if not.

    Packets are copied as they are. The result replaces ``path`` (its real file, when
    ``path`` is a symlink) only once it is complete; on any failure the fragmented file,
    which plays, stays.
    """
    target = os.path.realpath(path)
    temporary = temporary_name(path, "faststart")
    try:
        with av.open(target) as source:
            streams = [s for s in source.streams if s.type in ("video", "audio")]
            options = {"movflags": "faststart", **_exact_timescale(*(s.time_base for s in streams))}
            with av.open(temporary, "w", format="mp4", options=options) as copy:
                mapped = {s.index: copy.add_stream_from_template(s) for s in streams}
                for packet in source.demux(streams):
                    if packet.dts is None:  # the demuxer's end-of-stream marker
                        continue
                    packet.stream = mapped[packet.stream.index]
                    copy.mux(packet)
        os.replace(temporary, target)
        return True
    except (av.FFmpegError, OSError, ValueError) as err:
        log.warning(
            "%s: kept as fragmented MP4 (plays everywhere FFmpeg does; not rewritten: %s)",
            path,
            getattr(err, "strerror", None) or err,
        )
        try:
            os.unlink(temporary)
        except OSError:
            pass
        return False


class PeriodicSync:
    """``fsync`` the file at ``path`` every ``interval`` seconds from a background thread, until ``stop()``."""

    def __init__(self, path: str, interval: float = SYNC_SECONDS):
        self.path = path
        self.interval = interval
        self._stopping = threading.Event()
        self._thread = threading.Thread(target=self._run, name="fsync", daemon=True)
        self._thread.start()

    def _run(self) -> None:
        fd = None
        try:
            while not self._stopping.wait(self.interval):
                if fd is None:
                    try:
                        fd = os.open(self.path, os.O_RDONLY)  # any descriptor of the file flushes its data
                    except OSError:  # not created yet
                        continue
                try:
                    os.fsync(fd)
                except OSError:
                    pass
        finally:
            if fd is not None:
                os.close(fd)

    def stop(self) -> None:
        self._stopping.set()
        self._thread.join()
