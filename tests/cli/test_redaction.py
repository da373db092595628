"""Credentials never reach a log line or an error message: userinfo, secret query parameters, click's errors."""

from __future__ import annotations

import io
import logging
import socket

import pytest

from streamseg.logs import RedactingFilter, redact
from streamseg.outputs.naming import source_name
from tests.support.cli import run_cli
from tests.support.videos import make_video


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
        ("rtmp://host/live/SECRETKEY", "rtmp://host/live/***"),  # a stream key is a secret like a password
        ("to RTMPS://u:p@h:443/app/inst/k3y?x=1 (down)", "to RTMPS://***@h:443/app/***?x=1 (down)"),
        ("'rtmp://h/live/k3y' and rtmp://h/live/***", "'rtmp://h/live/***' and rtmp://h/live/***"),
    ],
)
def test_redact_each_form(text: str, expected: str):
    assert redact(text) == expected


@pytest.mark.parametrize(
    "text",
    [
        "rtsp://host/x",
        "rtsp://host/x mail a@b.c",
        "http://h/x?fps=3&size=64",
        "car-detection.mp4",
        "rtmp://host/live",  # an application, no key
        "rtsp://host/live/cam1",  # only RTMP paths carry keys
    ],
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


def closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]  # nobody listens once it is closed


def test_rtmp_stream_keys_never_reach_a_log_line_or_a_name(tmp_path, duc_onnx):
    url = f"rtmp://127.0.0.1:{closed_port()}/live/SECRETKEY"
    assert source_name(url) == f"127.0.0.1-{url.split(':')[2].split('/')[0]}-live"
    clip = make_video(tmp_path / "clip.mp4", width=64, height=48, frames=3)
    as_output = run_cli("-v", "run", str(clip), "--model", str(duc_onnx), "-o", url, timeout=120)
    as_input = run_cli(
        "-v",
        "run",
        url,
        "--model",
        str(duc_onnx),
        "-o",
        str(tmp_path / "o.mp4"),
        "--reconnect-give-up",
        "0",
        timeout=120,
    )
    for proc in (as_output, as_input):
        assert proc.returncode == 2 and "Traceback" not in proc.stderr
        assert "SECRETKEY" not in proc.stderr and "/live/***" in proc.stderr.splitlines()[-1], proc.stderr
