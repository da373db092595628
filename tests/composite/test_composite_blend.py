"""The one-pass uint8 compositor against a plain float blend, on decoded frames of real footage."""

from __future__ import annotations

import numpy as np
import pytest

from streamseg.composite import Compositor
from streamseg.models import ZOO
from tests.support.hue_labels import decoded_with_labels

FCN = ZOO["fcn_resnet50"].spec


def float_reference(compositor: Compositor, image: np.ndarray, labels: np.ndarray) -> np.ndarray:
    """The blend written the obvious way: a float frame, fancy indexing, np.where."""
    color = compositor.lut[labels]
    blended = np.rint(image * (1.0 - compositor.alpha) + color * compositor.alpha).clip(0, 255).astype(np.uint8)
    overlay = np.where(compositor.drawn[labels][..., None], blended, image)
    if compositor.mode == "mask":
        return color
    if compositor.mode == "overlay":
        return overlay
    return np.hstack([overlay, color])


@pytest.fixture(scope="module")
def frames_and_labels(car_video):
    """Three decoded frames, with labels that follow the picture (hue classes made at 1/8 size and resized)."""
    return [(rgb, labels) for _, rgb, labels in decoded_with_labels(car_video, 3, FCN.num_classes)]


@pytest.mark.parametrize("mode", ["overlay", "mask", "side-by-side"])
@pytest.mark.parametrize("alpha", [0.5, 0.37])
@pytest.mark.parametrize("classes", [None, ["car", "person", "bus"]])
def test_one_pass_blend_matches_a_float_blend_within_one_level(frames_and_labels, mode, alpha, classes):
    compositor = Compositor(FCN, mode=mode, alpha=alpha, classes=classes)
    for rgb, labels in frames_and_labels:
        assert len(np.unique(labels)) > 3  # the labels really vary over the frame
        got = compositor(rgb, labels)
        want = float_reference(compositor, rgb, labels)
        assert got.dtype == np.uint8 and got.shape == want.shape
        assert np.abs(got.astype(np.int16) - want).max() <= 1
        if mode != "mask":
            undrawn = ~compositor.drawn[labels]
            assert undrawn.any() and (got[:, : rgb.shape[1]][undrawn] == rgb[undrawn]).all()
