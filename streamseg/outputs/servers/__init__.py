"""Watching a running pipeline: Prometheus /metrics and /health, and the live preview page."""

from streamseg.outputs.servers.live import LiveStats
from streamseg.outputs.servers.metrics import MetricsServer
from streamseg.outputs.servers.preview import PreviewServer

__all__ = ["LiveStats", "MetricsServer", "PreviewServer"]
