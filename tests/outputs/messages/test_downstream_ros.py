"""ROS 2 messages in MCAP files from real footage, read back with the mcap library and with rosbags."""

from __future__ import annotations

import importlib.util
import json
import signal
import subprocess
import sys
import time
from pathlib import Path

import av
import cv2
import numpy as np
import pytest
from PIL import Image

from tests.support.cli import run_cli, run_segment
from tests.support.paths import ROOT

pytestmark = pytest.mark.skipif(
    any(importlib.util.find_spec(m) is None for m in ("mcap", "mcap_ros2", "rosbags")),
    reason='needs the ros extra and rosbags (pip install "streamseg[ros]" rosbags)',
)

FRAMES = 6
PREFIX = "/streamseg/car_detection"
TYPES = {
    f"{PREFIX}/camera/compressed": "sensor_msgs/msg/CompressedImage",
    f"{PREFIX}/labels": "sensor_msgs/msg/Image",
    f"{PREFIX}/overlay/compressed": "sensor_msgs/msg/CompressedImage",
    f"{PREFIX}/class_fractions": "std_msgs/msg/Float32MultiArray",
    f"{PREFIX}/stats": "std_msgs/msg/String",
}


@pytest.fixture(scope="module")
def mcap_run(car_video, duc_onnx, tmp_path_factory) -> Path:
    """``run -o run.mcap --labels-out labels/`` on the first frames of the real footage."""
    folder = tmp_path_factory.mktemp("mcap")
    run_segment(
        car_video, duc_onnx, "-o", str(folder / "run.mcap"), max_frames=FRAMES, labels_out=folder / "labels", check=True
    )
    return folder


def media_times_ns(video: Path, count: int) -> list[int]:
    with av.open(str(video)) as container:
        stream = container.streams.video[0]
        times = [
            round(f.pts * stream.time_base * 1_000_000_000) for _, f in zip(range(count), container.decode(stream))
        ]
    return times


def png_labels(folder: Path) -> list[np.ndarray]:
    return [np.asarray(Image.open(p)) for p in sorted(folder.glob("*.png"))]


def test_mcap_reader_gets_standard_schemas_label_maps_and_media_times(mcap_run, car_video):
    from mcap.reader import make_reader
    from mcap_ros2.decoder import DecoderFactory

    with open(mcap_run / "run.mcap", "rb") as file:
        reader = make_reader(file, decoder_factories=[DecoderFactory()])
        summary = reader.get_summary()
        assert reader.get_header().profile == "ros2"
        schemas = {c.topic: summary.schemas[c.schema_id] for c in summary.channels.values()}
        assert {t: s.name for t, s in schemas.items()} == TYPES
        assert {s.encoding for s in schemas.values()} == {"ros2msg"}
        assert {c.message_encoding for c in summary.channels.values()} == {"cdr"}
        assert summary.statistics.channel_message_counts == {c: FRAMES for c in summary.channels}
        meta = {m.name: m.metadata for m in reader.iter_metadata()}
        by_topic: dict[str, list] = {}
        for _, channel, message, decoded in reader.iter_decoded_messages():
            by_topic.setdefault(channel.topic, []).append((message, decoded))
    classes = json.loads(meta["streamseg"]["classes"])
    assert len(classes) == 19 and classes[0] == "road" and len(json.loads(meta["streamseg"]["palette"])) == 19
    assert meta["streamseg.source.car_detection"]["source"] == car_video.stem  # the source's name

    times = media_times_ns(car_video, FRAMES)
    for topic, messages in by_topic.items():  # every channel stamped with the frame's media time
        assert [m.log_time for m, _ in messages] == times, topic
    for message, decoded in by_topic[f"{PREFIX}/labels"]:
        assert decoded.header.stamp.sec * 1_000_000_000 + decoded.header.stamp.nanosec == message.log_time
    expected = png_labels(mcap_run / "labels")
    labels = [np.frombuffer(d.data, np.uint8).reshape(d.height, d.width) for _, d in by_topic[f"{PREFIX}/labels"]]
    assert [d.encoding for _, d in by_topic[f"{PREFIX}/labels"]] == ["mono8"] * FRAMES
    assert len(labels) == len(expected) == FRAMES
    assert all(np.array_equal(a, b) for a, b in zip(labels, expected))

    # the camera channel is the decoded footage, JPEG'd
    with av.open(str(car_video)) as container:
        first = next(container.decode(video=0)).to_ndarray(format="rgb24")
    camera = cv2.imdecode(np.frombuffer(by_topic[f"{PREFIX}/camera/compressed"][0][1].data, np.uint8), cv2.IMREAD_COLOR)
    assert by_topic[f"{PREFIX}/camera/compressed"][0][1].format == "jpeg"
    assert np.abs(cv2.cvtColor(camera, cv2.COLOR_BGR2RGB).astype(int) - first).mean() < 3
    # class fractions agree with the label maps and with the stats JSON
    for (_, fractions), (_, stats), label in zip(
        by_topic[f"{PREFIX}/class_fractions"], by_topic[f"{PREFIX}/stats"], expected
    ):
        counted = np.bincount(label.ravel(), minlength=19) / label.size
        assert np.allclose(fractions.data, counted, atol=1e-6)
        row = json.loads(stats.data)
        assert row["fractions"] == {c: round(float(f), 6) for c, f in zip(classes, counted) if f > 0}


