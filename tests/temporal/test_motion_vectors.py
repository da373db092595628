"""Motion vectors from the H.264 decoder as a displacement field, on a generated clip with a known translation."""

from __future__ import annotations

import logging

import av
import cv2
import numpy as np
import pytest

from streamseg.temporal.flow import resize_flow, warp_labels
from streamseg.temporal.motion_vectors import VectorFlow, export_vectors, frame_vectors, vector_field

WIDTH, HEIGHT, FRAMES = 160, 96, 6
DX, DY = 3, 2  # the picture moves left by 3 and up by 2 pixels a frame


def canvas() -> tuple[np.ndarray, np.ndarray]:
    """A textured picture larger than the clip, and labels that follow its texture (coarse blobs)."""
    rng = np.random.default_rng(1)
    size = (HEIGHT + DY * FRAMES + 8, WIDTH + DX * FRAMES + 8)
    blobs = cv2.GaussianBlur(rng.random(size, np.float32), (0, 0), 6)
    labels = (blobs > np.median(blobs)).astype(np.uint8)
    detail = cv2.GaussianBlur(rng.random(size, np.float32), (0, 0), 1.2)
    gray = np.clip(40 + 120 * labels + 200 * (detail - detail.mean()), 0, 255).astype(np.uint8)
    return cv2.cvtColor(gray, cv2.COLOR_GRAY2RGB), labels


def window(picture: np.ndarray, index: int) -> np.ndarray:
    y, x = DY * index, DX * index
    return picture[y : y + HEIGHT, x : x + WIDTH]


@pytest.fixture(scope="module")
def clip(tmp_path_factory):
    path = tmp_path_factory.mktemp("mv") / "shift.mp4"
    picture, labels = canvas()
    with av.open(str(path), "w") as container:
        stream = container.add_stream("libx264", rate=10)
        stream.width, stream.height, stream.pix_fmt = WIDTH, HEIGHT, "yuv420p"
        stream.options = {"preset": "ultrafast", "bframes": "0"}
        for i in range(FRAMES):
            for packet in stream.encode(av.VideoFrame.from_ndarray(np.ascontiguousarray(window(picture, i)), "rgb24")):
                container.mux(packet)
        for packet in stream.encode(None):
            container.mux(packet)
    return path, labels


def decode(path, vectors: bool) -> list[tuple[np.ndarray, np.ndarray | None]]:
    with av.open(str(path)) as container:
        stream = container.streams.video[0]
        if vectors:
            export_vectors(stream)
        return [(f.to_ndarray(format="rgb24"), frame_vectors(f)) for f in container.decode(stream)]


def test_vectors_match_the_shift_and_carry_labels_along_it(clip):
    path, labels = clip
    frames = decode(path, vectors=True)
    assert frames[0][1] is None  # the first frame is intra: no vectors
    for i in range(1, FRAMES):
        vectors = frames[i][1]
        assert vectors is not None
        field = resize_flow(vector_field(vectors, HEIGHT, WIDTH), HEIGHT, WIDTH)
        inner = field[16:-16, 16:-16].reshape(-1, 2)
        # current(x) ~ previous(x + field): the picture moved by -(DX, DY), so the field points +(DX, DY)
        assert np.abs(np.median(inner, axis=0) - (DX, DY)).max() <= 0.5
        carried = warp_labels(window(labels, i - 1), vector_field(vectors, HEIGHT, WIDTH))
        truth = window(labels, i)
        assert (carried[8:-8, 8:-8] == truth[8:-8, 8:-8]).mean() > 0.97
        assert (window(labels, i - 1) == truth).mean() < 0.95  # the shift did move the labels


def test_without_exported_vectors_dis_flow_takes_over_and_says_so_once(clip, caplog):
    path, labels = clip
    frames = decode(path, vectors=False)
    assert all(vectors is None for _, vectors in frames)
    flow = VectorFlow()
    with caplog.at_level(logging.INFO, logger="streamseg.temporal.motion_vectors"):
        for i in range(1, 3):
            step = flow.step(frames[i][1], frames[i][0], frames[i - 1][0])
            carried = warp_labels(window(labels, i - 1), step)
            assert (carried[8:-8, 8:-8] == window(labels, i)[8:-8, 8:-8]).mean() > 0.9
    assert flow.fell_back == 2
    assert sum("without motion vectors" in r.getMessage() for r in caplog.records) == 1
