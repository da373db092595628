"""CAMERAS.yaml, {node} templates, segments of a moved camera: no cluster needed."""

from __future__ import annotations

import pytest

from streamseg.config import RunConfig, SourceSpec
from streamseg.errors import ConfigError, SinkError
from streamseg.fleet.config import fleet_from, parse_camera, placed_source, segment_path
from streamseg.outputs.naming import expand


def config(**values) -> RunConfig:
    return RunConfig.build({"model": "m.onnx", **values})


def test_cameras_are_named_as_run_names_sources():
    fleet = fleet_from(config(sources=["rtsp://10.0.0.5/live", {"uri": "rtsp://10.0.0.6/live", "name": "gate"}]))
    assert [c.name for c in fleet.cameras] == ["10.0.0.5-live", "gate"]
    assert fleet.run.sources == ()


def test_two_cameras_writing_one_file_are_refused_before_anything_runs(tmp_path):
    with pytest.raises(SinkError, match="out.mp4: sources 'a-1' and 'b-1' would both write it"):
        fleet_from(config(sources=["rtsp://a/1", "rtsp://b/1"], outputs=[str(tmp_path / "out.mp4")]))


def test_node_fills_templates_under_serve_and_is_refused_elsewhere():
    assert expand("rec/{node}/{name}.mp4", "gate", 0, "n1") == "rec/n1/gate.mp4"
    with pytest.raises(ConfigError, match=r"unknown field \{node\} \(only under streamseg serve\)"):
        expand("rec/{node}/{name}.mp4", "gate", 0)


@pytest.mark.parametrize("template", ["rec/{node:>99999}/{name}.mp4", "rec/{node!r}/{name}.mp4"])
def test_node_takes_no_format_spec_or_conversion(template):
    with pytest.raises(ConfigError, match="no format specs"):
        expand(template, "gate", 0, "n1")


def test_a_moved_camera_writes_new_segments_and_keeps_its_streams():
    run = config(outputs=["rec/{node}/{name}.mp4", "rtsp://127.0.0.1:8554/{name}"], labels_out="labels/{name}")
    camera = SourceSpec(uri="rtsp://cam/1", name="gate")
    first = placed_source(run, camera, 3, "n1", 1)
    assert first.outputs == ("rec/n1/gate.mp4", "rtsp://127.0.0.1:8554/gate") and first.labels_out == "labels/gate"
    moved = placed_source(run, camera, 3, "n2", 2)
    assert moved.outputs == ("rec/n2/gate-00002.mp4", "rtsp://127.0.0.1:8554/gate")
    assert moved.labels_out == "labels/gate-00002"


def test_segmented_recordings_keep_their_pattern():
    assert segment_path("rec/%H%M%S.mp4", 3, segmented=True) == "rec/%H%M%S.mp4"  # that sink never overwrites
    assert segment_path("labels/gate/", 2, segmented=False) == "labels/gate-00002"


def test_posted_camera_needs_a_uri_and_a_free_name():
    assert parse_camera({"uri": "rtsp://cam/9"}, ["gate"]).name == "cam-9"
    with pytest.raises(ConfigError, match="used twice"):
        parse_camera({"uri": "rtsp://cam/9", "name": "gate"}, ["gate"])
    with pytest.raises(ConfigError, match="^camera: uri: Field required$"):
        parse_camera({"name": "x"}, [])
    with pytest.raises(ConfigError, match="JSON object"):
        parse_camera(["rtsp://cam/9"], [])
