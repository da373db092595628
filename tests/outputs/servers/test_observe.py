"""Prometheus /metrics and /health on a real local server; the offline report."""

from __future__ import annotations

import csv
import json
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request

import numpy as np
import pytest
from PIL import Image

from streamseg import Pipeline
from streamseg.models import spec_from_onnx
from streamseg.outputs.servers import MetricsServer
from tests.support.cli import run_cli, run_segment

pytest.importorskip("prometheus_client", reason="needs the observe extra (prometheus-client)")
from prometheus_client.parser import text_string_to_metric_families

STAGES = ["decode", "preprocess", "infer", "composite", "output"]


def get(url: str) -> tuple[int, bytes]:
    try:
        with urllib.request.urlopen(url, timeout=10) as response:
            return response.status, response.read()
    except urllib.error.HTTPError as err:
        return err.code, err.read()


def samples(text: str) -> dict[tuple[str, tuple], float]:
    """Every sample of a /metrics page, keyed by (name, sorted labels)."""
    return {
        (s.name, tuple(sorted(s.labels.items()))): s.value
        for family in text_string_to_metric_families(text)
        for s in family.samples
    }


def test_metrics_and_health_during_a_run(car_video, duc_onnx):
    frames = 6
    with Pipeline(car_video, model=duc_onnx, max_frames=frames, metrics_port=0) as pipeline:
        base = pipeline.metrics.url
        assert pipeline.metrics.url.startswith("http://127.0.0.1:")  # local unless told otherwise
        for result in pipeline:
            if result.index == 2:  # mid-run, the page reflects the live pipeline
                status, body = get(base + "health")
                assert status == 200 and json.loads(body)["status"] == "running"
                mid = samples(get(base + "metrics")[1].decode())
                assert mid[("streamseg_up", (("state", "running"),))] == 1.0
                assert mid[("streamseg_frames_total", (("stage", "output"),))] >= 3
        pipeline.stop()  # the source ran out; only draining and closing are left
        status, body = get(base + "health")
        assert status == 503 and json.loads(body)["status"] == "stopped"
        end = samples(get(base + "metrics")[1].decode())

    for stage in STAGES:
        key = (("stage", stage),)
        assert end[("streamseg_frames_total", key)] == frames
        # a per-stage histogram: cumulative buckets, count = frames, sum = the stage's busy time
        assert end[("streamseg_stage_latency_seconds_count", key)] == frames
        assert end[("streamseg_stage_latency_seconds_bucket", (("le", "+Inf"), ("stage", stage)))] == frames
        assert end[("streamseg_stage_latency_seconds_sum", key)] > 0
        assert end[("streamseg_stage_cpu_seconds_total", key)] >= 0  # the stage thread's own CPU time
    assert end[("streamseg_process_cpu_seconds_total", ())] > 0  # every thread's, the engine's too
    buckets = [
        v
        for (name, labels), v in end.items()
        if name == "streamseg_stage_latency_seconds_bucket" and ("stage", "infer") in labels
    ]
    assert buckets == sorted(buckets) and buckets[0] < frames  # inference takes longer than 1 ms
    assert end[("streamseg_frame_latency_seconds_count", ())] == frames
    assert end[("streamseg_fps", ())] > 0
    for queue in ["decoded", "prepared", "inferred", "composited", "results"]:
        assert end[("streamseg_queue_capacity", (("queue", queue),))] == 4
        assert end[("streamseg_queue_depth", (("queue", queue),))] <= 4
        assert end[("streamseg_dropped_frames_total", (("queue", queue),))] == 0  # a file: lossless
    assert end[("streamseg_reconnects_total", ())] == 0
    assert end[("streamseg_output_reconnects_total", ())] == 0
    assert end[("streamseg_engine_streams", ())] == 1  # ONNX Runtime: one call at a time
    assert end[("streamseg_infer_in_flight", ())] == 0  # the source has ended
    assert not any(name.startswith("streamseg_gpu") for name, _ in end)  # no GPU here, no invented figure
    with pytest.raises(OSError):  # closed with the pipeline
        urllib.request.urlopen(base + "health", timeout=2)


def test_health_says_starting_before_the_stages_run(car_video, duc_onnx):
    pipeline = Pipeline(car_video, model=duc_onnx)
    server = MetricsServer(pipeline, 0)
    try:
        status, body = get(server.url + "health")
        assert status == 200 and json.loads(body)["status"] == "starting"
        assert get(server.url + "nothing")[0] == 404
    finally:
        server.close()


def test_metrics_port_in_use_is_one_clear_error(car_video, duc_onnx):
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        proc = run_segment(car_video, duc_onnx, "--summary", "x.csv", "--metrics-port", str(port))
    assert proc.returncode != 0 and "Traceback" not in proc.stderr
    assert (
        proc.stderr.strip() == f"streamseg: error: --metrics-port {port}: cannot listen on 127.0.0.1:{port}: "
        "Address already in use"
    )


