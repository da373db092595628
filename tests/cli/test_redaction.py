"""Credentials never reach a log line or an error message: userinfo, secret query parameters, click's errors."""

from __future__ import annotations

import io
import logging

import pytest

from streamseg.logs import RedactingFilter, redact
from tests.support.cli import run_cli


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("rtsp://user:pass@host/x", "rtsp://***@host/x"),
        ("rtsp://user:p@ss@host/x", "rtsp://***@host/x"),  # "@" in the password: cut at the last "@" before the host
        ("rtsp://a:b@c@d@10.0.0.1:554/s?x=1", "rtsp://***@10.0.0.1:554/s?x=1"),
        ("http://h/x?password=abc&token=def&fps=3", "http://h/x?password=***&token=***&fps=3"),
        ("https://h/p?api_key=zz#frag", "https://h/p?api_key=***#frag"),
        ("srt://h:9000?mode=caller&passphrase=hunter22", "srt://h:9000?mode=caller&passphrase=***"),
        ("https://h/a?auth=xyz&Secret=1", "https://h/a?auth=***&Secret=***"),
        ("cannot open 'rtmp://u:p@h/live?token=t0k' now", "cannot open 'rtmp://***@h/live?token=***' now"),
    ],
)
def test_redact_each_form(text: str, expected: str):
    assert redact(text) == expected


@pytest.mark.parametrize(
    "text", ["rtsp://host/x", "rtsp://host/x mail a@b.c", "http://h/x?fps=3&size=64", "car-detection.mp4"]
)
def test_redact_leaves_plain_text_alone(text: str):
    assert redact(text) == text


def test_log_filter_scrubs_args_and_tracebacks():
    out = io.StringIO()
    handler = logging.StreamHandler(out)
    handler.addFilter(RedactingFilter())
    log = logging.getLogger("streamseg.test-redaction")
    log.addHandler(handler)
    log.propagate = False
    try:
        log.warning("%s: lost (%s)", "rtsp://u:p@ss@cam/x", "http://h/?password=hunter2")
        try:
            raise OSError("cannot reach rtsp://u:p@ss@cam/x?token=s3cret")
        except OSError:
            log.exception("failed")
    finally:
        log.removeHandler(handler)
    text = out.getvalue()
    assert "rtsp://***@cam/x" in text and "password=***" in text and "token=***" in text
    assert "p@ss" not in text and "hunter2" not in text and "s3cret" not in text


def test_click_usage_error_is_redacted(tmp_path):
    # click names a bad option value verbatim: the message passes through redact at the CLI boundary
    url = "rtsp://user:p@ss@127.0.0.1:8554/x?password=hunter2"
    proc = run_cli("run", str(tmp_path / "in.mp4"), "--transport", url, timeout=60)
    assert proc.returncode == 2
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1, proc.stderr
    assert lines[0].startswith(
        "streamseg: error: Invalid value for '--transport': 'rtsp://***@127.0.0.1:8554/x?password=***"
    ), lines[0]
    assert "p@ss" not in proc.stderr and "hunter2" not in proc.stderr
