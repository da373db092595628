"""Prometheus ``/metrics``, ``/health`` and the ``/sources`` REST API for a running pipeline.

``/sources`` lists the sources (GET), starts one (POST, a JSON body as a
``sources:`` entry) and stops one (DELETE /sources/NAME), as DeepStream's
nvmultiurisrcbin REST API does. Changes need the run's token, JSON and the server's
own Origin (``observe.access``), and touch only what ``observe.confine`` allows.
Everything else is read at scrape time from the pipeline's own counters (see
``LiveStats``), so the per-frame path does no metrics work except one bucket
increment per frame for the end-to-end latency histogram.
"""

from __future__ import annotations

from typing import Any
from urllib.parse import unquote

from pydantic import ValidationError

from streamseg.config import RunConfig, SourceSpec
from streamseg.errors import MissingExtraError, StreamsegError
from streamseg.frames import Result
from streamseg.logs import redact
from streamseg.outputs.servers.access import AccessRules, ApiToken, parse_json_body
from streamseg.outputs.servers.confine import Confinement, Forbidden
from streamseg.outputs.servers.http import BackgroundServer, QuietHandler
from streamseg.outputs.servers.live import LiveStats, gpu_memory
from streamseg.stage_stats import LATENCY_BUCKETS, StageStats
from streamseg.yamlfile import describe_validation_error

HEALTHY = ("starting", "running", "reconnecting")  # /health answers 200 for these, 503 for "stopped"
MAX_BODY = 64 * 1024  # bytes of a POST /sources body


def _prometheus():
    try:
        import prometheus_client
        from prometheus_client import core
    except ImportError:
        raise MissingExtraError("--metrics-port", "observe") from None
    return prometheus_client, core


class PipelineCollector:
    """A prometheus-client collector that reads the pipeline on every scrape."""

    def __init__(self, live: LiveStats, frame_latency: StageStats, coverage: dict | None = None):
        self.live = live
        self.frame_latency = frame_latency
        self.coverage = coverage if coverage is not None else {}  # source -> its newest frame's region coverage

    def describe(self) -> list:
        return []  # no fixed description: prometheus-client then skips a collect() at registration

    def collect(self):
        _, core = _prometheus()
        s = self.live.read()
        yield core.GaugeMetricFamily("streamseg_fps", "Frames out per second over the last few seconds", value=s["fps"])
        up = core.GaugeMetricFamily("streamseg_up", "1 for the pipeline's current state", labels=["state"])
        up.add_metric([s["state"]], 1.0)
        yield up
        frames = core.CounterMetricFamily("streamseg_frames", "Frames a stage has finished", labels=["stage"])
        latency = core.HistogramMetricFamily(
            "streamseg_stage_latency_seconds", "Time a stage spends on a frame", labels=["stage"]
        )
        cpu = core.CounterMetricFamily(
            "streamseg_stage_cpu_seconds",
            "CPU time of a stage's own thread (not the engine's or codecs' threads: see process CPU)",
            labels=["stage"],
        )
        for name, stats in s["stages"].items():
            frames.add_metric([name], stats.items)
            latency.add_metric([name], _cumulative(list(stats.bucket_counts)), sum_value=stats.busy)
            cpu.add_metric([name], stats.cpu)
        yield frames
        yield latency
        yield cpu
        yield core.CounterMetricFamily(
            "streamseg_process_cpu_seconds",
            "CPU time of the whole process, every thread, since the run started",
            value=s["cpu_seconds"],
        )
        end_to_end = core.HistogramMetricFamily(
            "streamseg_frame_latency_seconds", "Capture to label map and picture, per frame"
        )
        end_to_end.add_metric(
            [], _cumulative(list(self.frame_latency.bucket_counts)), sum_value=self.frame_latency.busy
        )
        yield end_to_end
        depth = core.GaugeMetricFamily("streamseg_queue_depth", "Items waiting in a stage queue", labels=["queue"])
        capacity = core.GaugeMetricFamily("streamseg_queue_capacity", "A stage queue's maxsize", labels=["queue"])
        dropped = core.CounterMetricFamily(
            "streamseg_dropped_frames", "Frames a full queue dropped (live sources)", labels=["queue"]
        )
        for name, q in s["queues"].items():
            depth.add_metric([name], q["depth"])
            capacity.add_metric([name], q["maxsize"])
            dropped.add_metric([name], q["dropped"])
        yield depth
        yield capacity
        yield dropped
        yield core.CounterMetricFamily("streamseg_reconnects", "Times a live source reconnected", value=s["reconnects"])
        yield core.CounterMetricFamily(
            "streamseg_output_reconnects", "Times a stream output reconnected", value=s["output_reconnects"]
        )
        batches = core.CounterMetricFamily("streamseg_batches", "Inference calls, by frames per call", labels=["size"])
        for size, count in sorted(s["batches"].items()):
            batches.add_metric([str(size)], count)
        yield batches
        engine = s.get("engine") or {}
        if engine:
            yield core.GaugeMetricFamily(
                "streamseg_engine_streams", "Inference calls the engine may run at once", value=engine["streams"]
            )
            yield core.GaugeMetricFamily(
                "streamseg_engine_queued",
                "Inference calls queued beside the running ones",
                value=engine["queued"],
            )
            yield core.GaugeMetricFamily(
                "streamseg_infer_in_flight", "Inference calls submitted and not done", value=engine["in_flight"]
            )
        yield from self._per_source(core, s["sources"])
        bus = getattr(self.live.pipeline, "events", None)
        if bus is not None:
            from streamseg.events.metrics import event_metrics

            yield from event_metrics(core, bus, dict(self.coverage))
        gpus = gpu_memory()
        if gpus:
            memory = core.GaugeMetricFamily("streamseg_gpu_memory_bytes", "GPU memory", labels=["device", "kind"])
            for device, kinds in gpus.items():
                for kind, value in kinds.items():
                    memory.add_metric([device, kind], value)
            yield memory

    @staticmethod
    def _per_source(core, sources: dict[str, dict]):
        """The same figures for each source, labelled ``source``."""
        fps = core.GaugeMetricFamily("streamseg_source_fps", "A source's frames out per second", labels=["source"])
        state = core.GaugeMetricFamily(
            "streamseg_source_up", "1 for a source's current state", labels=["source", "state"]
        )
        written = core.CounterMetricFamily("streamseg_source_frames", "Frames a source has written", labels=["source"])
        latency = core.HistogramMetricFamily(
            "streamseg_source_latency_seconds", "Capture to written to every output, per frame", labels=["source"]
        )
        dropped = core.CounterMetricFamily(
            "streamseg_source_dropped_frames", "Frames a source's queues dropped", labels=["source"]
        )
        reconnects = core.CounterMetricFamily(
            "streamseg_source_reconnects", "Times a live source reconnected", labels=["source"]
        )
        for name, one in sources.items():
            fps.add_metric([name], one["fps"])
            state.add_metric([name, one["state"]], 1.0)
            written.add_metric([name], one["frames_out"])
            latency.add_metric([name], _cumulative(list(one["latency"].bucket_counts)), sum_value=one["latency"].busy)
            dropped.add_metric([name], one["dropped"])
            reconnects.add_metric([name], one["reconnects"])
        yield from (fps, state, written, latency, dropped, reconnects)
        yield from _temporal(core, sources)


