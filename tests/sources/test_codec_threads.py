"""Decoder and encoder threads: a quarter of the cores by default, the flags' count when given; same pictures."""

from __future__ import annotations

import io

import av
import numpy as np

from streamseg.cores import codec_threads, usable_cores
from streamseg.outputs.encoder import configure
from streamseg.sources import open_source
from streamseg.stage_options import EncoderOptions, SourceOptions


def test_default_is_a_quarter_of_the_cores_at_least_one():
    assert codec_threads() == max(1, usable_cores() // 4)
    assert codec_threads(3) == 3


def test_decoded_frames_do_not_depend_on_the_decoder_threads(car_video):
    pictures = []
    for threads in (1, 3):
        source = open_source(str(car_video), max_frames=12, options=SourceOptions(decode_threads=threads))
        try:
            pictures.append([frame.image for frame in source.frames()])
        finally:
            source.close()
    assert len(pictures[0]) == len(pictures[1]) == 12
    assert all(np.array_equal(a, b) for a, b in zip(*pictures, strict=True))


def test_libx264_gets_the_thread_count():
    for asked, expected in ((None, codec_threads()), (3, 3)):
        with av.open(io.BytesIO(), "w", format="mp4") as container:
            stream = container.add_stream("libx264", rate=25)
            configure(stream, EncoderOptions(encode_threads=asked), 64, 48)
            assert stream.options["threads"] == str(expected)


def test_a_run_gives_opencv_a_codec_share_of_the_cores(car_video, tmp_path):
    """OpenCV's own default is a worker per core for every call; a run sets a codec's share, and the frames it
    decodes to RGB (one swscale thread) are those of a plain PyAV conversion."""
    import cv2

    from streamseg import Pipeline
    from tests.support.onnx_models import HEAD_SPEC, head_model

    model = head_model(tmp_path, HEAD_SPEC)
    before = cv2.getNumThreads()
    cv2.setNumThreads(usable_cores() + 3)  # whatever it was: the run decides
    try:
        with Pipeline(str(car_video), model=model, spec=HEAD_SPEC, max_frames=3) as pipeline:
            assert cv2.getNumThreads() == codec_threads()
            images = [result.frame for result in pipeline]
    finally:
        cv2.setNumThreads(before)
    with av.open(str(car_video)) as container:
        plain = [frame.to_ndarray(format="rgb24") for _, frame in zip(range(3), container.decode(video=0))]
    assert len(images) == 3 and all(np.array_equal(a, b) for a, b in zip(images, plain, strict=True))
