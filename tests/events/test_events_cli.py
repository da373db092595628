"""``streamseg run`` with regions and rules, as a user runs it: the issue's done-when case, bad regions
and rules refused at start with one line, and a clip that survives a kill."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import time
from pathlib import Path

import av
import pytest

from streamseg.events.clips import KEY_SECONDS
from tests.events.conftest import CROSSWALK
from tests.support.cli import assert_one_line_error, run_cli
from tests.support.mp4_fragments import complete_fragment_frames, playable_frames
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
        (["--roi", CROSSWALK, "--event", "class1 in lane > 0.1"], "no region 'lane'"),
        (["--roi", CROSSWALK, "--event", "person in crosswalk > 0.1"], "'person' is not a class"),
    ],
)
def test_bad_regions_and_rules_are_refused_with_one_line(red_wins, tmp_path, flags, says):
    """The rest of what is refused is in test_regions_rules.py: the same check, without a process each."""
    model, spec = red_wins
    video = red_square_video(tmp_path / "v.mp4", seconds=0.3, fps=10, inside=[(0.1, 0.2)], width=64, height=48)
    proc = run_cli(
        "run", str(video), "-m", str(model), "--spec", str(spec), "--events-dir", str(tmp_path / "ev"), *flags,
        timeout=120,
    )  # fmt: skip
    assert_one_line_error(proc, says)
    assert not (tmp_path / "ev").exists()


def clip_frames(folder: Path) -> int:
    """Video frames in the complete fragments of the one clip being written in ``folder`` (0 before it opens)."""
    clips = list(folder.glob("*.mp4"))
    if not clips or clips[0].stat().st_size == 0:
        return 0
    try:
        return complete_fragment_frames(clips[0])[0]
    except (StopIteration, IndexError, ValueError):  # no moov yet
        return 0


@pytest.mark.slow
def test_sigkill_mid_event_leaves_a_clip_that_plays_and_its_sidecar(red_wins, tmp_path):
    """Clips are fragmented MP4 while written, like recordings: a kill keeps every complete fragment."""
    model, spec = red_wins
    video = red_square_video(tmp_path / "cam.mp4", seconds=30, fps=10, inside=[(2.0, 29.0)], width=64, height=48)
    events = tmp_path / "ev"
    proc = subprocess.Popen(
        [sys.executable, "-m", "streamseg", "run", str(video), "-m", str(model), "--spec", str(spec), "--realtime",
         "--roi", CROSSWALK, "--event", "class1 in crosswalk > 0.05", "--pre-roll", "1", "--events-dir", str(events)],
        stderr=subprocess.PIPE, text=True,
    )  # fmt: skip
    try:
        deadline = time.monotonic() + 120
        while clip_frames(events) < 20 and proc.poll() is None and time.monotonic() < deadline:
            time.sleep(0.05)
        assert proc.poll() is None, f"the run ended before the kill:\n{proc.stderr.read() if proc.stderr else ''}"
    finally:
        proc.send_signal(signal.SIGKILL)
        proc.wait(timeout=30)
        if proc.stderr:
            proc.stderr.close()
    (clip,) = events.glob("*.mp4")
    sidecar = json.loads(clip.with_suffix(".json").read_text())
    assert sidecar["complete"] is False and sidecar["end"] is None
    in_fragments, _ = complete_fragment_frames(clip)
    frames = playable_frames(clip)
    assert len(frames) >= in_fragments >= 20
    with av.open(str(clip)) as container:
        time_base = container.streams.video[0].time_base
    first = float(frames[0][0] * time_base)  # a --realtime file is stamped as a camera's frames are
    assert sidecar["start"] - 1.0 - KEY_SECONDS - 0.05 <= first <= sidecar["start"] - 1.0 + 1e-6  # the pre-roll
