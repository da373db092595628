"""What a ``POST /sources`` may touch, against a running pipeline, with a real HTTP client on 127.0.0.1.

Outputs resolve (symlinks followed) under the output root, file sources under ``--input-root``,
network sources use allowed schemes and never this machine's HTTP; what the run already writes is a
collision; templates take no format specs; ``--max-sources`` caps the sources running at once.
"""

from __future__ import annotations

import importlib.util
import json
import resource
import threading
import time
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any

import pytest

from streamseg import Pipeline
from tests.support.videos import make_video, read_video

pytest.importorskip("prometheus_client", reason="needs the observe extra (prometheus-client)")
HAS_MCAP = importlib.util.find_spec("mcap_ros2") is not None


class Run:
    def __init__(self, pipeline: Pipeline, root: Path):
        self.pipeline, self.root = pipeline, root
        self.inputs, self.out, self.outside = root / "inputs", root / "out", root / "outside"
        assert pipeline.metrics is not None
        self.base = f"http://127.0.0.1:{pipeline.metrics.port}"

    def send(self, method: str, path: str, body: Any = None, *, token: bool = True) -> tuple[int, Any]:
        headers = {"Content-Type": "application/json"}
        if token:
            headers["Authorization"] = f"Bearer {self.pipeline.api_token}"
        data = json.dumps(body).encode() if body is not None else None
        request = urllib.request.Request(self.base + path, data=data, method=method, headers=headers)
        try:
            with urllib.request.urlopen(request, timeout=10) as response:
                return response.status, json.loads(response.read())
        except urllib.error.HTTPError as err:
            return err.code, json.loads(err.read())

    def post(self, **body: Any) -> tuple[int, Any]:
        return self.send("POST", "/sources", body)

    def rows(self) -> dict[str, dict]:
        return {row["name"]: row for row in self.send("GET", "/sources")[1]}

    def wait(self, predicate, what: str, timeout: float = 60) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if predicate():
                return
            time.sleep(0.1)
        raise AssertionError(f"timed out waiting for {what}")


@pytest.fixture(scope="module")
def run(tmp_path_factory, duc_onnx):
    root = tmp_path_factory.mktemp("api")
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("XDG_RUNTIME_DIR", str(root))
        for folder in ("inputs", "out", "outside"):
            (root / folder).mkdir()
        camera = make_video(root / "inputs" / "cam.mp4", width=64, height=48, frames=10, fps=10)
        make_video(root / "inputs" / "clip.mp4", width=64, height=48, frames=6, fps=10)
        make_video(root / "outside" / "secret.mp4", width=64, height=48, frames=3, fps=10)
        (root / "outside" / "victim.csv").write_text("thesis\n")
        pipeline = Pipeline(
            camera,
            model=duc_onnx,
            outputs=[str(root / "out" / "{name}.mp4")],
            summary=str(root / "out" / "{name}.csv"),
            mcap=str(root / "out" / "run.mcap") if HAS_MCAP else None,
            metrics_port=0,
            input_root=str(root / "inputs"),
            max_sources=2,
            live={"realtime": True, "loop": True},
        )
        pipeline.start()
        consumer = threading.Thread(target=lambda: sum(1 for _ in pipeline), daemon=True)
        consumer.start()
        try:
            one = Run(pipeline, root)
            one.wait(lambda: one.rows().get("cam", {}).get("frames", 0) > 0, "the camera to run")
            yield one
        finally:
            pipeline.stop()
            consumer.join(timeout=60)


def test_the_python_api_hands_over_the_token(run):
    token = run.pipeline.metrics.access.token
    assert run.pipeline.api_token == token.value == token.path.read_text().strip()


def test_a_post_with_token_and_json_starts_the_source_and_it_runs_to_its_end(run):
    assert run.send("POST", "/sources", {"uri": str(run.inputs / "clip.mp4")}, token=False)[0] == 401
    status, answer = run.post(uri=str(run.inputs / "clip.mp4"), name="extra", realtime=False, loop=False)
    assert (status, answer) == (201, {"name": "extra"})
    run.wait(lambda: run.rows()["extra"]["state"] == "ended", "the added file to end")
    assert run.rows()["extra"]["frames"] == 6
    assert len(read_video(run.out / "extra.mp4")[0]) == 6


