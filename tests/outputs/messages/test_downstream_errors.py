"""Bad downstream options get one clear line and a non-zero exit, never a traceback."""

from __future__ import annotations

import importlib.util
import socket
import subprocess
import sys
from pathlib import Path

import pytest

from streamseg.errors import ConfigError
from streamseg.outputs.messages.kafka_sink import parse_kafka_url
from streamseg.outputs.messages.mqtt_sink import parse_mqtt_url
from tests.support.cli import run_cli
from tests.support.videos import make_video


@pytest.fixture(scope="module")
def clip(tmp_path_factory) -> Path:
    """A short generated video: each error comes before its first frame is written."""
    return make_video(tmp_path_factory.mktemp("clip") / "clip.mp4")


def one_line_error(proc) -> str:
    assert proc.returncode != 0 and "Traceback" not in proc.stderr
    lines = [line for line in proc.stderr.splitlines() if line.startswith("streamseg: error:")]
    assert len(lines) == 1, proc.stderr
    return lines[0]


def test_broker_urls_parse_and_bad_ones_say_what_is_expected():
    assert parse_mqtt_url("mqtt://u:p%40ss@broker:1884/cams/front") == (
        "broker",
        1884,
        "cams/front",
        "u",
        "p@ss",
        False,
    )
    assert parse_mqtt_url("mqtts://broker") == ("broker", 8883, "streamseg", None, None, True)
    assert parse_kafka_url("kafka://k1:9092,k2:9092/frames") == ("k1:9092,k2:9092", "frames")
    for bad in ("http://broker/x", "mqtt:///x", "mqtt://b/cams/#"):
        with pytest.raises(ConfigError, match="--mqtt"):
            parse_mqtt_url(bad)
    with pytest.raises(ConfigError, match="kafka://HOST:PORT/TOPIC"):
        parse_kafka_url("kafka://k1:9092")


def test_bad_mqtt_url_is_one_line(clip, duc_onnx):
    pytest.importorskip("paho", reason="needs the mqtt extra (paho-mqtt)")
    line = one_line_error(
        run_cli(
            "run", str(clip), "--model", str(duc_onnx), "--max-frames", "1", "--mqtt", "http://user:secret@127.0.0.1/x"
        )
    )
    assert "expected mqtt://HOST[:PORT]/TOPIC" in line and "secret" not in line


@pytest.mark.skipif(importlib.util.find_spec("foxglove") is None, reason="needs the foxglove extra")
def test_foxglove_port_in_use_is_one_line(clip, duc_onnx, tmp_path):
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        proc = run_cli(
            "run",
            str(clip),
            "--model",
            str(duc_onnx),
            "--max-frames",
            "1",
            "--foxglove",
            str(port),
            "--mcap",
            str(tmp_path / "x.mcap"),
        )
    assert f"--foxglove {port}: cannot listen on 127.0.0.1:{port}" in one_line_error(proc)


@pytest.mark.slow
def test_kafka_without_its_extra_says_what_to_install(clip, duc_onnx):
    """As a machine without confluent-kafka sees it, whether or not this one has it."""
    code = (
        "import sys; sys.modules['confluent_kafka'] = None; from streamseg.cli import main; "
        f"sys.exit(main(['run', {str(clip)!r}, '--model', {str(duc_onnx)!r}, '--max-frames', '1', "
        "'--kafka', 'kafka://127.0.0.1:9092/frames']))"
    )
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert 'pip install "streamseg[kafka]"' in one_line_error(proc)


@pytest.mark.slow
@pytest.mark.parametrize(
    "flag, url, module",
    [
        ("--mqtt", "mqtt://127.0.0.1:1/seg", "paho"),  # the case: nothing listens on port 1
        ("--kafka", "kafka://127.0.0.1:1/seg", "confluent_kafka"),
    ],
)
def test_a_broker_that_never_acknowledged_a_frame_fails_the_run(clip, duc_onnx, tmp_path, flag, url, module):
    pytest.importorskip(module, reason=f"needs the {flag[2:]} extra")
    out = tmp_path / "s.csv"
    proc = run_cli("run", str(clip), "--model", str(duc_onnx), "--max-frames", "4", flag, url, "--summary", str(out))
    line = one_line_error(proc)
    assert proc.returncode == 2
    assert f"no frames delivered to {flag} {url}: the broker acknowledged none of the 4 frames" in line
    assert len(out.read_text().splitlines()) == 1 + 4  # the other outputs are whole all the same
