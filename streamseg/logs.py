"""Logging set-up, with credentials scrubbed from every URL that reaches a log line."""

from __future__ import annotations

import logging
import re

_CREDENTIALS = re.compile(r"(?P<scheme>[a-zA-Z][a-zA-Z0-9+.-]*://)[^/\s:@]+(?::[^/\s@]*)?@")


def redact(text: str) -> str:
    """``rtsp://user:pass@host/x`` -> ``rtsp://***@host/x``; anything else unchanged."""
    return _CREDENTIALS.sub(r"\g<scheme>***@", text)


class RedactingFilter(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        message = record.getMessage()
        clean = redact(message)
        if clean != message:
            record.msg, record.args = clean, None
        return True


def setup(verbosity: int = 0) -> None:
    """One line per event on stderr: warnings by default, info with -v, debug with -vv."""
    level = logging.WARNING if verbosity <= 0 else logging.INFO if verbosity == 1 else logging.DEBUG
    handler = logging.StreamHandler()
    handler.setFormatter(logging.Formatter("streamseg: %(levelname)s: %(message)s"))
    handler.addFilter(RedactingFilter())
    root = logging.getLogger("streamseg")
    root.handlers[:] = [handler]
    root.setLevel(level)
    root.propagate = False
