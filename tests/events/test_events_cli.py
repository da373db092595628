"""``streamseg run`` with regions and rules, as a user runs it: the issue's done-when case, and bad regions
and rules refused at start with one line."""

from __future__ import annotations

import json

import pytest

from tests.events.conftest import CROSSWALK
from tests.support.cli import assert_one_line_error, run_cli
from tests.support.videos import read_video, red_square_video


@pytest.mark.slow
def test_done_when_one_clip_and_sidecar_for_the_square_in_the_crosswalk(red_wins, tmp_path):
    """10 s; the red square enters the crosswalk at 4.0 s and leaves at 6.0 s."""
    model, spec = red_wins
    video = red_square_video(tmp_path / "street.mp4", seconds=10, fps=25, inside=[(4.0, 6.0)])
    run_cli(
        "run", str(video), "-m", str(model), "--spec", str(spec), "--roi", CROSSWALK,
        "--event", "class1 in crosswalk > 0.05 for 0.2s", "--pre-roll", "2", "--post-roll", "1",
        "--events-dir", "ev/", cwd=tmp_path, check=True,
    )  # fmt: skip
    sidecars, clips = sorted((tmp_path / "ev").glob("*.json")), sorted((tmp_path / "ev").glob("*.mp4"))
    assert len(sidecars) == 1 and len(clips) == 1
    sidecar = json.loads(sidecars[0].read_text())
    assert {"source", "rule", "start", "end", "peak", "coverage"} <= set(sidecar)
    assert sidecar["source"] == "street" and sidecar["rule"] == "class1 in crosswalk > 0.05 for 0.2s"
    assert sidecar["start"] == pytest.approx(4.0, abs=0.1) and sidecar["end"] == pytest.approx(6.0, abs=0.1)
    assert sidecar["peak"] > 0.05 and len(sidecar["coverage"]) == 50
    _, pts, time_base, facts = read_video(clips[0])  # it plays: every frame decodes
    assert facts["codec"] == "h264" and len(pts) > 100
    assert float(pts[0] * time_base) == pytest.approx(2.0, abs=0.5)
    assert float(pts[-1] * time_base) == pytest.approx(7.0, abs=0.5)


@pytest.mark.parametrize(
    ("flags", "says"),
    [
        (["--roi", "crosswalk=0.4,0.3;0.6,0.7;0.6,0.3;0.4,0.7"], "not a simple polygon"),
        (["--roi", "crosswalk=0.4,0.3;0.6,0.3"], "at least 3"),
        (["--roi", "crosswalk=0.4,0.3;1.6,0.3;0.6,0.7"], "outside 0..1"),
        (["--roi", CROSSWALK, "--event", "class1 in lane > 0.1"], "no region 'lane'"),
        (["--roi", CROSSWALK, "--event", "person in crosswalk > 0.1"], "'person' is not a class"),
        (["--event", "class1 crosswalk"], "CLASS in REGION"),
    ],
)
def test_bad_regions_and_rules_are_refused_with_one_line(red_wins, tmp_path, flags, says):
    model, spec = red_wins
    video = red_square_video(tmp_path / "v.mp4", seconds=0.3, fps=10, inside=[(0.1, 0.2)], width=64, height=48)
    proc = run_cli(
        "run", str(video), "-m", str(model), "--spec", str(spec), "--events-dir", str(tmp_path / "ev"), *flags,
        timeout=120,
    )  # fmt: skip
    assert_one_line_error(proc, says)
    assert not (tmp_path / "ev").exists()
