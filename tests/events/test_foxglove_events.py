"""Coverage and events live in Foxglove: the same two channels the MCAP file has, from a real run played as a
camera, read by a Foxglove WebSocket client on 127.0.0.1."""

from __future__ import annotations

import importlib.util
import json
import threading

import pytest
import yaml

from streamseg import Pipeline
from tests.events.conftest import CROSSWALK

pytestmark = pytest.mark.skipif(
    not all(importlib.util.find_spec(m) for m in ("foxglove", "mcap_ros2", "websockets")),
    reason="needs the foxglove extra and websockets",
)


def test_foxglove_serves_coverage_and_events(red_wins, one_visit):
    from tests.support.foxglove_client import collect

    model, spec = red_wins
    topics = ["/streamseg/one_visit/coverage", "/streamseg/one_visit/events"]
    with Pipeline(
        str(one_visit), model=model, spec=yaml.safe_load(spec.read_text()), rois=[CROSSWALK],
        events=["class1 in crosswalk > 0.05"], foxglove_port=0, live={"realtime": True, "loop": True},
    ) as pipeline:  # fmt: skip
        consumer = threading.Thread(target=lambda: sum(1 for _ in pipeline), daemon=True)
        consumer.start()
        try:
            # the square enters the crosswalk 1.5 s into each 4 s loop: an event starts within ~4 s of any moment
            channels, received = collect(pipeline.downstream[0].url, topics, count=1, timeout=60)
        finally:
            pipeline.stop()
            consumer.join(timeout=60)
    assert {channels[t]["schemaName"] for t in topics} == {"std_msgs/msg/String"}
    coverage, events = (received[t] for t in topics)
    assert coverage and events
    # std_msgs/String in CDR: a 4-byte header, a uint32 length, then the text and its NUL
    first = json.loads(coverage[0][1][8:].rstrip(b"\0").decode())
    assert first["source"] == "one_visit" and set(first["coverage"]) == {"crosswalk"}
    event = json.loads(events[0][1][8:].rstrip(b"\0").decode())
    assert event["rule"] == "class1 in crosswalk > 0.05" and event["kind"] in ("start", "end")
