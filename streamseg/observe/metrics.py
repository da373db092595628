"""Prometheus ``/metrics`` and ``/health`` for a running pipeline.

Everything is read at scrape time from the pipeline's own counters (see
``LiveStats``), so the per-frame path does no metrics work except one bucket
increment per frame for the end-to-end latency histogram.
"""

from __future__ import annotations

from typing import Any

from streamseg.errors import MissingExtraError
from streamseg.frames import Result
from streamseg.observe.http import BackgroundServer, QuietHandler
from streamseg.observe.live import LiveStats, gpu_memory
from streamseg.workers import LATENCY_BUCKETS, StageStats

HEALTHY = ("starting", "running", "reconnecting")  # /health answers 200 for these, 503 for "stopped"


def _prometheus():
    try:
        import prometheus_client
        from prometheus_client import core
    except ImportError:
        raise MissingExtraError("--metrics-port", "observe") from None
    return prometheus_client, core


class PipelineCollector:
    """A prometheus-client collector that reads the pipeline on every scrape."""

    def __init__(self, live: LiveStats, frame_latency: StageStats):
        self.live = live
        self.frame_latency = frame_latency

    def describe(self) -> list:
        return []  # no fixed description: prometheus-client then skips a collect() at registration

    def collect(self):
        _, core = _prometheus()
        s = self.live.read()
        yield core.GaugeMetricFamily("streamseg_fps", "Frames out per second over the last few seconds",
                                     value=s["fps"])
        up = core.GaugeMetricFamily("streamseg_up", "1 for the pipeline's current state", labels=["state"])
        up.add_metric([s["state"]], 1.0)
        yield up
        frames = core.CounterMetricFamily("streamseg_frames", "Frames a stage has finished", labels=["stage"])
        latency = core.HistogramMetricFamily("streamseg_stage_latency_seconds", "Time a stage spends on a frame",
                                             labels=["stage"])
        for name, stats in s["stages"].items():
            frames.add_metric([name], stats.items)
            latency.add_metric([name], _cumulative(list(stats.bucket_counts)), sum_value=stats.busy)
        yield frames
        yield latency
        end_to_end = core.HistogramMetricFamily("streamseg_frame_latency_seconds",
                                                "Capture to label map and picture, per frame")
        end_to_end.add_metric([], _cumulative(list(self.frame_latency.bucket_counts)),
                              sum_value=self.frame_latency.busy)
        yield end_to_end
        depth = core.GaugeMetricFamily("streamseg_queue_depth", "Items waiting in a stage queue", labels=["queue"])
        capacity = core.GaugeMetricFamily("streamseg_queue_capacity", "A stage queue's maxsize", labels=["queue"])
        dropped = core.CounterMetricFamily("streamseg_dropped_frames", "Frames a full queue dropped (live sources)",
                                           labels=["queue"])
        for name, q in s["queues"].items():
            depth.add_metric([name], q["depth"])
            capacity.add_metric([name], q["maxsize"])
            dropped.add_metric([name], q["dropped"])
        yield depth
        yield capacity
        yield dropped
        yield core.CounterMetricFamily("streamseg_reconnects", "Times a live source reconnected",
                                       value=s["reconnects"])
        yield core.CounterMetricFamily("streamseg_output_reconnects", "Times a stream output reconnected",
                                       value=s["output_reconnects"])
        gpus = gpu_memory()
        if gpus:
            memory = core.GaugeMetricFamily("streamseg_gpu_memory_bytes", "GPU memory", labels=["device", "kind"])
            for device, kinds in gpus.items():
                for kind, value in kinds.items():
                    memory.add_metric([device, kind], value)
            yield memory


def _cumulative(counts: list[int]) -> list[tuple[str, float]]:
    """Per-bucket counts -> prometheus's cumulative (le, count) pairs, +Inf last."""
    pairs, total = [], 0
    for bound, count in zip([*map(str, LATENCY_BUCKETS), "+Inf"], counts):
        total += count
        pairs.append((bound, total))
    return pairs


class MetricsServer:
    """``/metrics`` (Prometheus text format) and ``/health`` on ``host:port``; also a sink.

    As a sink it only bins each result's end-to-end latency.
    """

    def __init__(self, pipeline: Any, port: int, host: str = "127.0.0.1"):
        prometheus_client, core = _prometheus()
        self.live = LiveStats(pipeline)
        self.frame_latency = StageStats("frame")  # capture -> composited, binned like the stages
        self.registry = core.CollectorRegistry(auto_describe=False)  # ours alone: several pipelines may run
        self.registry.register(PipelineCollector(self.live, self.frame_latency))
        self.content_type = prometheus_client.CONTENT_TYPE_LATEST
        self._server = BackgroundServer("metrics", "--metrics-port", _MetricsHandler, self, port, host)
        self.port, self.url = self._server.port, self._server.url

    def write(self, result: Result) -> None:
        self.frame_latency.add(result.latency)

    def render(self) -> bytes:
        from prometheus_client import generate_latest

        return generate_latest(self.registry)

    def health(self) -> tuple[int, dict[str, Any]]:
        s = self.live.read()
        body = {"status": s["state"], "frames": s["frames_out"], "fps": round(s["fps"], 3),
                "uptime_s": round(s["elapsed"], 3)}
        problem = getattr(getattr(self.live.pipeline, "source", None), "problem", None)
        if problem and s["state"] == "reconnecting":  # e.g. "lost: no decodable picture for 10 s"
            body["source_problem"] = problem
        return (200 if s["state"] in HEALTHY else 503), body

    def close(self, complete: bool = True) -> None:
        self._server.close()


class _MetricsHandler(QuietHandler):
    def do_GET(self) -> None:
        metrics: MetricsServer = self.app
        path = self.path.split("?", 1)[0]
        if path == "/metrics":
            self.send_body(metrics.render(), metrics.content_type)
        elif path == "/health":
            status, body = metrics.health()
            self.send_json(body, status)
        else:
            self.send_json({"error": "not found", "paths": ["/metrics", "/health"]}, 404)
