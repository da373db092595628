"""Watching a running pipeline: Prometheus /metrics and /health, and the live preview page."""

from streamseg.observe.live import LiveStats
from streamseg.observe.metrics import MetricsServer
from streamseg.observe.preview import PreviewServer

__all__ = ["LiveStats", "MetricsServer", "PreviewServer"]
