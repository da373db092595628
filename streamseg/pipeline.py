"""The pipeline, wired as the README's diagram draws it, for one source or many:

    source 1: decode -> preprocess ─┐                 ┌─> composite -> outputs ─┐
    source 2: decode -> preprocess ─┼─> infer (batch) ┼─> composite -> outputs ─┼─> results
    source N: decode -> preprocess ─┘                 └─> composite -> outputs ─┘

Each source is a ``SourceLane`` with its own threads and bounded queues (files
lossless, live sources drop oldest); one ``FrameCollector`` runs the model for all
of them, batched. Sources can be added and removed while it runs.
"""

from __future__ import annotations

import dataclasses
import logging
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from streamseg.backends import create_backend
from streamseg.collector import FrameCollector
from streamseg.composite import Compositor
from streamseg.config import RunConfig, SourceSpec
from streamseg.errors import ConfigError, SinkError, StreamsegError
from streamseg.events import EventBus
from streamseg.frames import Result
from streamseg.lane import SourceLane
from streamseg.logs import redact
from streamseg.models import resolve_model
from streamseg.models.spec import ModelSpec
from streamseg.outputs import Sink, delivery_counts, output_links
from streamseg.outputs.naming import SourceOutputs, check_name, expand, source_name, unique_names
from streamseg.outputs.paths import OutputPath, check_output_paths
from streamseg.preprocess import CpuPreprocessor
from streamseg.queues import END, Closed, FillPolicy, StageQueue
from streamseg.sources import is_live
from streamseg.stage_stats import StageStats
from streamseg.stages import make_stages
from streamseg.stages.cpu import CpuLane
from streamseg.stages.temporal import TemporalLane, budget_sizes, held_frames
from streamseg.temporal import FixedInterval, ScoreSmoother

if TYPE_CHECKING:
    from streamseg.backends.base import Backend
    from streamseg.outputs.messages.zmq_pub import LabelPublisher
    from streamseg.outputs.servers import MetricsServer, PreviewServer

log = logging.getLogger(__name__)


class SourcesFailed(StreamsegError):
    """Some sources of a multi-source run failed for good; the others ran to their end."""


@dataclass
class RunSummary:
    source: str  # the source's name; several: their names, comma-separated
    backend: str
    frames_in: int
    frames_out: int
    dropped: dict[str, int]  # frames a full queue dropped, per queue name (live sources)
    stages: dict[str, dict[str, float]]
    queue_peaks: dict[str, int]
    wall_seconds: float
    stopped_early: bool
    extra: dict[str, Any] = field(default_factory=dict)
    latency: dict[str, float] = field(default_factory=dict)  # capture -> written to every output
    sources: list[dict[str, Any]] = field(default_factory=list)  # one row per source
    batches: dict[int, int] = field(default_factory=dict)  # frames per inference call -> calls
    results_dropped: int = 0  # written, then dropped before a slow API consumer took them
    failed: dict[str, str] = field(default_factory=dict)  # source name -> why it failed
    delivered: dict[str, int] = field(default_factory=dict)  # frames each output wrote or sent, by output name

    @property
    def fps(self) -> float:
        return self.frames_out / self.wall_seconds if self.wall_seconds > 0 else 0.0


