"""What compute devices this machine has, probed without loading a backend.

Here, not in ``backends/``, so sources (NVDEC), backends, evaluation and the tests all ask one place
and none of them imports another's package to find out.
"""

from __future__ import annotations

import ctypes.util
import importlib.util
import os


def cuda_present() -> bool:
    """Whether a CUDA GPU is usable; looks for the driver before paying for ``import torch``."""
    if not (os.path.exists("/proc/driver/nvidia/version") or ctypes.util.find_library("cuda")):
        return False
    if importlib.util.find_spec("torch") is None:
        return False
    import torch

    return torch.cuda.is_available()