def test_report_plots_class_areas_over_time_and_writes_csv(car_video, duc_onnx, tmp_path):
    pytest.importorskip("matplotlib", reason="needs the plots extra (matplotlib)")
    run_segment(car_video, duc_onnx, max_frames=4, labels_out=tmp_path, labels_format="npz", check=True)
    proc = run_cli("report", str(tmp_path), "-o", str(tmp_path / "areas.png"), "--top", "5", check=True)
    assert f"wrote {tmp_path / 'areas.png'} and {tmp_path / 'areas.csv'} (4 frames" in proc.stdout

    with np.load(tmp_path / "labels.npz") as archive:
        truth = [np.bincount(archive[f"f{i:06d}"].ravel(), minlength=19) / (432 * 768) for i in range(4)]
    with open(tmp_path / "areas.csv", newline="") as file:
        rows = list(csv.DictReader(file))
    assert [int(r["index"]) for r in rows] == [0, 1, 2, 3]
    assert [float(r["time"]) for r in rows] == pytest.approx([0, 0.08, 0.16, 0.24])
    classes = list(rows[0])[2:]
    means = [np.mean([float(r[c]) for r in rows]) for c in classes]
    assert means == sorted(means, reverse=True)  # largest area first
    names = spec_from_onnx(duc_onnx).classes
    for i, row in enumerate(rows):  # the CSV's fractions are the label maps' own
        for c in classes:
            assert float(row[c]) == pytest.approx(truth[i][names.index(c)], abs=1e-6)

    refused = run_cli("report", str(tmp_path / "summary.csv"), "-o", str(tmp_path / "summary.png"))
    assert refused.returncode != 0 and "is the summary being read" in refused.stderr  # never overwrite the input
    assert (tmp_path / "summary.csv").read_text().startswith("index,pts,time,latency_ms,")

    with Image.open(tmp_path / "areas.png") as png:
        picture = np.asarray(png.convert("RGB"))
    assert picture.shape == (450, 1000, 3)
    assert len(np.unique(picture.reshape(-1, 3), axis=0)) > 10  # a drawn plot, not a blank canvas


def test_report_on_a_non_summary_is_one_clear_error(tmp_path):
    bad = tmp_path / "notes.csv"
    bad.write_text("a,b\n1,2\n")
    proc = run_cli("report", str(bad))
    assert proc.returncode != 0 and "Traceback" not in proc.stderr
    assert (
        proc.stderr.strip() == f"streamseg: error: {bad}: not a streamseg summary (expected columns "
        "index,pts,time,latency_ms)"
    )


@pytest.mark.live
@pytest.mark.slow
def test_health_and_reconnects_follow_a_live_source_through_a_server_restart(duc_onnx, tmp_path):
    """A real RTSP camera behind a relay that goes down: /health says reconnecting, then running, counted once."""
    from tests.support.servers import Camera, RtspRelay, free_port, relay_missing

    reason = relay_missing()
    if reason:
        pytest.skip(reason)
    port = free_port()
    base = f"http://127.0.0.1:{port}/"
    with RtspRelay("cam") as relay, Camera(relay.url("cam-in"), fps=15, size="320x192"):
        proc = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "streamseg",
                "run",
                relay.url("cam"),
                "--model",
                str(duc_onnx),
                "--summary",
                str(tmp_path / "s.csv"),
                "--metrics-port",
                str(port),
                "--reconnect-delay",
                "0.3",
                "--reconnect-max-delay",
                "1",
                "--no-progress",
            ],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
            text=True,
        )
        try:
            before = wait_for_health(base, lambda h: h["status"] == "running" and h["frames"] >= 3, proc)
            relay.stop()
            wait_for_health(base, lambda h: h["status"] == "reconnecting", proc)
            relay.start()
            after = wait_for_health(
                base, lambda h: h["status"] == "running" and h["frames"] > before["frames"] + 3, proc
            )
            final = samples(get(base + "metrics")[1].decode())
        finally:
            proc.send_signal(signal.SIGTERM)
            err = proc.communicate(timeout=60)[1]
    assert proc.returncode == 0, err[-2000:]
    assert after["frames"] > before["frames"]
    assert final[("streamseg_reconnects_total", ())] >= 1
    assert final[("streamseg_up", (("state", "running"),))] == 1.0


def wait_for_health(base: str, wanted, proc: subprocess.Popen, timeout: float = 60) -> dict:
    deadline = time.monotonic() + timeout
    last = None
    while time.monotonic() < deadline and proc.poll() is None:
        try:
            _, body = get(base + "health")
            last = json.loads(body)
            if wanted(last):
                return last
        except OSError:
            pass  # not listening yet
        time.sleep(0.05)
    raise AssertionError(f"/health never matched; last {last}, run exit {proc.poll()}")