class Pipeline:
    """Segments one or many video sources; iterate it for results, or ``run()`` it to the outputs.

    >>> with Pipeline("street.mp4", model="m.onnx", outputs=["out.mp4"]) as p:
    ...     for r in p:
    ...         print(r.source, r.index, r.labels.shape)

    ``source`` is one URI or a list of them (files and live sources mixed); with
    several, output paths are templates (``out/{name}.mp4``).
    """

    def __init__(
        self,
        source: str | Path | Sequence[str | Path | dict] | None = None,
        model: str | Path | None = None,
        *,
        config: RunConfig | None = None,
        on_result: Callable[[Result], None] | None = None,
        sinks: Sequence[Sink] = (),
        **options: Any,
    ):
        values = config.model_dump(exclude_unset=True) if config is not None else {}
        values.update(options)
        if source is not None:
            values["sources"] = [source] if isinstance(source, (str, Path, dict)) else list(source)
        if model is not None:
            values["model"] = str(model)
        self.config = RunConfig.build(values)
        if self.config.model is None:
            raise ConfigError("model: no model given (--model NAME|PATH.onnx)")
        if not self.config.sources:
            raise ConfigError("sources: no input given")
        self.on_result = on_result
        self.lanes: dict[str, SourceLane] = {}  # name -> lane, every lane this run had, in order
        self.backend: Backend | None = None
        self.spec: ModelSpec | None = None
        self.metrics: MetricsServer | None = None  # the /metrics, /health and /sources server, with --metrics-port
        self.preview: PreviewServer | None = None  # the preview page server, with --preview
        self.publisher: LabelPublisher | None = None  # the label-map publisher, with --publish
        self.downstream: list[Sink] = []  # MCAP, Foxglove, MQTT, Kafka sinks, each serving every source
        self.events = EventBus()  # event starts and ends: .subscribe(callback), .listen() (streamseg.events)
        self._extra_sinks = list(sinks)  # caller-made sinks (publishers, previews), closed with ours
        self._shared: list[Sink] = []  # sinks every source writes to
        self._stopping = threading.Event()
        self._errors: list[BaseException] = []  # pipeline-wide: the model failed, not one source
        self._lock = threading.Lock()
        self._arrived = threading.Event()
        self._batcher: FrameCollector | None = None
        self._results: StageQueue | None = None
        self._running = 0  # lanes whose END has not come out of the results queue yet
        self._ever = 0  # lanes ever added (for {index})
        self._started_at = self._finished_at = 0.0
        self._closed = False
        self._budget_specs: dict[int | None, ModelSpec] = {}  # with --latency-budget: the spec per input size

    # -- set-up --------------------------------------------------------------------------
    def start(self) -> Pipeline:
        if self.config.metrics_port is not None:  # first, so /health says "starting" while the model loads
            from streamseg.outputs.servers import MetricsServer

            self.metrics = MetricsServer(self, self.config.metrics_port, self.config.serve_host)
        try:
            return self._start()
        except BaseException:
            self._close_shared(complete=False)
            raise

    def _start(self) -> Pipeline:
        cfg = self.config
        specs = list(cfg.sources)
        if len(specs) > cfg.max_sources:
            raise ConfigError(f"{len(specs)} sources given, more than --max-sources {cfg.max_sources}")
        names = self._names(specs)
        plans = [(name, self._outputs_for(spec, name, i)) for i, (spec, name) in enumerate(zip(specs, names))]
        owner = len(plans) > 1
        # before anything opens: an output never replaces an input or another output
        shared = [OutputPath("--mcap", cfg.mcap)] if cfg.mcap else []  # one file every source writes to
        check_output_paths(
            [s.uri for s in specs],
            [*shared, *(p for name, out in plans for p in out.paths(cfg, name if owner else None))],
        )
        assert cfg.model is not None, "checked in __init__"
        model_path, spec = resolve_model(cfg.model, cfg.spec)
        self.spec = spec = spec.with_short_side(cfg.input_size)
        plans = [(name, self._with_events(out, s, name)) for (name, out), s in zip(plans, specs)]  # checked now
        if cfg.webhook:
            from streamseg.events.webhook import check_webhook_url

            check_webhook_url(cfg.webhook)
        self._budget_specs = self._latency_budget_specs(spec)
        wanted = cfg.batch or len(specs)
        self.backend = backend = create_backend(
            cfg.backend,
            model_path,
            spec,
            threads=cfg.threads,
            precision=cfg.precision,
            winograd=cfg.winograd,
            compile=cfg.compile,
            batch=wanted,
        )
        batch = min(wanted, backend.max_batch or wanted)
        compositor = Compositor(spec, mode=cfg.overlay, alpha=cfg.alpha, classes=cfg.classes)
        self.stages = make_stages(backend, spec, compositor, scores=cfg.scores)
        # a file anywhere: results wait for the reader (lossless); live only: the reader gets the newest
        any_file = any(not is_live(s.uri, s.live_options(cfg.live)) for s in specs)
        self._shared = self._open_shared_sinks(spec, live=not any_file) + self._extra_sinks
        self._attach_events()
        size = max(cfg.queue_size or (4 if any_file else 1), len(specs))
        if cfg.temporal:  # the frames carried behind a key frame come out together: room for all of them
            size = max(size, held_frames(cfg.interval, cfg.latency_budget) + 1)
        self._results = StageQueue("results", size, FillPolicy.BLOCK if any_file else FillPolicy.DROP_OLDEST)
        self._batcher = FrameCollector(
            self.stages.infer,
            prepare=self.stages.prepare,
            max_batch=batch,
            timeout=cfg.batch_timeout / 1000,
            stopping=self._stopping,
            on_error=self._fail,
            arrived=self._arrived,
        )
        self._started_at = time.perf_counter()
        self._batcher.start()
        for (name, outputs), source_spec in zip(plans, specs):
            self._add_lane(source_spec, name, outputs)
        return self

    def _names(self, specs: Sequence[SourceSpec], taken: Sequence[str] = ()) -> list[str]:
        given = [check_name(s.name) for s in specs if s.name]
        clash = sorted({n for n in given if given.count(n) > 1 or n in taken})
        if clash:
            raise ConfigError(f"source name {clash[0]!r} is used twice")
        auto = unique_names([source_name(s.uri) for s in specs if not s.name], [*given, *taken])
        return [s.name or auto.pop(0) for s in specs]

    def _outputs_for(self, spec: SourceSpec, name: str, index: int) -> SourceOutputs:
        cfg = self.config
        videos = spec.outputs if spec.outputs is not None else cfg.outputs
        labels = spec.labels_out or cfg.labels_out
        summary = spec.summary or cfg.summary
        return SourceOutputs(
            videos=tuple(expand(v, name, index) for v in videos),
            labels_out=expand(labels, name, index) if labels else None,
            summary=expand(summary, name, index) if summary else None,
        )

    def _with_events(self, outputs: SourceOutputs, spec: SourceSpec, name: str) -> SourceOutputs:
        """``outputs`` with the source's regions and rules, checked against the model's classes."""
        from streamseg.events.source import plan_source_events

        assert self.spec is not None, "the model is resolved first"
        events = plan_source_events(self.config, spec, name, self.spec.classes, self.events)
        return outputs if events is None else dataclasses.replace(outputs, events=events)

    def _attach_events(self) -> None:
        """Event messages go to the shared sinks that take them (MQTT, Kafka, MCAP) and the webhook."""
        webhook = None
        if self.config.webhook:
            from streamseg.events.webhook import Webhook

            webhook = Webhook(self.config.webhook)
        self.events.attach(self._shared, webhook)

    def _open_shared_sinks(self, spec: ModelSpec, live: bool) -> list[Sink]:
        cfg, sinks = self.config, list[Sink]()
        try:
            if cfg.publish:
                from streamseg.outputs.messages.zmq_pub import LabelPublisher

                self.publisher = LabelPublisher(cfg.publish, spec.classes)
                sinks.append(self.publisher)
            if cfg.preview_port is not None:
                from streamseg.outputs.servers import PreviewServer

                self.preview = PreviewServer(self, cfg.preview_port, spec.classes, spec.colors, cfg.serve_host)
                sinks.append(self.preview)
            if cfg.mcap or cfg.foxglove_port is not None or cfg.mqtt or cfg.kafka:  # one of each serves all sources
                from streamseg.outputs.messages.factory import open_downstream_sinks

                self.downstream = open_downstream_sinks(cfg, spec, live=live)
                sinks.extend(self.downstream)
            if self.metrics is not None:
                sinks.append(self.metrics)
        except BaseException:
            for sink in sinks:
                sink.close(complete=False)
            raise
        return sinks

    def _add_lane(self, spec: SourceSpec, name: str, outputs: SourceOutputs) -> SourceLane:
        model, backend, results, batcher = self.spec, self.backend, self._results, self._batcher
        assert model is not None and backend is not None, "lanes join a started run"
        assert results is not None and batcher is not None, "lanes join a started run"
        lane = SourceLane(
            name,
            self._ever,
            spec.uri,
            options=spec.live_options(self.config.live),
            outputs=outputs,
            config=self.config,
            spec=model,
            steps=self._lane_steps(),
            results=results,
            shared_sinks=self._shared,
            arrived=self._arrived,
            on_error=self._source_failed,
            device=backend.device,
        )
        if isinstance(lane.steps, TemporalLane):
            lane.steps.reconnects = lambda: getattr(lane.source, "reconnects", 0)
        with self._lock:
            batcher.add(lane.batch_lane)  # raises Closed once the run has ended
            self.lanes[name] = lane
            self._running += 1
            self._ever += 1
        lane.start()
        log.info("source %s: %s", name, lane.display)
        return lane

    def _latency_budget_specs(self, spec: ModelSpec) -> dict[int | None, ModelSpec]:
        """The model spec at each input size a latency budget may pick, largest first; {} without a choice."""
        cfg, resize = self.config, spec.resize
        if cfg.latency_sizes and cfg.latency_budget is None:
            raise ConfigError("latency_sizes: only with a latency budget (--latency-budget MS)")
        if cfg.latency_budget is None or not (cfg.latency_sizes or resize.mode == "short_side"):
            return {}
        sizes = budget_sizes(resize.size if isinstance(resize.size, int) else 0, cfg.latency_sizes)
        return {size: spec.with_short_side(size, "latency_sizes") for size in sizes}

    def _lane_steps(self):
        """A source's own steps; with --interval/--smooth/--latency-budget, inference on some frames only."""
        steps, cfg = self.stages.lane(), self.config
        if not cfg.temporal:
            return steps
        if not isinstance(steps, CpuLane) or self.backend is None:
            raise ConfigError("interval, smooth and latency_budget run with the CPU stages (not yet on CUDA)")
        smoother = ScoreSmoother(cfg.smooth) if cfg.smooth is not None else None
        inputs = {size: CpuPreprocessor(spec) for size, spec in self._budget_specs.items()} or None
        return TemporalLane(
            steps,
            FixedInterval(cfg.interval),
            propagate=cfg.propagate,
            smoother=smoother,
            inputs=inputs,
            run=self.backend.run,
        )

    @property
    def api_token(self) -> str | None:
        """The bearer token ``POST``/``DELETE /sources`` need (``--metrics-port``, ``--api on``); None without."""
        return self.metrics.access.token.value if self.metrics and self.metrics.access.token else None

    # -- sources come and go ---------------------------------------------------------------
    def add_source(
        self,
        uri: str | Path | SourceSpec | dict,
        *,
        name: str | None = None,
        admit: Callable[[SourceSpec, SourceOutputs], None] | None = None,
        **options: Any,
    ) -> str:
        """Start one more source while the pipeline runs; returns its name.

        ``options``: ``outputs``, ``labels_out``, ``summary`` (templates, default
        the run's) and live-input options (``transport``, ``realtime`` …). ``admit``
        may refuse the source (raise) once its outputs are known (the REST API's confinement).
        """
        if isinstance(uri, SourceSpec):
            spec = uri
        else:
            data = dict(uri) if isinstance(uri, dict) else {"uri": str(uri)}
            data.update(options)
            if name is not None:
                data["name"] = name
            try:
                spec = SourceSpec.model_validate(data)
            except ValueError as err:
                raise ConfigError(f"source: {str(err).splitlines()[0]}") from None
        if self._batcher is None or self._closed or self._stopping.is_set():
            raise ConfigError("the pipeline is not running")
        with self._lock:
            running = sum(not lane.done for lane in self.lanes.values())
            if running >= self.config.max_sources:
                raise ConfigError(f"{running} sources are running, the most --max-sources allows")
            (new_name,) = self._names([spec], taken=list(self.lanes))
            outputs = self._with_events(self._outputs_for(spec, new_name, self._ever), spec, new_name)
            if admit is not None:
                admit(spec, outputs)
            # everything the run holds, ended sources too: their files, and the one MCAP every source writes
            held = [p for lane in self.lanes.values() for p in lane.outputs.paths(self.config, lane.name)]
            shared = [OutputPath("--mcap", self.config.mcap)] if self.config.mcap else []
            try:
                check_output_paths(
                    [spec.uri, *(lane.uri for lane in self.lanes.values())],
                    [*shared, *held, *outputs.paths(self.config, new_name)],
                )
            except SinkError as err:
                raise ConfigError(str(err)) from None
        try:
            self._add_lane(spec, new_name, outputs)
        except Closed:
            raise ConfigError("the pipeline has finished: every source ended") from None
        return new_name

    def remove_source(self, name: str) -> None:
        """Stop one source: its frames in flight reach its outputs, which are then finalized."""
        lane = self.lanes.get(name)
        if lane is None or lane.done:
            raise ConfigError(f"no running source named {name!r}")
        lane.removed = True
        lane.stop()

    def _source_failed(self, lane: SourceLane, err: BaseException) -> None:
        if self._ever > 1:  # one source's failure is the run's error, said once at the end
            log.warning("source %s failed: %s", lane.name, redact(str(err)))

    def _fail(self, err: BaseException) -> None:
        """The shared stage failed (the model): every source stops."""
        if not self._errors:
            self._errors.append(err)
        self._stopping.set()
        for lane in list(self.lanes.values()):
            lane.stop()

    # -- use -------------------------------------------------------------------------------
    def __enter__(self) -> Pipeline:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __iter__(self) -> Iterator[Result]:
        if self._batcher is None:
            self.start()
        assert self._batcher is not None and self._results is not None
        while True:
            with self._lock:
                if self._running == 0:
                    self._batcher.seal()  # every source has ended: no more can join
                    break
            result = self._results.get()
            if result is END:
                with self._lock:
                    self._running -= 1
                continue
            yield result
        self._finished_at = time.perf_counter()
        self._raise_error()

    def run(self) -> RunSummary:
        """Process every source into its outputs, then close; returns the summary."""
        try:
            for result in self:
                if self.on_result is not None:
                    self.on_result(result)
        finally:
            self.close()
        return self.summary()

    def stop(self) -> None:
        """Stop reading every source; frames already inferred still reach the outputs. Safe from signal handlers."""
        self._stopping.set()
        for lane in list(self.lanes.values()):
            lane.stop()

    def close(self) -> None:
        """Stop, join the stages, and finalize every output (on every exit path)."""
        if self._closed:
            return
        self._closed = True
        self.stop()
        if self._results is not None:
            self._results.close()  # nobody reads results any more
        if self._batcher is not None:
            self._batcher.seal()
        for lane in list(self.lanes.values()):
            lane.join()
        if self._batcher is not None:
            self._batcher.join()
        if not self._finished_at:
            self._finished_at = time.perf_counter()
        # audio beyond the last frame, and the like, only when every source went through whole
        whole = not self.stopped_early and not any(lane.hit_max_frames for lane in self.lanes.values())
        errors = self._close_shared(complete=whole)
        if self.backend is not None:
            self.backend.close()
        if errors and not self._errors:
            raise errors[0]

    def _close_shared(self, complete: bool) -> list[Exception]:
        errors = []
        self.events.close()  # listeners end; the webhook sends what it can
        for sink in self._shared or ([self.metrics] if self.metrics is not None else []):
            try:
                sink.close(complete=complete)
            except Exception as err:  # keep closing the others
                errors.append(err)
        return errors

    def _raise_error(self) -> None:
        """The model's failure; or a source's, when it was the only one (as a single-source run always did)."""
        if self._errors:
            raise self._errors[0]
        failed = [lane for lane in self.lanes.values() if lane.error is not None]
        if len(failed) == 1 and len(self.lanes) == 1 and failed[0].error is not None:
            raise failed[0].error

    @property
    def info(self):
        """The ``StreamInfo`` of a one-source run, once its source has opened (waits for that)."""
        if len(self.lanes) != 1:
            raise ConfigError(f"info: this run has {len(self.lanes)} sources; see each lane's info in .lanes")
        lane = next(iter(self.lanes.values()))
        lane.opened.wait()
        if lane.info is None and lane.error is not None:
            raise lane.error
        return lane.info

    @property
    def failures(self) -> dict[str, str]:
        """Sources that failed for good: name -> one-line reason."""
        return {lane.name: redact(str(lane.error)) for lane in self.lanes.values() if lane.error is not None}

    @property
    def stopped_early(self) -> bool:
        """True after an error or a stop before the sources ran out; dropped frames don't count."""
        if self._errors:
            return True
        return any(lane.stopped_early and lane.error is None and not lane.removed for lane in self.lanes.values())

    # -- figures ---------------------------------------------------------------------------
    def _merged_stages(self) -> dict[str, StageStats]:
        lanes = list(self.lanes.values())
        stages = {
            name: StageStats.merged(name, [lane.workers[name].stats for lane in lanes])
            for name in ("decode", "preprocess")
        }
        if self._batcher is not None:
            stages["infer"] = self._batcher.stats
        for name in ("composite", "output"):
            stages[name] = StageStats.merged(name, [lane.workers[name].stats for lane in lanes])
        stages["output"].items = sum(lane.latency.items for lane in lanes)  # written, not handed over
        return stages

    def _queues(self) -> dict[str, dict[str, int]]:
        queues: dict[str, dict[str, int]] = {}
        for lane in self.lanes.values():
            for name, q in lane.queues.items():
                entry = queues.setdefault(name, {"depth": 0, "dropped": 0, "maxsize": 0, "peak": 0})
                entry["depth"] += len(q)
                entry["dropped"] += q.dropped
                entry["maxsize"] += q.maxsize
                entry["peak"] = max(entry["peak"], q.peak)
        if self._results is not None:
            q = self._results
            queues["results"] = {"depth": len(q), "dropped": q.dropped, "maxsize": q.maxsize, "peak": q.peak}
        return queues

    def _links(self) -> dict[str, int]:
        """Reconnects and drops of every source and output, summed; the shared outputs counted once."""
        return _summed([*(lane.link_counts() for lane in self.lanes.values()), output_links(self._shared)])

    def state(self) -> str:
        if self._closed or self._stopping.is_set():
            return "stopped"
        if self._batcher is None or not self.lanes:
            return "starting"
        states = [lane.health() for lane in self.lanes.values() if not lane.done]
        if not states:
            return "stopped"
        if "running" in states:
            return "running"
        return "reconnecting" if "reconnecting" in states else "starting"

    def snapshot(self) -> dict[str, Any]:
        """Live counters for metrics pages: totals, and per source its state, stages, queues and links."""
        lanes = list(self.lanes.values())
        return {
            "stages": self._merged_stages(),
            "queues": self._queues(),
            "elapsed": time.perf_counter() - self._started_at if self._started_at else 0.0,
            "state": self.state(),
            "extra": self._links(),
            "batches": dict(self._batcher.batch_sizes) if self._batcher is not None else {},
            "sources": {lane.name: {
                "state": lane.health(), "uri": lane.display, "stages": lane.stage_stats(),
                "written": lane.latency.items, "latency": lane.latency,
                "dropped": sum(q.dropped for q in lane.queues.values()), **lane.link_counts(),
                "problem": getattr(lane.source, "problem", None), "temporal": lane.temporal_state(),
            } for lane in lanes},
        }  # fmt: skip

    def summary(self) -> RunSummary:
        lanes = list(self.lanes.values())
        queues = self._queues()
        results = queues.get("results", {"dropped": 0})
        return RunSummary(
            source=", ".join(lane.info.name if lane.info and len(lanes) == 1 else lane.name for lane in lanes),
            backend=self.backend.name if self.backend else "",
            frames_in=sum(lane.workers["decode"].stats.items for lane in lanes),
            frames_out=sum(lane.latency.items for lane in lanes),
            dropped={name: q["dropped"] for name, q in queues.items() if q["dropped"] and name != "results"},
            stages={name: s.as_dict() for name, s in self._merged_stages().items()},
            queue_peaks={name: q["peak"] for name, q in queues.items()},
            wall_seconds=(self._finished_at or time.perf_counter()) - self._started_at,
            stopped_early=self.stopped_early,
            extra=self._links(),
            latency=StageStats.merged("latency", [lane.latency for lane in lanes]).as_dict(),
            sources=[lane.summary_row() for lane in lanes],
            batches=dict(sorted(self._batcher.batch_sizes.items())) if self._batcher is not None else {},
            results_dropped=results["dropped"],
            failed=self.failures,
            delivered={
                **{name: n for lane in lanes for name, n in delivery_counts(lane.sinks).items()},
                **delivery_counts(self.downstream),  # MQTT, Kafka: frames their broker acknowledged
            },
        )


def _summed(counts) -> dict[str, int]:
    total: dict[str, int] = {}
    for part in counts:
        for key, value in part.items():
            total[key] = total.get(key, 0) + value
    return total
