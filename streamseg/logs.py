"""Logging set-up, with credentials scrubbed from every URL that reaches a log line."""

from __future__ import annotations

import logging
import re

# userinfo runs to the LAST "@" before the host: a password may itself hold "@" (rtsp://user:p@ss@host/x)
_CREDENTIALS = re.compile(r"(?P<scheme>[a-zA-Z][a-zA-Z0-9+.-]*://)[^/\s?#]*@")
# query parameters that carry secrets: ?password=…, &token=…, &api_key=…, &auth=…, &X-Amz-Signature=…
_SECRET_PARAMS = re.compile(
    r"""(?P<key>[?&;][^=&;#\s]*(?:pass|pwd|token|key|secret|auth|sig|credential)[^=&;#\s]*=)[^&;#\s'"]*""",
    re.IGNORECASE,
)
# an RTMP URL is rtmp://host/APP/STREAM-KEY: whoever has the key may publish (or watch) as this stream
_RTMP_KEY = re.compile(r"""(?P<head>\brtmps?://[^/\s'"]+/[^/\s?#'"]+/)[^\s?#'"]+""", re.IGNORECASE)


def redact(text: str) -> str:
    """``rtsp://user:pass@host/x`` -> ``rtsp://***@host/x``; secret query values -> ``***``; an RTMP stream key
    (``rtmp://host/live/KEY``) -> ``rtmp://host/live/***``; anything else unchanged."""
    text = _CREDENTIALS.sub(r"\g<scheme>***@", text)
    return _RTMP_KEY.sub(r"\g<head>***", _SECRET_PARAMS.sub(r"\g<key>***", text))


class RedactingFilter(logging.Filter):
    """Scrubs the formatted message (its args included) and any attached traceback."""

    def filter(self, record: logging.LogRecord) -> bool:
        message = record.getMessage()
        clean = redact(message)
        if clean != message:
            record.msg, record.args = clean, None
        if record.exc_info and not record.exc_text:
            record.exc_text = redact(logging.Formatter().formatException(record.exc_info))
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
