"""Draw label maps with torch ops on the GPU: the same palette, classes and blend as ``Compositor``.

The lookup tables come from a ``Compositor``, so both paths draw the same
classes in the same colors; the blend rounds as ``cv2.addWeighted`` does.
"""

from __future__ import annotations

from streamseg.composite.overlay import Compositor


class TorchCompositor:
    """(H, W, 3) uint8 frame + (H, W) uint8 labels on a torch device -> the picture, on that device."""

    def __init__(self, compositor: Compositor, device: str = "cuda"):
        import torch

        self._torch = torch
        self.mode = compositor.mode
        self.alpha = float(compositor.alpha)
        self.lut = torch.from_numpy(compositor.lut).to(device)  # (256, 3) uint8, undrawn classes black
        self.drawn = torch.from_numpy(compositor.drawn).to(device)  # (256,) bool

    def __call__(self, image, labels):
        torch = self._torch
        index = labels.long()
        color = self.lut[index]
        if self.mode == "mask":
            return color
        blended = (image.float() * (1.0 - self.alpha) + color.float() * self.alpha).round_().clamp_(0, 255)
        overlay = torch.where(self.drawn[index][..., None], blended.to(torch.uint8), image)
        if self.mode == "overlay":
            return overlay
        return torch.cat([overlay, color], dim=1)