def _temporal(core, sources: dict[str, dict]):
    """With --interval/--latency-budget: each source's setting now, and frames per setting since the start."""
    interval = core.GaugeMetricFamily(
        "streamseg_source_inference_interval",
        "Infer one frame in this many (the latency budget's current choice)",
        labels=["source"],
    )
    size = core.GaugeMetricFamily(
        "streamseg_source_input_size",
        "Model input short side in px now (0: a fixed-size model's own)",
        labels=["source"],
    )
    frames = core.CounterMetricFamily(
        "streamseg_source_setting_frames",
        "Frames decided under each setting",
        labels=["source", "interval", "input_size"],
    )
    carried = core.CounterMetricFamily(
        "streamseg_source_carried_frames",
        "Frames whose labels were carried from the last inferred one, by what carried them (flow, mv, held)",
        labels=["source", "by"],
    )
    temporal = {name: one["temporal"] for name, one in sources.items() if one.get("temporal")}
    if not temporal:
        return
    for name, t in temporal.items():
        interval.add_metric([name], t["interval"])
        size.add_metric([name], t["input_size"])
        for (n, s), count in sorted(t["setting_frames"].items()):
            frames.add_metric([name, str(n), str(s)], count)
        for by, count in sorted(t.get("carried_by", {}).items()):
            carried.add_metric([name, by], count)
    yield from (interval, size, frames, carried)


def _cumulative(counts: list[int]) -> list[tuple[str, float]]:
    """Per-bucket counts -> prometheus's cumulative (le, count) pairs, +Inf last."""
    pairs: list[tuple[str, float]] = []
    total = 0
    for bound, count in zip([*map(str, LATENCY_BUCKETS), "+Inf"], counts):
        total += count
        pairs.append((bound, total))
    return pairs