@pytest.mark.parametrize(
    "body",
    [
        {"outputs": ["{outside}/x.mp4"]},
        {"outputs": ["file:{outside}/x.mp4"]},
        {"outputs": ["{out}/escape/x.mp4"]},  # a symlink inside the root that points out of it
        {"outputs": ["{out}/../outside/x.mp4"]},
        {"outputs": ["hls:{outside}/hls"]},
        {"labels_out": "{outside}/labels"},
        {"summary": "{outside}/victim.csv"},  # was: overwritten with a CSV
    ],
)
def test_outputs_outside_the_output_root_get_403(run, body):
    escape = run.out / "escape"
    if not escape.is_symlink():
        escape.symlink_to(run.outside)
    filled = json.loads(json.dumps(body).replace("{outside}", str(run.outside)).replace("{out}", str(run.out)))
    before = sorted(p.name for p in run.outside.iterdir())
    status, answer = run.post(uri=str(run.inputs / "clip.mp4"), realtime=False, **filled)
    assert status == 403 and "--output-root" in answer["error"] and str(run.out) in answer["error"], answer
    assert sorted(p.name for p in run.outside.iterdir()) == before
    assert (run.outside / "victim.csv").read_text() == "thesis\n"


def test_outputs_through_protocols_streamseg_does_not_write_get_400(run):
    for output in ("md5:{out}/x.md5", "tee:{out}/x.mp4", "pipe:1"):
        status, answer = run.post(uri=str(run.inputs / "clip.mp4"), outputs=[output.format(out=run.out)])
        assert status == 400 and "no output writes" in answer["error"], answer


@pytest.mark.parametrize(
    "uri",
    [
        "{outside}/secret.mp4",  # was: a root-only video copied into a world-readable file
        "file:{outside}/secret.mp4",
        "{inputs}/../outside/secret.mp4",
        "{inputs}/link.mp4",  # a symlink under the input root to a file outside it
        "concat:{inputs}/clip.mp4|{outside}/secret.mp4",
        "subfile,,start,0,end,0,,:{outside}/secret.mp4",
        "http://127.0.0.1:29997/internal-admin",  # was: the process fetched it (server-side request forgery)
        "http://localhost:29997/internal-admin",
        "https://[::1]:29997/",
        "tcp://127.0.0.1:29997",
        "http://169.254.169.254/latest/meta-data/",
        "http://0.0.0.0:29997/",
        "ftp://192.0.2.1/video.mp4",
        "gopher://192.0.2.1/",
    ],
)
def test_sources_outside_the_input_root_or_on_this_machine_get_403(run, uri):
    link = run.inputs / "link.mp4"
    if not link.is_symlink():
        link.symlink_to(run.outside / "secret.mp4")
    filled = uri.format(outside=run.outside, inputs=run.inputs)
    status, answer = run.post(uri=filled, outputs=[str(run.out / "{name}-copy.mp4")])
    assert status == 403, answer
    assert not list(run.out.glob("*-copy.mp4"))


def test_outputs_the_run_holds_are_collisions(run):
    if HAS_MCAP:
        status, answer = run.post(uri=str(run.inputs / "clip.mp4"), summary=str(run.out / "run.mcap"))
        assert status == 400 and "--mcap" in answer["error"], answer  # was: the run's MCAP overwritten by a CSV
        assert (run.out / "run.mcap").read_bytes()[:8] == b"\x89MCAP0\r\n"
    for body in ({"outputs": [str(run.out / "cam.mp4")]}, {"summary": str(run.out / "cam.csv")}):
        status, answer = run.post(uri=str(run.inputs / "clip.mp4"), **body)
        assert status == 400 and "'cam'" in answer["error"], answer
    status, answer = run.post(uri=str(run.inputs / "clip.mp4"), outputs=[str(run.inputs / "cam.mp4")])
    assert status == 403  # another source's input: outside the output root before it is a collision


def test_a_format_spec_in_a_name_template_is_refused_and_memory_does_not_move(run):
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss  # KiB
    for template in ("{name:>300000000}.mp4", "{name!r}.mp4", "{index:0300000000d}.mp4"):
        status, answer = run.post(uri=str(run.inputs / "clip.mp4"), outputs=[str(run.out / template)])
        assert status == 400 and "no format specs" in answer["error"], answer
    assert resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - peak < 50 * 1024  # was: +2.4 GB


def test_max_sources_caps_the_sources_running_at_once(run):
    run.wait(lambda: all(r["state"] != "running" for n, r in run.rows().items() if n != "cam"), "added files to end")
    status, _ = run.post(uri=str(run.inputs / "clip.mp4"), name="looping", realtime=True, loop=True)
    assert status == 201
    status, answer = run.post(uri=str(run.inputs / "clip.mp4"), name="third", realtime=True, loop=True)
    assert status == 400 and "--max-sources" in answer["error"], answer
    assert run.send("DELETE", "/sources/looping", token=False)[0] == 401
    assert run.send("DELETE", "/sources/looping") == (200, {"removed": "looping"})
