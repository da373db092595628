"""Files in, segmented video + label maps out: lossless, in order, timestamps and audio kept."""

from __future__ import annotations

from fractions import Fraction

import av
import cv2
import numpy as np
import pytest
from PIL import Image

from streamseg import Pipeline
from tests.support.cli import run_cli
from tests.support.videos import make_video, read_video, rotate_mp4


def audio_seconds(path) -> float:
    with av.open(str(path)) as c:
        stream = c.streams.audio[0]
        last = max(p.pts + (p.duration or 0) for p in c.demux(stream) if p.pts is not None)
        return float(last * stream.time_base)


@pytest.mark.export
def test_real_footage_every_frame_timestamps_audio_and_labels(car_video, fcn_onnx, tmp_path):
    """The whole car-detection clip: every frame out, timestamps and audio kept, one label map per frame.

    A small input size keeps it within CI time.
    """
    out, labels = tmp_path / "out.mp4", tmp_path / "labels"
    proc = run_cli(
        "run",
        str(car_video),
        "-o",
        str(out),
        "--model",
        str(fcn_onnx),
        "--labels-out",
        str(labels),
        "--size",
        "64",
        check=True,
    )
    assert "377 frames in, 377 out" in proc.stderr

    source_images, source_pts, source_tb, _ = read_video(car_video)
    images, pts, tb, facts = read_video(out)
    assert facts["codec"] == "h264" and facts["audio"] == ["aac"]
    assert len(images) == len(source_images) == 377
    assert images[0].shape == source_images[0].shape == (432, 768, 3)
    assert [p * tb for p in pts] == [p * source_tb for p in source_pts]
    assert audio_seconds(out) == pytest.approx(audio_seconds(car_video), abs=0.05)

    pngs = sorted(labels.glob("*.png"))
    assert len(pngs) == 377
    first = Image.open(pngs[0])
    assert first.mode == "P" and first.size == (768, 432)
    assert np.asarray(first).max() < 21
    rows = (labels / "summary.csv").read_text().splitlines()
    assert len(rows) == 378 and rows[0].startswith("index,pts,time,latency_ms,__background__")


def test_duc_standin_end_to_end(car_video, duc_onnx, tmp_path):
    out = tmp_path / "duc.mkv"
    with Pipeline(car_video, duc_onnx, outputs=[str(out)], max_frames=12) as p:
        results = list(p)
    assert [r.index for r in results] == list(range(12))
    for r in results:
        assert r.labels.shape == (432, 768) and r.labels.dtype == np.uint8 and r.labels.max() < 19
    images, _, _, facts = read_video(out)
    assert len(images) == 12 and images[0].shape == (432, 768, 3)


@pytest.mark.parametrize(
    "name, options",
    [
        ("odd.mp4", dict(width=641, height=359, pix_fmt="yuv444p")),
        ("ten_bit.mkv", dict(pix_fmt="yuv420p10le")),
        ("gray.mkv", dict(codec="ffv1", pix_fmt="gray")),
    ],
)
def test_unusual_formats_keep_size_count_and_timestamps(tmp_path, duc_onnx, name, options):
    source = make_video(tmp_path / name, frames=9, **options)
    out = tmp_path / f"out-{name}"
    summary = Pipeline(source, duc_onnx, outputs=[str(out)]).run()
    assert summary.frames_in == summary.frames_out == 9 and not summary.stopped_early
    src_images, src_pts, src_tb, _ = read_video(source)
    images, pts, tb, _ = read_video(out)
    assert len(images) == 9 and images[0].shape == src_images[0].shape
    assert [p * tb for p in pts] == [p * src_tb for p in src_pts]


def test_variable_frame_rate_timestamps_survive(tmp_path, duc_onnx):
    tb = Fraction(1, 1000)
    irregular = [0, 40, 90, 100, 180, 300, 310, 420]
    source = make_video(tmp_path / "vfr.mkv", frames=len(irregular), pts=irregular, time_base=tb)
    out = tmp_path / "out.mkv"
    Pipeline(source, duc_onnx, outputs=[str(out)]).run()
    _, pts, out_tb, _ = read_video(out)
    assert [p * out_tb for p in pts] == [Fraction(p, 1000) for p in irregular]


@pytest.mark.slow
def test_audio_track_is_copied(tmp_path, duc_onnx):
    source = make_video(tmp_path / "tone.mp4", frames=20, fps=10, audio=True)
    out = tmp_path / "out.mp4"
    Pipeline(source, duc_onnx, outputs=[str(out)]).run()
    assert read_video(out)[3]["audio"] == ["aac"]
    assert audio_seconds(out) == pytest.approx(audio_seconds(source), abs=0.03)


