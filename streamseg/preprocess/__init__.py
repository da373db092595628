"""Preprocess stage: decoded frames to model input tensors."""

from streamseg.preprocess.cpu import CpuPreprocessor, plan_geometry

__all__ = ["CpuPreprocessor", "plan_geometry"]
