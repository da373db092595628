"""Regions, coverage and rules on their own: what is refused, what coverage measures, how a rule's events
start, end and cool down."""

from __future__ import annotations

import numpy as np
import pytest

from streamseg.config import RunConfig
from streamseg.errors import ConfigError
from streamseg.events.coverage import CoverageMeter, bincount_coverage
from streamseg.events.regions import Region
from streamseg.events.rules import Rule
from streamseg.events.tracker import RuleTracker


@pytest.mark.parametrize(
    ("roi", "why"),
    [
        ("a=0.1,0.1;0.9,0.1", "at least 3"),
        ("a=0.1,0.1;0.9,0.1;0.1,0.9;0.9,0.9", "not a simple polygon"),  # a bow tie
        ("a=0.1,0.1;1.2,0.1;0.5,0.9", "outside 0..1"),
        ("a=0.1,0.1;0.5,0.1;0.9,0.1", "no area"),
        ("a=0.1,0.1;x;0.5,0.9", "not a point"),
        ("0.1,0.1;0.9,0.1;0.5,0.9", "NAME="),
        ("a b=0.1,0.1;0.9,0.1;0.5,0.9", "region name"),
    ],
)
def test_bad_regions_are_refused_naming_why(roi, why):
    with pytest.raises(ConfigError, match="rois") as caught:
        RunConfig.build({"rois": [roi]})
    assert why in str(caught.value)
    assert "\n" not in str(caught.value)


def test_regions_and_rules_read_from_flags_and_yaml_alike():
    flags = RunConfig.build(
        {
            "rois": ["crosswalk=0.4,0.3;0.6,0.3;0.6,0.7;0.4,0.7"],
            "events": ["person,bicycle in crosswalk >= 2% for 500ms"],
        }
    )
    yaml = RunConfig.build(
        {
            "rois": {"crosswalk": [[0.4, 0.3], [0.6, 0.3], [0.6, 0.7], [0.4, 0.7]]},
            "events": [
                {"classes": ["person", "bicycle"], "region": "crosswalk", "op": ">=", "threshold": 0.02, "for": 0.5}
            ],
        }
    )
    assert flags.rois == yaml.rois
    assert flags.events == yaml.events
    rule = flags.events[0]
    assert (rule.classes, rule.op, rule.threshold, rule.hold, rule.cooldown) == (
        ("person", "bicycle"),
        ">=",
        0.02,
        0.5,
        0,
    )
    assert (
        Rule.model_validate(
            {"classes": "road", "region": "lane", "op": "<", "threshold": 0.33, "for": "2s", "cooldown": "30s"}
        ).text
        == "road in lane < 0.33 for 2s cooldown 30s"
    )


@pytest.mark.parametrize(
    "rule", ["person crosswalk > 0.1", "person in crosswalk ~ 0.1", "person in crosswalk > 0.1 for x"]
)
def test_bad_rules_are_refused_with_the_syntax(rule):
    with pytest.raises(ConfigError, match="CLASS in REGION"):
        RunConfig.build({"events": [rule]})


def test_coverage_is_each_regions_class_shares():
    labels = np.zeros((720, 1280), np.uint8)
    labels[:, 640:] = 2  # right half class 2
    labels[360:, :] = 1  # bottom half class 1
    box = Region(name="box", points=((0.25, 0.25), (0.75, 0.25), (0.75, 0.75), (0.25, 0.75)))
    meter = CoverageMeter((box,), 3)
    shares = meter.measure(labels)["box"]
    np.testing.assert_allclose(shares, [0.25, 0.5, 0.25], atol=1e-6)
    # a triangle and a random map: the histogram is a bincount over the polygon's pixels
    tri = Region(name="tri", points=((0.1, 0.9), (0.5, 0.05), (0.95, 0.8)))
    meter = CoverageMeter((box, tri), 21)
    noise = np.random.default_rng(0).integers(0, 21, (480, 640), dtype=np.uint8)
    for name, shares in meter.measure(noise).items():
        np.testing.assert_allclose(shares, bincount_coverage(noise, meter)[name], atol=1e-6)
        assert shares.sum() == pytest.approx(1.0, abs=1e-5)


def test_the_mask_follows_the_frame_size():
    """Normalized points: the same region covers the same part of a frame at any resolution."""
    half = Region(name="left", points=((0.0, 0.0), (0.5, 0.0), (0.5, 1.0), (0.0, 1.0)))
    meter = CoverageMeter((half,), 2)
    for height, width in ((48, 64), (720, 1280), (97, 131)):
        labels = np.zeros((height, width), np.uint8)
        labels[:, : width // 2] = 1
        assert meter.measure(labels)["left"][1] > 0.97


def feed(tracker: RuleTracker, values: list[float], fps: int = 10) -> list[tuple[str, float, float | None]]:
    """The (kind, start, end) of each change, as it was when it happened."""
    seen = []
    for i, value in enumerate(values):
        seen += [(c.kind, c.event.start, c.event.end) for c in tracker.update(i / fps, i, value, inferred=i % 2 == 0)]
    return seen + [(c.kind, c.event.start, c.event.end) for c in tracker.finish((len(values) - 1) / fps)]


def test_an_event_starts_at_the_first_held_frame_and_ends_when_it_stops():
    rule = Rule.model_validate({"classes": "class1", "region": "r", "threshold": 0.5, "for": 0.3})
    tracker = RuleTracker(rule, "cam")
    values = [0.0] * 5 + [0.9, 0.0] + [0.6, 0.7, 0.9, 0.8, 0.7] + [0.1] * 3
    assert feed(tracker, values) == [("start", 0.7, None), ("end", 0.7, 1.2)]  # the blip at 0.5 s held too briefly
    assert tracker.events == 1


def test_cooldown_holds_the_rule_back_after_an_event():
    rule = Rule.model_validate({"classes": "class1", "region": "r", "threshold": 0.5, "cooldown": 0.5})
    values = [0.9, 0.9, 0.0, 0.9, 0.9, 0.0, 0.0, 0.0, 0.9, 0.0]  # ends 0.2 s, back 0.3 s (cooling), back 0.8 s
    changes = feed(RuleTracker(rule, "cam"), values)
    assert [kind for kind, *_ in changes] == ["start", "end", "start", "end"]
    assert [start for kind, start, _ in changes if kind == "start"] == [0.0, 0.8]


def test_an_event_counts_its_frames_inferred_or_carried_and_its_peak():
    rule = Rule.model_validate({"classes": "class1", "region": "r", "threshold": 0.5})
    tracker = RuleTracker(rule, "cam")
    feed(tracker, [0.0, 0.6, 0.9, 0.7, 0.0])
    started = [c for c in tracker.update(1.0, 10, 0.8, True)]
    event = started[0].event
    assert event.frames == 1 and event.inferred == 1
    carried = tracker.update(1.1, 11, 0.95, False)
    assert carried == [] and event.frames == 2 and event.inferred == 1
    assert (event.peak, event.peak_index) == (0.95, 11)
