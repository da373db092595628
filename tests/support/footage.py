"""Comparing two backends frame by frame on decoded footage."""

from __future__ import annotations

import numpy as np

from streamseg.sources import open_source


def compare_on_footage(ours, reference, spec, video, frames: int) -> list[tuple[float, float]]:
    """(relative max logit error, label agreement) of ``ours`` against ``reference`` per decoded frame."""
    from streamseg.preprocess import CpuPreprocessor

    pre = CpuPreprocessor(spec)
    source = open_source(str(video), max_frames=frames)
    results = []
    try:
        for frame in source.frames():
            tensor = pre(frame).tensor
            got, expected = ours.run(tensor), reference.run(tensor)
            assert got.shape == expected.shape and got.dtype == np.float32
            relative = float(np.abs(got - expected).max() / np.abs(expected).max())
            agreement = float((got.argmax(1) == expected.argmax(1)).mean())
            print(
                f"frame {frame.index}: {ours.name} vs {reference.name}: relative logit error {relative:.2e}, "
                f"label agreement {agreement:.5f}"
            )
            results.append((relative, agreement))
    finally:
        source.close()
    assert len(results) == frames
    return results
