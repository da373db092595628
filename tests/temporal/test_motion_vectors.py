"""Motion vectors from the H.264 decoder as a displacement field, on a generated clip with a known translation."""

from __future__ import annotations

import logging

import av
import cv2
import numpy as np
import pytest

from streamseg.sources.vectors import export_vectors, frame_vectors
from streamseg.temporal.flow import resize_flow, warp_labels
from streamseg.temporal.motion_vectors import VectorChain, vector_field

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


def test_a_chain_composes_each_frames_vectors_into_its_flow_to_the_key_frame(clip):
    path, labels = clip
    frames = decode(path, vectors=True)
    chain = VectorChain("shift")
    chain.set_key(frames[0][0], 0)
    for i in range(1, FRAMES):
        flow, by = chain.to_key(frames[i][0], frames[i][1], i)
        assert by == "mv" and flow is not None
        carried = warp_labels(window(labels, 0), flow)
        truth = window(labels, i)
        margin = 4 + max(DX, DY) * i  # what came into view since the key frame has no labels to carry
        assert (carried[margin:-margin, margin:-margin] == truth[margin:-margin, margin:-margin]).mean() > 0.95, i
    assert (chain.by_vectors, chain.fell_back) == (FRAMES - 1, 0)


def test_without_exported_vectors_dis_flow_takes_over_and_says_so_once(clip, caplog):
    path, labels = clip
    frames = decode(path, vectors=False)
    assert all(vectors is None for _, vectors in frames)
    chain = VectorChain("shift")
    assert chain.to_key(frames[1][0], None, 1) == (None, "held")  # no key frame yet
    chain.set_key(frames[0][0], 0)
    with caplog.at_level(logging.INFO, logger="streamseg.temporal.motion_vectors"):
        for i in range(1, 3):
            flow, by = chain.to_key(frames[i][0], frames[i][1], i)
            assert by == "flow" and flow is not None
            carried = warp_labels(window(labels, 0), flow)
            assert (carried[12:-12, 12:-12] == window(labels, i)[12:-12, 12:-12]).mean() > 0.9
    assert (chain.by_vectors, chain.fell_back) == (0, 2)
    told = [r for r in caplog.records if "without motion vectors" in r.getMessage()]
    assert len(told) == 1 and told[0].levelno == logging.WARNING and told[0].getMessage().startswith("shift: ")


def test_a_frame_that_does_not_follow_the_last_gets_dis_flow(clip):
    """A live source that dropped frames: the vectors point at a frame the chain never saw."""
    path, labels = clip
    frames = decode(path, vectors=True)
    chain = VectorChain("shift")
    chain.set_key(frames[0][0], 0)
    flow, by = chain.to_key(frames[3][0], frames[3][1], 3)
    assert by == "flow" and flow is not None
    carried = warp_labels(window(labels, 0), flow)
    assert (carried[16:-16, 16:-16] == window(labels, 3)[16:-16, 16:-16]).mean() > 0.9
    assert chain.to_key(frames[4][0], frames[4][1], 4)[1] == "mv"  # and the chain goes on from there
