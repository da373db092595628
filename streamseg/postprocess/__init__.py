"""Postprocess: raw model outputs to label maps."""

from streamseg.postprocess.cpu import CpuPostprocessor, argmax_labels, duc_unpack

__all__ = ["CpuPostprocessor", "argmax_labels", "duc_unpack"]
