"""The picture handed to an encoder: OpenCV's 4:2:0 planes equal the ones FFmpeg's own conversion makes."""

from __future__ import annotations

import io

import av
import numpy as np

from streamseg.outputs.encoder import configure, encoder_frame
from streamseg.stage_options import EncoderOptions


def test_yuv420_planes_match_ffmpeg_and_odd_sizes_stay_rgb(car_video):
    with av.open(str(car_video)) as container:
        picture = next(container.decode(video=0)).to_ndarray(format="rgb24")
    with av.open(io.BytesIO(), "w", format="mp4") as out:
        stream = out.add_stream("libx264", rate=25)
        configure(stream, EncoderOptions(), picture.shape[1], picture.shape[0])
        frame = encoder_frame(picture, stream)
        assert frame.format.name == "yuv420p"
        ffmpeg = av.VideoFrame.from_ndarray(picture, format="rgb24").reformat(format="yuv420p").to_ndarray()
        assert np.abs(frame.to_ndarray().astype(int) - ffmpeg.astype(int)).max() <= 1
    odd = picture[:431, :767]
    with av.open(io.BytesIO(), "w", format="mp4") as out:
        stream = out.add_stream("libx264", rate=25)
        configure(stream, EncoderOptions(), odd.shape[1], odd.shape[0])  # 4:4:4 keeps odd sizes
        assert encoder_frame(np.ascontiguousarray(odd), stream).format.name == "rgb24"
