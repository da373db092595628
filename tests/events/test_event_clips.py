"""Events on a real run: the red-wins model on red-square videos, so the frames where an event starts and
ends are known. The clip, its sidecar and thumbnail, the Python API's callbacks and iterator, the webhook
(a local HTTP server), the cooldown, overlapping events in one clip, coverage in the summary, /metrics,
the preview's regions, MCAP channels, and a source added over the REST API with its own rules."""

from __future__ import annotations

import csv
import json
import threading
import urllib.request
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest
import yaml

from streamseg import Pipeline
from streamseg.errors import ConfigError
from streamseg.events.clips import KEY_SECONDS
from tests.events.conftest import CROSSWALK
from tests.support.videos import read_video

RULE = "class1 in crosswalk > 0.05"


def pipeline(red_wins, video: Path, rules: list[str], **options) -> Pipeline:
    model, spec = red_wins
    return Pipeline(
        str(video), model=model, spec=yaml.safe_load(spec.read_text()), rois=[CROSSWALK], events=rules, **options
    )


def clips_in(folder: Path) -> tuple[list[Path], list[dict]]:
    clips = sorted(folder.glob("*.mp4"))
    return clips, [json.loads(p.with_suffix(".json").read_text()) for p in clips]


class Receiver:
    """A local HTTP server that keeps every JSON body POSTed to it."""

    def __init__(self) -> None:
        self.bodies: list[dict] = []
        self.arrived = threading.Condition()
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
                self.send_response(200)
                self.end_headers()
                with receiver.arrived:
                    receiver.bodies.append(body)
                    receiver.arrived.notify_all()

            def log_message(self, *args) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_port}/hook"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def wait_for(self, count: int, timeout: float = 30) -> list[dict]:
        with self.arrived:
            self.arrived.wait_for(lambda: len(self.bodies) >= count, timeout)
            return list(self.bodies)

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


def test_an_event_starts_and_ends_on_the_known_frames_and_writes_one_clip(red_wins, one_visit, tmp_path):
    receiver = Receiver()
    try:
        p = pipeline(
            red_wins, one_visit, [f"{RULE} for 0.3s"], events_dir=str(tmp_path / "ev"), pre_roll=1.0,
            post_roll=0.5, summary=str(tmp_path / "summary.csv"), webhook=receiver.url,
        )  # fmt: skip
        called: list[dict] = []
        p.events.subscribe(called.append)
        listener = p.events.listen()
        p.run()
        hooked = receiver.wait_for(2)
    finally:
        receiver.close()
    heard = list(listener)  # ends when the run has
    assert [m["kind"] for m in heard] == ["start", "end"] == [m["kind"] for m in called] == [m["kind"] for m in hooked]
    start, end = heard
    assert (start["start"], end["start"], end["end"]) == (1.5, 1.5, 2.5)  # backdated to the first held frame
    assert start["end"] is None and end["ended_by"] == "condition"
    assert end["frames"] == end["inferred"] == 10
    assert end["peak"] == pytest.approx(0.25, abs=0.03)  # the square is a quarter of the crosswalk's pixels
    assert hooked == heard

    clips, sidecars = clips_in(tmp_path / "ev")
    assert len(clips) == 1 and len(list((tmp_path / "ev").glob("*.json"))) == 1
    sidecar = sidecars[0]
    assert {k: sidecar[k] for k in ("source", "rule", "start", "end")} == {
        "source": "one_visit", "rule": f"{RULE} for 0.3s", "start": 1.5, "end": 2.5,
    }  # fmt: skip
    assert sidecar["complete"] and sidecar["id"] == start["id"] and sidecar["clip"] == clips[0].name
    assert [t for t, _ in sidecar["coverage"]] == pytest.approx([1.5 + i / 10 for i in range(10)])
    assert all(value > 0.05 for _, value in sidecar["coverage"])
    assert (tmp_path / "ev" / sidecar["thumbnail"]).stat().st_size > 0

    images, pts, time_base, _ = read_video(clips[0])
    times = [float(p * time_base) for p in pts]
    assert 0.5 - KEY_SECONDS - 1e-6 <= times[0] <= 0.5 + 1e-6  # pre-roll from the keyframe at or before 0.5 s
    assert times[-1] == pytest.approx(3.0)  # post-roll
    assert [round(b - a, 6) for a, b in zip(times, times[1:])] == [0.1] * (len(times) - 1)  # continuous
    assert (sidecar["clip_start"], sidecar["clip_end"]) == pytest.approx((times[0], times[-1]))
    inside = images[times.index(pytest.approx(2.0))]
    assert inside[48, 80, 0] > 200 and inside[48, 80, 1] < 60  # the overlay picture: the square, red
    assert images[0][48, 80].tolist() == pytest.approx([110, 110, 110], abs=12)

    with open(tmp_path / "summary.csv") as file:
        rows = list(csv.DictReader(file))
    assert float(rows[14]["crosswalk/class1"]) == 0 and float(rows[15]["crosswalk/class1"]) > 0.2