class MetricsServer:
    """``/metrics`` (Prometheus text format) and ``/health`` on ``host:port``; also a sink.

    As a sink it only bins each result's end-to-end latency (and keeps a reference to its regions' coverage).
    """

    def __init__(self, pipeline: Any, port: int, host: str = "127.0.0.1"):
        prometheus_client, core = _prometheus()
        self.pipeline = pipeline
        self.live = LiveStats(pipeline)
        self.frame_latency = StageStats("frame")  # capture -> composited, binned like the stages
        self.coverage: dict[str, dict[str, dict[str, float]]] = {}  # source -> newest coverage, with regions
        self.registry = core.CollectorRegistry(auto_describe=False)  # ours alone: several pipelines may run
        self.registry.register(PipelineCollector(self.live, self.frame_latency, self.coverage))
        self.content_type = prometheus_client.CONTENT_TYPE_LATEST
        config: RunConfig = pipeline.config
        self.confinement = Confinement.from_config(config)
        token = _api_token(config)
        self.access = AccessRules(config.api, token)
        try:
            self._server = BackgroundServer(
                "metrics", "--metrics-port", _MetricsHandler, self, port, host, always=("/health",)
            )
        except BaseException:
            if token is not None:
                token.close()
            raise
        self.port, self.url = self._server.port, self._server.url

    def write(self, result: Result) -> None:
        self.frame_latency.add(result.latency)
        if result.coverage is not None:
            self.coverage[result.source] = result.coverage

    def render(self) -> bytes:
        from prometheus_client import generate_latest

        return generate_latest(self.registry)

    def health(self) -> tuple[int, dict[str, Any]]:
        s = self.live.read()
        body = {
            "status": s["state"],
            "frames": s["frames_out"],
            "fps": round(s["fps"], 3),
            "uptime_s": round(s["elapsed"], 3),
            "sources": {},
        }
        for name, one in s["sources"].items():
            body["sources"][name] = {"state": one["state"], "frames": one["frames_out"], "fps": round(one["fps"], 3)}
            if one.get("problem") and one["state"] == "reconnecting":  # e.g. "lost: no decodable picture for 10 s"
                body["sources"][name]["problem"] = one["problem"]
                if len(s["sources"]) == 1:
                    body["source_problem"] = one["problem"]
        return (200 if s["state"] in HEALTHY else 503), body

    def close(self, complete: bool = True) -> None:
        self._server.close()
        if self.access.token is not None:
            self.access.token.close()


def _api_token(config: RunConfig) -> ApiToken | None:
    """The caller's token (--api-token-file), a new one in the user's runtime folder, or none (--api off/read-only)."""
    if config.api != "on":
        return None
    return ApiToken.from_file(config.api_token_file) if config.api_token_file else ApiToken.create()


class _MetricsHandler(QuietHandler):
    def do_GET(self) -> None:
        metrics: MetricsServer = self.app
        path = self.path.split("?", 1)[0]
        if path == "/metrics":
            self.send_body(metrics.render(), metrics.content_type)
        elif path == "/health":
            status, body = metrics.health()
            self.send_json(body, status)
        elif path == "/sources" and not self.refused_by(self.app.access):
            self.send_json(sources_list(metrics.pipeline))
        elif path != "/sources":
            self.send_json({"error": "not found", "paths": ["/metrics", "/health", "/sources"]}, 404)

    def do_POST(self) -> None:
        """``POST /sources`` with a JSON body: ``uri``, optional ``name``, ``outputs`` and live options."""
        if self.path.split("?", 1)[0] != "/sources":
            self.send_json({"error": "not found"}, 404)
            return
        if self.refused_by(self.app.access):
            return
        metrics: MetricsServer = self.app
        pipeline, confinement = metrics.pipeline, metrics.confinement
        try:
            length = int(self.headers.get("Content-Length") or 0)
            if not 0 < length <= MAX_BODY:
                raise ValueError(f"a JSON body of 1..{MAX_BODY} bytes is needed")
            body = parse_json_body(self.rfile.read(length))
            if not isinstance(body, dict):
                raise ValueError("the body must be a JSON object")
            try:
                spec = SourceSpec.model_validate(body)
            except ValidationError as err:
                raise ValueError(describe_validation_error(err, "source")) from None
            confinement.check_source(spec.uri)
            name = pipeline.add_source(
                spec, admit=lambda spec, outputs: confinement.check_outputs(spec, outputs, pipeline.config)
            )
        except Forbidden as err:
            self.send_json({"error": redact(str(err))}, 403)
            return
        except (ValueError, StreamsegError) as err:
            self.send_json({"error": redact(str(err))}, 400)
            return
        self.send_json({"name": name}, 201)

    def do_DELETE(self) -> None:
        """``DELETE /sources/NAME``: that source stops; its outputs are finalized."""
        path = self.path.split("?", 1)[0]
        if not path.startswith("/sources/"):
            self.send_json({"error": "not found"}, 404)
            return
        if self.refused_by(self.app.access):
            return
        name = unquote(path[len("/sources/") :])
        try:
            self.app.pipeline.remove_source(name)
        except StreamsegError as err:
            self.send_json({"error": redact(str(err))}, 404)
            return
        self.send_json({"removed": name}, 200)


def sources_list(pipeline: Any) -> list[dict[str, Any]]:
    """``GET /sources``: every source this run has had, with its state and counts."""
    return [
        {
            "name": name,
            "uri": one["uri"],
            "state": one["state"],
            "frames": one["written"],
            "dropped": one["dropped"],
            "reconnects": int(one.get("reconnects", 0)),
        }
        for name, one in pipeline.snapshot()["sources"].items()
    ]
