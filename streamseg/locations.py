"""Where a URI points: a file on this machine (in any spelling FFmpeg opens as one) or a network address.

FFmpeg reads ``PROTO:rest`` as protocol ``PROTO`` whenever ``PROTO`` is a protocol it knows, so
``file:in.mp4`` is the file ``in.mp4`` and ``file:///abs/in.mp4`` the file ``///abs/in.mp4``, and ``md5:in.mp4`` or
``tee:in.mp4`` write to it. Every check that compares or confines paths asks ``local_path`` first,
and outputs may use only the protocols in ``OUTPUT_SCHEMES``.
"""

from __future__ import annotations

import re

from streamseg.errors import ConfigError

_PROTOCOL = re.compile(r"^([A-Za-z][A-Za-z0-9+.-]*):")
STREAM_OUTPUTS = ("rtsp", "rtsps", "udp", "rtmp", "rtmps")  # network outputs (sinks.StreamSink)
OUTPUT_SCHEMES = (*STREAM_OUTPUTS, "hls", "file")  # what -o may start with; a plain path needs none
NETWORK_SOURCES = ("rtsp", "rtsps", "rtmp", "rtmps", "srt", "udp", "http", "https", "tcp")


def protocol(uri: str) -> str | None:
    """The FFmpeg protocol a URI names (lower case), or None for a plain path (a Windows drive is a path)."""
    found = _PROTOCOL.match(uri)
    if found is None or len(found.group(1)) == 1:
        return None
    return found.group(1).lower()


def local_path(uri: str) -> str | None:
    """The path of the file ``uri`` names on this machine; None for a network URL or a protocol of FFmpeg's own."""
    scheme = protocol(uri)
    if scheme is None:
        return uri
    if scheme != "file":
        return None
    return uri[len("file:") :]  # FFmpeg opens the rest as it stands: file:///abs is ///abs, nothing unquoted


def is_local(uri: str) -> bool:
    """Whether ``uri`` reads or writes a file here: a path, ``file:…``, or any protocol that is not a network one."""
    return protocol(uri) not in NETWORK_SOURCES


def check_output_uri(uri: str, what: str = "-o") -> None:
    """Refuse an output whose FFmpeg protocol streamseg does not write through (``md5:``, ``tee:``, ``pipe:`` …)."""
    scheme = protocol(uri)
    if scheme is not None and scheme not in OUTPUT_SCHEMES:
        raise ConfigError(
            f"{what} {uri.split(':', 1)[0]}:…: not an output streamseg writes; use a path, file:PATH, hls:DIR, "
            "rtsp://, udp:// or rtmp://"
        )
