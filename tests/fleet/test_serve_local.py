"""``streamseg serve`` without --ray: one multi-source pipeline on this machine, with the fleet API on (under the
run API's token, JSON and Origin rules)."""

from __future__ import annotations

import json
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request

import av
import pytest
import yaml

from tests.support.cli import assert_one_line_error, run_cli
from tests.support.onnx_models import SPEC_21, conv_model
from tests.support.servers import free_port
from tests.support.videos import make_video


def cameras_yaml(tmp_path, sources, **options):
    pytest.importorskip("onnx")
    values = yaml.safe_load(SPEC_21.read_text())
    values.update(model=str(conv_model(tmp_path / "conv21.onnx", 21)), input_size=64, sources=sources, **options)
    path = tmp_path / "cams.yaml"
    path.write_text(yaml.safe_dump(values))
    return path


def send(port: int, method: str, path: str, body: bytes | None, **headers: str) -> tuple[int, dict, dict]:
    """(status, JSON answer, headers) of one request to the fleet API."""
    request = urllib.request.Request(f"http://127.0.0.1:{port}{path}", data=body, method=method, headers=headers)
    try:
        with urllib.request.urlopen(request, timeout=30) as response:
            return response.status, json.loads(response.read()), dict(response.headers)
    except urllib.error.HTTPError as err:
        return err.code, json.loads(err.read()), dict(err.headers)


@pytest.mark.slow
def test_one_machine_runs_every_camera_and_sigterm_finalizes_them(tmp_path):
    clip = make_video(tmp_path / "clip.mp4", width=96, height=64, frames=20, fps=10)
    out = tmp_path / "out"
    sources = [{"uri": str(clip), "name": name, "realtime": True, "loop": True} for name in ("a", "b")]
    inputs = tmp_path / "inputs"  # POSTed file cameras must be under it; the file's own cameras are trusted
    inputs.mkdir()
    config = cameras_yaml(tmp_path, sources, outputs=[str(out / "{node}" / "{name}.mp4")], input_root=str(inputs))
    token_file = tmp_path / "token"
    token = "fleet-token-of-the-caller-0123456789"
    token_file.write_text(token + "\n")
    token_file.chmod(0o600)
    port = free_port()
    serve = subprocess.Popen(
        [sys.executable, "-m", "streamseg", "serve", str(config), "--api-port", str(port)]
        + ["--api-token-file", str(token_file)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        deadline = time.monotonic() + 90
        rows: list = []
        while time.monotonic() < deadline:
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{port}/cameras", timeout=5) as response:
                    rows = json.loads(response.read())
            except OSError:
                rows = []
            if len(rows) == 2 and all(r["state"] == "running" and r["last_frame_age_s"] is not None for r in rows):
                break
            time.sleep(0.25)
        assert [(r["name"], r["node"], r["state"]) for r in rows] == [
            ("a", "local", "running"),
            ("b", "local", "running"),
        ]
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/nodes", timeout=5) as response:
            (node,) = json.loads(response.read())
        assert node["node"] == "local" and node["capacity"] is None and node["cameras"] == ["a", "b"]
        # the run API's rules, from the same code: token, then Origin and body type; bad JSON is a 400
        good = {"Authorization": f"Bearer {token}", "Content-Type": "application/json"}
        body = json.dumps({"uri": str(clip), "name": "c"}).encode()
        status, answer, headers = send(port, "POST", "/cameras", body, **{**good, "Authorization": "Bearer wrong"})
        assert status == 401 and headers.get("WWW-Authenticate", "").startswith("Bearer"), answer
        status, answer, _ = send(port, "POST", "/cameras", body, **good, Origin="http://evil.example")
        assert status == 403 and "origin" in answer["error"], answer
        status, answer, _ = send(port, "POST", "/cameras", body, **{**good, "Content-Type": "text/plain"})
        assert status == 403 and "application/json" in answer["error"], answer
        status, answer, _ = send(port, "POST", "/cameras", b"[" * 40 + b"]" * 40, **good)
        assert status == 400 and "nested deeper" in answer["error"], answer
        # confined as the run API's POSTs: files under --input-root, outputs under the output root, no loopback
        status, answer, _ = send(port, "POST", "/cameras", body, **good)
        assert status == 403 and "not under --input-root" in answer["error"], answer
        loopback = json.dumps({"uri": "http://127.0.0.1:1/live.m3u8", "name": "c"}).encode()
        status, answer, _ = send(port, "POST", "/cameras", loopback, **good)
        assert status == 403 and "--allow-loopback-sources" in answer["error"], answer
        elsewhere = {"uri": "rtsp://192.0.2.1/cam", "name": "c", "outputs": [str(tmp_path / "elsewhere.mp4")]}
        status, answer, _ = send(port, "POST", "/cameras", json.dumps(elsewhere).encode(), **good)
        assert status == 403 and "outside the output root" in answer["error"], answer
        assert [r["name"] for r in send(port, "GET", "/cameras", None)[1]] == ["a", "b"]  # nothing refused ran
        removed = send(
            port, "DELETE", "/cameras/b", None, Authorization=f"Bearer {token}", Origin=f"http://127.0.0.1:{port}"
        )
        assert removed[:2] == (200, {"removed": "b"})
        serve.send_signal(signal.SIGTERM)
        _, stderr = serve.communicate(timeout=60)
    finally:
        if serve.poll() is None:
            serve.kill()
            serve.communicate()
    assert serve.returncode == 0, stderr
    assert "streamseg: stopped" in stderr and "Traceback" not in stderr
    assert f"API token in {token_file}" in stderr and token not in stderr
    assert token_file.read_text() == token + "\n"  # the caller's own file: read, never removed
    for name in ("a", "b"):  # {node} is this machine's "local"; each file finalized, decodable to its end
        with av.open(str(out / "local" / f"{name}.mp4")) as container:
            assert sum(1 for _ in container.decode(video=0)) > 0


def test_a_file_without_cameras_is_one_line(tmp_path):
    config = cameras_yaml(tmp_path, [])
    assert_one_line_error(run_cli("serve", str(config)), "no cameras")


def test_unknown_key_is_one_line(tmp_path):
    config = cameras_yaml(tmp_path, ["rtsp://127.0.0.1:1/x"], fleet_size=3)
    assert_one_line_error(run_cli("serve", str(config)), "fleet_size: unknown key")


@pytest.mark.slow
def test_a_ray_address_nobody_listens_on_is_one_line(tmp_path):
    pytest.importorskip("ray")
    config = cameras_yaml(tmp_path, ["rtsp://127.0.0.1:1/x"])
    proc = run_cli("serve", str(config), "--ray", f"127.0.0.1:{free_port()}", timeout=60)
    assert_one_line_error(proc, "no Ray cluster there", "ray start --head")


def test_an_api_port_in_use_is_one_line(tmp_path):
    config = cameras_yaml(tmp_path, ["rtsp://127.0.0.1:1/x"])
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        proc = run_cli("serve", str(config), "--api-port", str(port), timeout=60)
    assert_one_line_error(proc, f"--api-port {port}: cannot listen on 127.0.0.1:{port}")
