"""The overlay drawn on the decoder's own 4:2:0 planes, against the RGB overlay the encoder used to convert."""

from __future__ import annotations

from fractions import Fraction

import av
import cv2
import numpy as np
import pytest

from streamseg.composite import Compositor
from streamseg.frames import Frame, Result
from streamseg.models import ZOO
from streamseg.outputs.encoder import encoder_frame
from streamseg.sources.file import FileSource, to_planes
from tests.support.hue_labels import decoded_with_labels

FCN = ZOO["fcn_resnet50"].spec


@pytest.fixture(scope="module")
def decoded(car_video):
    """Three decoded frames as the source hands them (RGB and planes), with labels that follow the picture."""
    return [
        (rgb, to_planes(frame), labels) for frame, rgb, labels in decoded_with_labels(car_video, 3, FCN.num_classes)
    ]


@pytest.mark.parametrize("alpha", [0.5, 0.37])
@pytest.mark.parametrize("classes", [None, ["car", "person", "bus"]])
def test_planes_overlay_is_the_rgb_overlay_as_the_encoder_got_it(decoded, alpha, classes):
    compositor = Compositor(FCN, alpha=alpha, classes=classes)
    for rgb, planes, labels in decoded:
        assert planes is not None and len(np.unique(labels)) > 3
        h, w = labels.shape
        got = compositor.overlay_planes(planes, labels)
        assert got.shape == (h * 3 // 2, w) and got.dtype == np.uint8
        want = cv2.cvtColor(compositor(rgb, labels), cv2.COLOR_RGB2YUV_I420)
        # the RGB round trip (decoder -> RGB -> blend -> I420) rounds twice: within two levels of it
        assert np.abs(got.astype(np.int16) - want).max() <= 2
        undrawn = ~compositor.drawn[labels]
        assert undrawn.any() and (got[:h][undrawn] == planes.y[undrawn]).all()  # exactly as decoded
        drawn = compositor.drawn[labels]
        assert (got[:h][drawn] != planes.y[drawn]).mean() > 0.5


def test_frames_carry_planes_only_when_asked(car_video):
    asked = FileSource(car_video, max_frames=2, planes=True)
    plain = FileSource(car_video, max_frames=2)
    try:
        for with_planes, without in zip(asked.frames(), plain.frames(), strict=True):
            assert without.planes is None
            planes = with_planes.planes
            assert planes is not None
            h, w = with_planes.image.shape[:2]
            assert planes.y.shape == (h, w) and planes.u.shape == planes.v.shape == (h // 2, w // 2)
            assert not planes.y.flags.writeable  # views on the decoder's buffers
            # the planes are the picture the RGB image came from
            again = cv2.cvtColor(
                np.vstack([planes.y, planes.u.reshape(-1, w), planes.v.reshape(-1, w)]), cv2.COLOR_YUV2RGB_I420
            )
            assert np.abs(again.astype(np.int16) - with_planes.image).mean() < 1.5
    finally:
        asked.close()
        plain.close()


def test_full_range_pictures_carry_no_planes(tmp_path):
    """MJPEG decodes to full-range 4:2:0 (yuvj420p): an H.264 encoder would misread its levels."""
    path = tmp_path / "full-range.avi"
    with av.open(str(path), "w") as container:
        stream = container.add_stream("mjpeg", rate=10)
        stream.width, stream.height, stream.pix_fmt = 64, 48, "yuvj420p"
        for i in range(2):
            frame = av.VideoFrame.from_ndarray(np.full((48, 64, 3), 40 * i, np.uint8), format="rgb24")
            for packet in stream.encode(frame.reformat(format="yuvj420p")):
                container.mux(packet)
        for packet in stream.encode(None):
            container.mux(packet)
    source = FileSource(path, planes=True)
    try:
        frames = list(source.frames())
    finally:
        source.close()
    assert frames and all(frame.planes is None for frame in frames)


def test_result_picture_is_rgb_and_encoders_take_the_planes(decoded, tmp_path):
    rgb, planes, labels = decoded[0]
    compositor = Compositor(FCN, alpha=0.5)
    frame = Frame("cam", 0, rgb, 0, Fraction(1, 25), 0.0, None, planes)
    composited = compositor.draw(frame, labels)
    result = Result.of(frame, labels, composited)
    h, w = labels.shape
    assert result.composited.shape == (h * 3 // 2, w) and result.size == (h, w)
    picture = result.picture
    assert picture.shape == (h, w, 3) and picture is result.picture  # converted once
    assert np.abs(picture.astype(np.int16) - compositor(rgb, labels)).mean() < 1.5
    # an RGB frame (no planes, or a mode that does not blend) draws in RGB as before
    assert compositor.draw(Frame("cam", 0, rgb, 0, None, 0.0), labels).shape == (h, w, 3)
    mask = Compositor(FCN, mode="mask").draw(frame, labels)
    assert mask.shape == (h, w, 3)
    with av.open(str(tmp_path / "planes.mp4"), "w") as container:
        stream = container.add_stream("libx264", rate=25)
        stream.width, stream.height, stream.pix_fmt = w, h, "yuv420p"
        encoded = encoder_frame(result.composited, stream)
        assert (encoded.width, encoded.height, encoded.format.name) == (w, h, "yuv420p")
        assert np.array_equal(encoded.to_ndarray(), result.composited)  # the planes as they are
        for packet in [*stream.encode(encoded), *stream.encode(None)]:
            container.mux(packet)
    with av.open(str(tmp_path / "planes.mp4")) as container:
        back = next(container.decode(video=0)).to_ndarray(format="rgb24")
    assert np.abs(back.astype(np.int16) - picture).mean() < 4  # H.264 at its default quality