def test_cooldown_and_overlapping_events_in_one_clip(red_wins, two_visits, tmp_path):
    """Without a cooldown the second visit is a second event, within the first's post-roll: one clip holds both.
    With a cooldown longer than the gap, the second visit is no event."""
    p = pipeline(red_wins, two_visits, [RULE], events_dir=str(tmp_path / "ev"), pre_roll=0.5, post_roll=0.5)
    heard = p.events.listen()
    p.run()
    events = [m for m in heard if m["kind"] == "end"]
    assert [(m["start"], m["end"]) for m in events] == [(1.0, 1.5), (1.8, 2.5)]
    clips, sidecars = clips_in(tmp_path / "ev")
    assert len(clips) == 1
    assert [(e["start"], e["end"]) for e in sidecars[0]["events"]] == [(1.0, 1.5), (1.8, 2.5)]
    times = [float(p * tb) for _, pts, tb, _ in [read_video(clips[0])] for p in pts]
    assert times[0] <= 0.5 + 1e-6 and times[-1] == pytest.approx(3.0)

    cooled = pipeline(red_wins, two_visits, [f"{RULE} cooldown 1s"], events_dir=str(tmp_path / "cool"), post_roll=0.2)
    heard = cooled.events.listen()
    cooled.run()
    assert [(m["kind"], m["start"]) for m in heard] == [("start", 1.0), ("end", 1.0)]
    assert len(clips_in(tmp_path / "cool")[0]) == 1


def test_carried_frames_count_like_inferred_ones(red_wins, one_visit):
    """--interval 2, labels held: frames 16, 18 … are inferred, the odd ones carry the frame before's labels.
    So the square counts from frame 16 (inferred) to frame 25 (carried from 24, still inside)."""
    p = pipeline(red_wins, one_visit, [RULE], interval=2, propagate="none")
    heard = p.events.listen()
    p.run()
    end = [m for m in heard if m["kind"] == "end"]
    assert [(m["start"], m["end"], m["frames"], m["inferred"]) for m in end] == [(1.6, 2.6, 10, 5)]


def test_metrics_preview_and_mcap_see_coverage_and_the_active_region(red_wins, one_visit, tmp_path):
    p = pipeline(red_wins, one_visit, [RULE], metrics_port=0, preview_port=0, mcap=str(tmp_path / "run.mcap"))
    seen: dict[str, object] = {}
    with p:
        for result in p:
            if result.index == 17:  # the event is on (from frame 15); the lane is at most a few frames ahead
                metrics = urllib.request.urlopen(f"{p.metrics.url}metrics", timeout=10).read().decode()
                seen["stats"] = json.loads(urllib.request.urlopen(f"{p.preview.url}stats.json", timeout=10).read())
                seen["metrics"] = metrics
                seen["coverage"] = result.coverage
    assert seen["coverage"] == {"crosswalk": {"class1": pytest.approx(0.25, abs=0.03)}}
    metrics = str(seen["metrics"])
    assert 'streamseg_region_coverage{class="class1",region="crosswalk",source="one_visit"} 0.2' in metrics
    assert 'streamseg_region_event_active{region="crosswalk",source="one_visit"} 1.0' in metrics
    regions = seen["stats"]["regions"]  # type: ignore[index]
    assert regions == [
        {"name": "crosswalk", "points": [[0.4, 0.3], [0.6, 0.3], [0.6, 0.7], [0.4, 0.7]], "active": True}
    ]

    from mcap.reader import make_reader

    with open(tmp_path / "run.mcap", "rb") as file:
        messages = [(c.topic, m) for _, c, m in make_reader(file).iter_messages()]
    coverage = [m for topic, m in messages if topic == "/streamseg/one_visit/coverage"]
    events = [m for topic, m in messages if topic == "/streamseg/one_visit/events"]
    assert len(coverage) == 40 and len(events) == 2
    assert b'"kind": "start"' in events[0].data and b'"start": 1.5' in events[0].data


def test_a_source_added_over_rest_brings_its_own_regions_and_rules(red_wins, one_visit, tmp_path, monkeypatch):
    model, spec = red_wins
    monkeypatch.setenv("XDG_RUNTIME_DIR", str(tmp_path))  # the API token's file goes there
    p = Pipeline(
        str(one_visit), model=model, spec=yaml.safe_load(spec.read_text()), metrics_port=0,
        events_dir=str(tmp_path / "ev"), pre_roll=0.5, post_roll=0.2, input_root=str(one_visit.parent),
    )  # fmt: skip
    heard = p.events.listen()
    added = {}
    with p:
        for result in p:
            if result.index == 0 and not added:
                body = {"uri": str(one_visit), "name": "added", "rois": [CROSSWALK], "events": [RULE]}
                headers = {"Content-Type": "application/json", "Authorization": f"Bearer {p.api_token}"}
                request = urllib.request.Request(f"{p.metrics.url}sources", json.dumps(body).encode(), headers)
                added = json.loads(urllib.request.urlopen(request, timeout=10).read())
                bad = {"uri": str(one_visit), "name": "bad", "events": ["class7 in nowhere > 0.1"]}
                with pytest.raises(ConfigError, match="no region 'nowhere'"):
                    p.add_source(bad)
    assert added == {"name": "added"}
    messages = list(heard)
    assert [(m["source"], m["kind"], m["start"]) for m in messages] == [("added", "start", 1.5), ("added", "end", 1.5)]
    assert [c.name for c in clips_in(tmp_path / "ev")[0]] == [f"{messages[0]['id']}.mp4"]


def test_a_rule_on_an_unknown_class_is_refused_at_start(red_wins, one_visit):
    with pytest.raises(ConfigError, match="'person' is not a class of the model"):
        pipeline(red_wins, one_visit, ["person in crosswalk > 0.1"]).start()