def test_rosbags_reads_the_label_maps_frame_exact(mcap_run, car_video):
    from rosbags.highlevel import AnyReader
    from rosbags.typesys import Stores, get_typestore

    with AnyReader([mcap_run / "run.mcap"], default_typestore=get_typestore(Stores.ROS2_HUMBLE)) as reader:
        assert {c.topic: c.msgtype for c in reader.connections} == TYPES
        connection = next(c for c in reader.connections if c.topic == f"{PREFIX}/labels")
        read = [
            (stamp, reader.deserialize(raw, connection.msgtype))
            for _, stamp, raw in reader.messages(connections=[connection])
        ]
    assert [stamp for stamp, _ in read] == media_times_ns(car_video, FRAMES)
    labels = [m.data.reshape(m.height, m.width) for _, m in read]
    assert all(np.array_equal(a, b) for a, b in zip(labels, png_labels(mcap_run / "labels"), strict=True))


@pytest.mark.slow
def test_report_plots_the_class_fractions_of_an_mcap(mcap_run):
    out = mcap_run / "report.png"
    proc = run_cli("report", str(mcap_run / "run.mcap"), "-o", str(out), check=True)
    assert f"({FRAMES} frames" in proc.stdout
    table = np.genfromtxt(out.with_suffix(".csv"), delimiter=",", names=True)
    summary = np.genfromtxt(mcap_run / "labels" / "summary.csv", delimiter=",", names=True)
    assert np.allclose(table["time"], summary["time"])
    for name in table.dtype.names[2:]:  # the same fractions as the run's summary.csv
        assert np.allclose(table[name], summary[name], atol=2e-6), name
    assert Image.open(out).size[0] > 500


@pytest.mark.slow
def test_sigkill_mid_run_leaves_every_flushed_frame_readable(car_video, duc_onnx, tmp_path):
    from mcap.exceptions import EndOfFile
    from mcap.records import Channel, Message
    from mcap.stream_reader import StreamReader
    from mcap_ros2.decoder import DecoderFactory

    path = tmp_path / "killed.mcap"
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "streamseg",
            "run",
            str(car_video),
            "--model",
            str(duc_onnx),
            "-o",
            str(path),
            "--no-progress",
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        deadline = time.monotonic() + 120
        while (not path.exists() or path.stat().st_size < 1_500_000) and time.monotonic() < deadline:
            time.sleep(0.2)  # a few frames in (each ~280 kB)
    finally:
        proc.send_signal(signal.SIGKILL)
        proc.wait(timeout=30)
    assert proc.returncode == -signal.SIGKILL

    channels, counts, labels = {}, {}, []
    with open(path, "rb") as file, pytest.raises(EndOfFile):  # no footer: the run never closed the file
        for record in StreamReader(file).records:
            if isinstance(record, Channel):
                channels[record.id] = record.topic
            elif isinstance(record, Message):
                topic = channels[record.channel_id]
                counts[topic] = counts.get(topic, 0) + 1
                if topic.endswith("/labels"):
                    labels.append(record.data)
    frames = counts[f"{PREFIX}/labels"]
    assert frames >= 3 and counts == {t: frames for t in TYPES}  # whole frames only: one chunk each
    with open(path, "rb") as file:  # decode the last complete label map
        schema = next(r for r in StreamReader(file).records if getattr(r, "name", "") == "sensor_msgs/msg/Image")
    last = DecoderFactory().decoder_for("cdr", schema)(labels[-1])
    assert (last.height, last.width, last.encoding) == (432, 768, "mono8")
    report = run_cli("report", str(path), "-o", str(tmp_path / "r.png"), check=True)
    assert f"({frames} frames" in report.stdout and "ends early" in report.stderr


@pytest.mark.slow
def test_mcap_and_video_outputs_together_and_one_mcap_per_run(car_video, duc_onnx, tmp_path):
    proc = run_cli(
        "run",
        str(car_video),
        "--model",
        str(duc_onnx),
        "--max-frames",
        "2",
        "-o",
        str(tmp_path / "a.mcap"),
        "-o",
        str(tmp_path / "b.mcap"),
    )
    assert proc.returncode != 0 and "one MCAP file per run" in proc.stderr and "Traceback" not in proc.stderr
    run_cli(
        "run",
        str(car_video),
        "--model",
        str(duc_onnx),
        "--max-frames",
        "2",
        "-o",
        str(tmp_path / "a.mp4"),
        "--mcap",
        str(tmp_path / "a.mcap"),
        check=True,
    )
    with av.open(str(tmp_path / "a.mp4")) as container:
        assert sum(1 for _ in container.decode(video=0)) == 2
    from rosbags.highlevel import AnyReader

    with AnyReader([tmp_path / "a.mcap"]) as reader:
        assert reader.message_count == 2 * len(TYPES)


def test_the_read_mcap_example_prints_every_label_map(mcap_run):
    example = ROOT / "examples" / "read_mcap.py"
    proc = subprocess.run(
        [sys.executable, str(example), str(mcap_run / "run.mcap")],
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )
    lines = proc.stdout.splitlines()
    assert len(lines) == FRAMES and all(line.startswith(f"{PREFIX}/labels ") for line in lines)
    assert lines[1].split()[1:4] == ["0.08", "(432,", "768)"]
