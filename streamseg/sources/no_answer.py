"""Telling a camera that never answers from one that answers nonsense.

A server that accepts the connection and then says nothing makes FFmpeg fail in ways that name something else:
RTSP reports "Invalid data found when processing input" once its socket timeout passes, other protocols
"Immediate exit requested" once PyAV's open timeout interrupts them. Both mean "no answer from HOST:PORT in N s",
and that is what the user needs to read (then check the address, the port, or whether the camera is up).
"""

from __future__ import annotations

from urllib.parse import urlsplit

import av

DEFAULT_PORTS = {"rtsp": 554, "rtsps": 322, "rtmp": 1935, "rtmps": 443, "http": 80, "https": 443}


def no_answer(url: str, err: BaseException, waited: float, read_timeout: float, open_timeout: float) -> str | None:
    """ "no answer from HOST:PORT in N s" when ``err``, raised after ``waited`` seconds, was a silent server's
    timeout rather than a real answer; else None (the error says what happened)."""
    where = endpoint(url)
    if where is None:
        return None
    if isinstance(err, av.error.ExitError):  # PyAV's open timeout interrupted the wait
        seconds = open_timeout
    elif isinstance(err, av.error.TimeoutError):  # ETIMEDOUT: the connection itself was never answered
        seconds = read_timeout
    elif isinstance(err, av.error.InvalidDataError) and waited >= read_timeout:  # RTSP's socket timeout, not bad bytes
        seconds = read_timeout
    else:
        return None
    return f"no answer from {where} in {seconds:g} s"


def endpoint(url: str) -> str | None:
    """``HOST:PORT`` of a network URL (the scheme's default port where none is given); None for anything else."""
    try:
        parts = urlsplit(url)
        port = parts.port or DEFAULT_PORTS.get(parts.scheme.lower())
    except ValueError:
        return None
    if not parts.hostname:
        return None
    host = f"[{parts.hostname}]" if ":" in parts.hostname else parts.hostname
    return f"{host}:{port}" if port else host
