"""The form a torchvision segmentation model is exported in, and loaded back in by the torch backend.

torchvision's models return a dict (``out``, ``aux``); the exported graph returns ``out`` alone, through a
wrapper whose weights carry the ``inner.`` prefix in the ONNX.
"""

from __future__ import annotations

from streamseg.models.torch_compat import import_torch

WRAPPER_PREFIX = "inner."  # the wrapped model's weight names in the ONNX start with it


def out_only(module):
    """The model returning ``out`` alone (torchvision returns a dict with ``aux``)."""
    import_torch()  # the export extra's error when torch is absent
    from torch import nn

    class OutOnly(nn.Module):
        def __init__(self, inner):
            super().__init__()
            self.inner = inner  # named as WRAPPER_PREFIX says

        def forward(self, x):
            return self.inner(x)["out"]

    return OutOnly(module).eval()