def test_rotated_video_is_turned_upright(tmp_path, duc_onnx):
    coded = make_video(tmp_path / "coded.mp4", width=160, height=96, frames=5)
    rotated = rotate_mp4(coded, tmp_path / "portrait.mp4")
    with Pipeline(rotated, duc_onnx) as p:
        results = list(p)
    coded_images = read_video(coded)[0]
    assert len(results) == 5
    for r, image in zip(results, coded_images):
        assert r.frame.shape == (160, 96, 3) and r.labels.shape == (160, 96)
        assert np.array_equal(r.frame, np.rot90(image, -1))  # 90 degrees clockwise, as players show it


@pytest.mark.slow
def test_truncated_file_yields_decodable_frames_then_one_warning(car_video, duc_onnx, tmp_path):
    data = car_video.read_bytes()
    cut = tmp_path / "cut.mp4"
    cut.write_bytes(data[: len(data) // 6])
    out = tmp_path / "out.mp4"
    proc = run_cli("run", str(cut), "-o", str(out), "--model", str(duc_onnx), "--max-frames", "200")
    assert proc.returncode == 0, proc.stderr
    warnings = [line for line in proc.stderr.splitlines() if "WARNING" in line]
    assert len(warnings) == 1 and "truncated" in warnings[0]
    decodable = 0
    with av.open(str(cut)) as c:
        try:
            for _ in c.decode(video=0):
                decodable += 1
        except av.FFmpegError:
            pass
    assert 0 < decodable < 377
    assert len(read_video(out)[0]) == decodable


def test_overlay_changes_exactly_the_labelled_pixels(car_video, duc_onnx):
    with Pipeline(car_video, duc_onnx, max_frames=3, alpha=0.6) as p:
        results = list(p)
    for r in results:
        changed = np.any(r.picture != r.frame, axis=2)
        # the stand-in draws every Cityscapes class (no background); the filter below leaves most undrawn
        assert changed.mean() > 0.5
    with Pipeline(car_video, duc_onnx, max_frames=3, classes="road,car") as p:
        filtered = list(p)
    with av.open(str(car_video)) as container:  # the decoder's own luma, which the overlay is drawn on
        lumas = [frame.to_ndarray()[: frame.height] for _, frame in zip(range(3), container.decode(video=0))]
    for r, luma in zip(filtered, lumas, strict=True):
        drawn = np.isin(r.labels, [0, 13])
        assert r.composited.shape == (luma.shape[0] * 3 // 2, luma.shape[1])  # drawn on the planes
        changed = r.composited[: luma.shape[0]] != luma
        assert not changed[~drawn].any()  # undrawn classes keep the original pixels
        # in RGB too, away from the drawn classes' edges, where 4:2:0 chroma (a sample per 2x2) is shared
        near_drawn = cv2.dilate(drawn.astype(np.uint8), np.ones((5, 5), np.uint8)).astype(bool)
        assert (r.picture == r.frame).all(axis=2)[~near_drawn].all()
        if drawn.any():
            assert changed[drawn].mean() > 0.9


def test_mask_and_side_by_side_modes(car_video, duc_onnx):
    with Pipeline(car_video, duc_onnx, max_frames=2, overlay="side-by-side") as p:
        r = next(iter(p))
    assert r.picture.shape == (432, 1536, 3)
    with Pipeline(car_video, duc_onnx, max_frames=2, overlay="mask") as p:
        r = next(iter(p))
    from streamseg.models.palettes import CITYSCAPES_PALETTE

    assert np.array_equal(r.picture, np.asarray(CITYSCAPES_PALETTE, np.uint8)[r.labels])


def test_npz_labels_and_jsonl_summary(car_video, duc_onnx, tmp_path):
    Pipeline(
        car_video,
        duc_onnx,
        max_frames=4,
        labels_out=str(tmp_path / "l"),
        labels_format="npz",
        summary=str(tmp_path / "s.jsonl"),
    ).run()
    with np.load(tmp_path / "l" / "labels.npz") as archive:
        assert sorted(archive.files) == [f"f{i:06d}" for i in range(4)]
        assert archive["f000003"].shape == (432, 768)
    lines = (tmp_path / "s.jsonl").read_text().splitlines()
    assert len(lines) == 4 and '"index": 3' in lines[3]
