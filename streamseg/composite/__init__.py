"""Composite stage: labels drawn over frames."""

from streamseg.composite.overlay import MODES, Compositor

__all__ = ["MODES", "Compositor"]
