"""Which class reads or writes a URI: one table of schemes, shared by ``sources/`` and ``outputs/``.

As GStreamer's URI handlers do, a scheme maps to the element that reads it and the one that writes
it, so a new scheme is one row here. A row names kinds, not classes, to keep this module free of
imports; each factory maps its kinds to its classes:

- reads: ``live`` is ``sources.live.LiveSource`` (drop-oldest), ``device`` the same on a V4L2 node,
  ``file`` is ``sources.file.FileSource`` (lossless; paced as a camera with ``--realtime``);
- writes: ``stream`` is ``outputs.streams.stream.StreamSink``, ``hls`` the same writing a playlist and
  segments into a folder, ``file`` is a video file (``outputs.files``).

Plain paths and ``file:`` URIs (``file:///abs``, ``file:/abs``, ``file:name``) are local files; every check
that compares or confines paths asks ``local_path`` first, so ``-o file:in.mp4`` is caught as ``in.mp4``.
FFmpeg reads any other ``NAME:rest`` as its protocol ``NAME`` (``md5:in.mp4`` and ``tee:in.mp4`` write to
``in.mp4``, ``pipe:1`` to stdout): a name missing from the table reads and writes nothing, so it is refused.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from urllib.parse import unquote

from streamseg.errors import ConfigError


@dataclass(frozen=True)
class Scheme:
    """One row: how a URI of this scheme is read and written (None: it cannot be)."""

    name: str  # "" for plain paths
    reads: str | None
    writes: str | None
    local: bool = False  # a path on this machine, which outputs must not overwrite
    prefix: str = "://"  # what follows the name: "rtsp://host/x", "hls:DIR"


SCHEMES: dict[str, Scheme] = {
    row.name: row
    for row in (
        Scheme("", reads="file", writes="file", local=True),
        Scheme("file", reads="file", writes="file", local=True, prefix=":"),
        Scheme("v4l2", reads="device", writes=None, local=True),  # /dev/videoN
        Scheme("rtsp", reads="live", writes="stream"),
        Scheme("rtsps", reads="live", writes="stream"),
        Scheme("rtmp", reads="live", writes="stream"),
        Scheme("rtmps", reads="live", writes="stream"),
        Scheme("udp", reads="live", writes="stream"),  # MPEG-TS
        Scheme("http", reads="live", writes=None),  # HLS playlists and other HTTP streams
        Scheme("https", reads="live", writes=None),
        Scheme("srt", reads="live", writes=None),
        Scheme("tcp", reads="live", writes=None),
        Scheme("hls", reads=None, writes="hls", prefix=":"),  # hls:DIR
    )
}
_DEVICE = re.compile(r"^/dev/video\d+$")
_NAMED = re.compile(r"^([A-Za-z][A-Za-z0-9+.-]*):")


def scheme_of(uri: str) -> Scheme:
    """The row for ``uri``; a scheme missing from the table gets a row that reads and writes nothing."""
    if _DEVICE.match(uri):
        return SCHEMES["v4l2"]
    named = _NAMED.match(uri)
    name = named.group(1).lower() if named else ""
    row = SCHEMES.get(name)
    if row is not None and uri[len(name) :].startswith(row.prefix):
        return row
    if named and len(name) > 1:
        # FFmpeg reads NAME:rest as its protocol NAME (md5:, tee:, pipe:, crypto: …): nothing here reads or
        # writes those, so they are refused rather than handed to FFmpeg as paths
        return Scheme(name, reads=None, writes=None, prefix="://" if "://" in uri else ":")
    return SCHEMES[""]  # a path (a colon after a slash, or a drive letter "C:x", is part of the path)


def is_local_path(uri: str) -> bool:
    """Whether ``uri`` names a file or device on this machine (a plain path or ``file:``), not a network URL."""
    return scheme_of(uri).local


def local_path(uri: str) -> str:
    """The path a local ``uri`` names: ``file:`` spellings unwrapped, plain paths as they are."""
    if scheme_of(uri).name != "file":
        return uri
    rest = uri[len("file:") :]
    if not rest.startswith("//"):
        # file:name, file:/abs (FFmpeg's spelling: no percent-escapes); file:md5:x is the file ./md5:x
        named = _NAMED.match(rest)
        return "./" + rest if named and len(named.group(1)) > 1 else rest
    host, slash, path = rest[2:].partition("/")
    if host not in ("", "localhost"):
        raise ConfigError(f"{uri}: a file: URI names a path on this machine, not on {host}")
    return unquote(slash + path)


def output_kind(uri: str, what: str = "-o") -> str:
    """How an output ``uri`` is written (``file``, ``stream`` or ``hls``); a scheme nothing writes is refused."""
    row = scheme_of(uri)
    if row.writes is None:
        writable = ", ".join(f"{r.name}{r.prefix}" for r in SCHEMES.values() if r.name and r.writes)
        raise ConfigError(
            f"{what} {row.name}{row.prefix}…: no output writes {row.name}{row.prefix} URIs; use a path or {writable}"
        )
    return row.writes


def network_schemes() -> tuple[str, ...]:
    """The schemes of network sources (what a POSTed source may use besides a file)."""
    return tuple(row.name for row in SCHEMES.values() if row.reads == "live" and not row.local)


def is_stream_output(uri: str) -> bool:
    """Whether an output ``uri`` is a live stream (or HLS folder) rather than a video file."""
    return scheme_of(uri).writes in ("stream", "hls")
