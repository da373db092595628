"""streamseg: real-time video semantic segmentation.

decode -> preprocess -> infer -> composite -> encode/publish, linked by bounded queues.
"""

from __future__ import annotations

from streamseg.errors import StreamsegError
from streamseg.frames import Result

__version__ = "0.1.0"

__all__ = ["Pipeline", "Result", "RunConfig", "StreamsegError", "__version__"]


def __getattr__(name: str):
    # imported on first use, so `import streamseg` stays light
    if name == "Pipeline":
        from streamseg.pipeline import Pipeline

        return Pipeline
    if name == "RunConfig":
        from streamseg.config import RunConfig

        return RunConfig
    raise AttributeError(f"module 'streamseg' has no attribute {name!r}")
