"""``streamseg serve --ray`` on a real two-node Ray cluster on 127.0.0.1, four cameras from an RTSP relay.

Placement is 2 + 2; the second node is killed (SIGKILL to its raylet and workers, as a machine dies); its
cameras run on the head, their label maps keep growing, and ``GET /cameras`` says so. A camera is added over
the API and one deleted; SIGINT stops the fleet with exit 0, and every video file decodes to its end.
"""

from __future__ import annotations

import importlib.util
import json
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

import av
import pytest
import yaml

from tests.support.onnx_models import SPEC_21, conv_model
from tests.support.paths import ROOT
from tests.support.ray_nodes import RayNode
from tests.support.servers import Camera, RtspRelay, free_port, relay_missing

pytestmark = [pytest.mark.slow, pytest.mark.live]
NAMES = ("c1", "c2", "c3", "c4")


@pytest.fixture
def cluster(tmp_path):
    if importlib.util.find_spec("ray") is None:
        pytest.skip("needs the ray extra (pip install streamseg[ray])")
    pytest.importorskip("onnx")
    reason = relay_missing()
    if reason:
        pytest.skip(reason)
    short = Path(tempfile.mkdtemp(prefix="ssfleet"))  # Ray's socket paths must stay short
    port = free_port()
    head = RayNode(tmp_path / "head.log", port=port, temp_dir=short)
    address = f"127.0.0.1:{port}"
    nodes = [head]
    try:
        nodes.append(RayNode(tmp_path / "second.log", address=address))
        yield address, head, nodes[1]
    finally:
        for node in reversed(nodes):
            node.stop()
        shutil.rmtree(short, ignore_errors=True)


def get(port: int, path: str):
    with urllib.request.urlopen(f"http://127.0.0.1:{port}{path}", timeout=10) as response:
        return json.loads(response.read())


def send(port: int, method: str, path: str, token: str, body: dict | None = None) -> tuple[int, dict]:
    request = urllib.request.Request(
        f"http://127.0.0.1:{port}{path}",
        data=json.dumps(body).encode() if body is not None else None,
        method=method,
        headers={"Authorization": f"Bearer {token}", "Content-Type": "application/json"},
    )
    try:
        with urllib.request.urlopen(request, timeout=30) as response:
            return response.status, json.loads(response.read())
    except urllib.error.HTTPError as err:
        return err.code, json.loads(err.read())


