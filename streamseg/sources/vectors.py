"""The decoder's own motion vectors: asked for when a stream opens, read off each decoded frame.

H.264/HEVC decoders export each inter block's vector when asked (codec option
``flags2=+export_mvs``); PyAV hands them over as the frame's ``MOTION_VECTORS``
side data, a record array with one row per block. Asking costs a little decode
time, so a source asks only when its lane's steps read them (``--propagate mv``);
what they mean as a displacement field is ``streamseg.temporal.motion_vectors``'s.
"""

from __future__ import annotations

import av
import numpy as np

EXPORT_OPTIONS = {"flags2": "+export_mvs"}  # codec options that make the decoder attach the vectors


def export_vectors(stream: av.video.stream.VideoStream) -> None:
    """Ask ``stream``'s decoder for motion vectors; call before the first decode."""
    stream.codec_context.options = {**stream.codec_context.options, **EXPORT_OPTIONS}


def frame_vectors(frame: av.VideoFrame) -> np.ndarray | None:
    """The decoded ``frame``'s motion vectors as a numpy record array, or None when it has none.

    A frame shown rotated (display matrix) has none here: its vectors are in the coded picture's
    coordinates, not the upright picture the sources hand on.
    """
    if round((frame.rotation or 0) / 90) % 4:
        return None
    data = frame.side_data.get("MOTION_VECTORS")
    if data is None:
        return None
    vectors = data.to_ndarray()  # a view on the side data, which holds the decoded picture's buffers
    return vectors.copy() if len(vectors) else None  # a copy (~50 KB) lets the decoder reuse them at once
