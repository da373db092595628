"""Segmented recording: files cut at keyframes, continuous timestamps and audio, a size cap like a loop recorder."""

from __future__ import annotations

import itertools
import logging
import os
from fractions import Fraction
from pathlib import Path

import av
import pytest

from streamseg import Pipeline
from streamseg.outputs.files.segment_index import INDEX_NAME
from streamseg.outputs.files.segmented import segment_glob
from tests.support.mp4_fragments import is_fragmented
from tests.support.videos import make_video, read_video


@pytest.fixture(scope="module")
def clip(tmp_path_factory) -> Path:
    """3 s at 10 fps with a 440 Hz tone."""
    return make_video(tmp_path_factory.mktemp("seg") / "clip.mp4", width=160, height=96, frames=30, fps=10, audio=True)


def audio_packets(path: Path) -> list[tuple[Fraction, Fraction]]:
    """(start, duration) in seconds of every audio packet, as a player reads them."""
    with av.open(str(path)) as container:
        return [(p.pts * p.time_base, p.duration * p.time_base) for p in container.demux(audio=0) if p.pts is not None]


def test_segments_cut_at_keyframes_continue_timestamps_and_audio(tmp_path, clip, duc_onnx):
    pattern = tmp_path / "rec" / "%Y" / "cam.mp4"  # a strftime folder, created as needed
    summary = Pipeline(clip, duc_onnx, outputs=[str(pattern)], encoder={"segment_seconds": 1}).run()
    year = next((tmp_path / "rec").iterdir())
    segments = sorted(year.glob("*.mp4"))
    assert [s.name for s in segments] == ["cam-00001.mp4", "cam-00002.mp4", "cam-00003.mp4"]
    assert summary.delivered == {str(pattern): 30}

    _, source_pts, source_tb, _ = read_video(clip)
    pts_seconds, audio = [], []
    for segment in segments:
        assert not is_fragmented(segment)  # each rewritten as a normal MP4 once closed
        with av.open(str(segment)) as container:
            frames = list(container.decode(video=0))
        assert len(frames) == 10 and frames[0].key_frame  # plays alone, from a keyframe
        pts_seconds += [f.pts * f.time_base for f in frames]
        audio += audio_packets(segment)
    # together the segments hold the source's timestamps exactly: no gap, no reset to zero
    assert pts_seconds == [p * source_tb for p in source_pts]
    # and its audio packets, each once: no gap or overlap at the cuts
    assert audio == audio_packets(clip)
    assert all(b[0] == a[0] + a[1] for a, b in itertools.pairwise(audio))


def test_keep_gigabytes_deletes_the_oldest_segments_only(tmp_path, clip, duc_onnx, caplog):
    rec = tmp_path / "rec"
    rec.mkdir()
    pattern = str(rec / "%Y%m%d-%H%M%S.mp4")
    Pipeline(clip, duc_onnx, outputs=[pattern], encoder={"segment_seconds": 1}).run()  # an earlier run, no cap
    written = sorted(rec.glob("*.mp4"))
    assert len(written) == 3 and sorted((rec / INDEX_NAME).read_text().split()) == [p.name for p in written]
    # an earlier day's recording: names the second run cannot make again (in the same second it would reuse a
    # deleted segment's name, and this test could not tell the old file from the new)
    earlier = [rec / f"20000101-00000{i}.mp4" for i in range(3)]
    for old, new in zip(written, earlier):
        old.rename(new)
        os.utime(new, (1, 1))  # the oldest of the recording
    (rec / INDEX_NAME).write_text("".join(p.name + "\n" for p in earlier))
    # the case: a file the recorder never wrote, matching its pattern (*-*.mp4) and older still
    victim = rec / "thesis-defense.mp4"
    victim.write_bytes(b"\0" * 50_000)
    os.utime(victim, (0, 0))
    unrelated = rec / "notes.txt"
    unrelated.write_text("keep me\n")
    cap = 60_000
    with caplog.at_level(logging.INFO, logger="streamseg.outputs.files.segmented"):
        Pipeline(clip, duc_onnx, outputs=[pattern], encoder={"segment_seconds": 1, "keep_gigabytes": cap / 1e9}).run()
    assert victim.read_bytes() == b"\0" * 50_000 and unrelated.read_text() == "keep me\n"  # never the recorder's
    assert not any(p.exists() for p in earlier)  # the earlier run's segments, listed in the index, went first
    left = sorted(p for p in rec.glob("*.mp4") if p != victim)
    assert 0 < sum(p.stat().st_size for p in left) <= cap
    assert len(left) < 3  # three one-second segments were written; the oldest went
    assert sorted((rec / INDEX_NAME).read_text().split()) == [p.name for p in left]
    newest = max(left, key=lambda p: p.stat().st_mtime)
    with av.open(str(newest)) as container:
        last_pts = [f.pts * f.time_base for f in container.decode(video=0)][-1]
    assert last_pts == Fraction(29, 10)  # the newest segment, with the last frame, is kept
    deletions = [r for r in caplog.records if r.getMessage().startswith("deleted old segment")]
    assert len(deletions) >= 3 and deletions[0].levelno == logging.WARNING  # the first one is said out loud
    assert any(str(old) in deletions[0].getMessage() for old in earlier)


def test_segment_glob_reads_each_strftime_field_as_a_wildcard():
    assert segment_glob("rec/%Y%m%d-%H%M%S.mp4") == "rec/***-***.mp4"
    assert segment_glob("rec/cam.mp4") == "rec/cam-*.mp4"
    assert segment_glob("rec/100%%/%H.mkv") == "rec/100%/*.mkv"