def wait_for(what, check, timeout: float):
    """Poll ``check`` until it returns something true; the hang guard is generous (no speed is asserted)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        found = check()
        if found:
            return found
        time.sleep(0.25)
    raise AssertionError(f"timed out waiting for {what}")


def label_maps(root: Path, name: str) -> int:
    """Label maps a camera wrote, over every segment folder (labels/c1, labels/c1-00002 …)."""
    return sum(len(list(folder.glob("*.png"))) for folder in root.glob(f"{name}*") if folder.is_dir())


def test_cameras_move_to_the_head_when_the_second_node_dies(cluster, tmp_path):
    address, _head, second = cluster
    model = conv_model(tmp_path / "conv21.onnx", 21)
    out, labels = tmp_path / "out", tmp_path / "labels"
    out.mkdir()
    relay = RtspRelay(*NAMES, "c5").start()
    cameras = [Camera(relay.url(f"{name}-in"), fps=10, size="160x96") for name in (*NAMES, "c5")]
    for camera in cameras:
        camera.__enter__()
    options = yaml.safe_load(SPEC_21.read_text())
    options.update(
        model=str(model),
        input_size=64,
        outputs=[str(out / "{name}.mp4")],
        labels_out=str(labels / "{name}"),
        sources=[{"uri": relay.url(name), "name": name} for name in NAMES],
    )
    config = tmp_path / "cams.yaml"
    config.write_text(yaml.safe_dump(options))
    port = free_port()
    log = (tmp_path / "serve.log").open("w")
    command = [sys.executable, "-m", "streamseg", "serve", str(config), "--ray", address, "--api-port", str(port),
               "--cameras-per-node", "4"]  # fmt: skip
    serve = subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT, cwd=ROOT)
    try:
        rows = wait_for(
            "four cameras running on two nodes",
            lambda: (
                (lambda c: c if len(c) == 4 and all(r["state"] == "running" for r in c) else None)(
                    get(port, "/cameras")
                )
                if _listening(port)
                else None
            ),
            timeout=150,
        )
        # the service dies; started again, it re-attaches to the cameras running on the nodes, not twice
        serve.kill()
        serve.wait()
        serve = subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT, cwd=ROOT)
        again = wait_for("the API again", lambda: _listening(port) and get(port, "/cameras"), timeout=60)
        assert {(r["name"], r["node"], r["segment"]) for r in again} == {(r["name"], r["node"], 1) for r in rows}
        assert "re-attached to the running fleet" in (tmp_path / "serve.log").read_text()
        nodes = wait_for(
            "both node pipelines reporting",
            lambda: (lambda n: n if len(n) == 2 and all(r["state"] == "ready" for r in n.values()) else None)(
                {r["node"]: r for r in get(port, "/nodes")}
            ),
            timeout=30,
        )
        assert sorted(len(n["cameras"]) for n in nodes.values()) == [2, 2], nodes
        assert all(n["capacity"] == 4 for n in nodes.values())
        assert len(get(port, "/sd")) == 2  # each node pipeline's own /metrics
        text = (tmp_path / "serve.log").read_text()
        killed_token, token_path = (part.split()[0] for part in text.split("API token in ")[1:])
        Path(killed_token).unlink()  # the killed serve's; each start makes its own token
        token = Path(token_path).read_text().strip()
        assert token not in text
        status, refused = send(port, "DELETE", "/cameras/c1", token="wrong")
        assert status == 401 and "c1" in {r["name"] for r in get(port, "/cameras")}, refused

        # the second node dies: find its cameras, kill it
        (on_head,) = [node for node, row in nodes.items() if row["head"]]
        movers = sorted(r["name"] for r in rows if r["node"] != on_head)
        assert len(movers) == 2
        grown_from = {name: label_maps(labels, name) for name in NAMES}
        killed = time.monotonic()
        second.kill()
        rows = wait_for(
            "all four running on the head",
            lambda: (lambda c: c if all(r["node"] == on_head and r["state"] == "running" for r in c) else None)(
                get(port, "/cameras")
            ),
            timeout=90,
        )
        print(f"frames flowing on the head again {time.monotonic() - killed:.1f} s after the kill")
        assert {r["name"] for r in rows} == set(NAMES)
        assert all(r["segment"] == 2 for r in rows if r["name"] in movers)  # a new segment, not overwritten
        assert {n["node"]: len(n["cameras"]) for n in get(port, "/nodes") if n["cameras"]} == {on_head: 4}
        for name in NAMES:  # every camera's label maps keep growing
            moment = label_maps(labels, name)
            wait_for(f"{name}'s label maps to grow", lambda n=name, m=moment: label_maps(labels, n) > m, timeout=60)
            assert label_maps(labels, name) > grown_from[name]
        for name in movers:
            assert (out / f"{name}-00002.mp4").exists() or wait_for(
                f"{name}'s second segment", lambda n=name: (out / f"{n}-00002.mp4").exists(), timeout=30
            )
        metrics = urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=10).read().decode()
        assert "streamseg_fleet_moves_total 2" in metrics

        # a camera added over the API waits unplaced while the head is full; deleting one makes room for it
        status, placed = send(port, "POST", "/cameras", token, {"uri": relay.url("c5"), "name": "c5"})
        assert (status, placed) == (201, {"name": "c5", "node": None})
        assert {r["name"]: r["state"] for r in get(port, "/cameras")}["c5"] == "unplaced"
        assert send(port, "DELETE", "/cameras/c1", token) == (200, {"removed": "c1"})
        rows = wait_for(
            "c5 running on the head, c1 gone",
            lambda: (lambda c: c if c.get("c5", {}).get("state") == "running" and "c1" not in c else None)(
                {r["name"]: r for r in get(port, "/cameras")}
            ),
            timeout=60,
        )
        assert rows["c5"]["node"] == on_head
        wait_for("c5's label maps", lambda: label_maps(labels, "c5") > 0, timeout=30)

        serve.send_signal(signal.SIGINT)
        assert serve.wait(timeout=120) == 0, (tmp_path / "serve.log").read_text()[-3000:]
        assert not Path(token_path).exists()  # a token serve made goes with it
    finally:
        if serve.poll() is None:
            serve.kill()
            serve.wait()
        log.close()
        for camera in cameras:
            camera.__exit__()
        relay.stop()
    videos = sorted(out.glob("*.mp4"))
    assert {v.name for v in videos} >= {f"{n}.mp4" for n in (*NAMES, "c5")} | {f"{n}-00002.mp4" for n in movers}
    for video in videos:  # every file, finalized or cut by the kill, decodes to its end
        with av.open(str(video)) as container:
            frames = sum(1 for _ in container.decode(video=0))
        assert frames > 0, video


def _listening(port: int) -> bool:
    try:
        get(port, "/nodes")
    except OSError:
        return False
    return True
