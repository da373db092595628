"""A run's shared parts, built once at start-up in the order of the README's diagram:

    config -> model -> backend -> stage set (+ lane plug-ins) -> shared sinks -> infer stage and results

Each source's own lane (``streamseg.lane``) is made later, from these parts, by ``new_lane``.
"""

from __future__ import annotations

import dataclasses
import threading
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Any

from streamseg.backends import create_backend
from streamseg.collector import FrameCollector
from streamseg.composite import Compositor
from streamseg.config import RunConfig, SourceSpec
from streamseg.cores import share_opencv_threads
from streamseg.errors import ConfigError
from streamseg.events import EventBus
from streamseg.lane import SourceLane
from streamseg.models import ModelHandle, open_model
from streamseg.models.spec import ModelSpec
from streamseg.outputs import Sink
from streamseg.outputs.naming import SourceOutputs
from streamseg.queues import FillPolicy, StageQueue
from streamseg.sources import is_live
from streamseg.stages import LanePlugin, LaneSteps, Stages, make_stages
from streamseg.temporal.steps import TemporalPlugin

if TYPE_CHECKING:
    from streamseg.backends.base import Backend
    from streamseg.outputs.messages.zmq_pub import LabelPublisher
    from streamseg.outputs.servers import MetricsServer, PreviewServer

Plan = tuple[SourceSpec, str, SourceOutputs]  # a source, its name and its outputs (``streamseg.lanes``)

# every lane plug-in there is; each says from the config whether a run wants it
PLUGINS = (TemporalPlugin,)


class RunParts:
    """The model, backend, stage set, shared sinks and infer stage of one run; ``build`` fills them once."""

    def __init__(self, config: RunConfig, model: ModelHandle | None = None, extra_sinks: Sequence[Sink] = ()):
        self.config = config
        self.extra_sinks = list(extra_sinks)  # caller-made sinks (publishers, previews), closed with ours
        self.model = model  # the model as given (a handle), else opened from config.model by build()
        self.spec: ModelSpec | None = None  # the model's spec at the run's input size
        self.backend: Backend | None = None
        self.stages: Stages | None = None
        self.plugins: list[LanePlugin] = []
        self.metrics: MetricsServer | None = None  # the /metrics, /health and /sources server, with --metrics-port
        self.preview: PreviewServer | None = None  # the preview page server, with --preview
        self.publisher: LabelPublisher | None = None  # the label-map publisher, with --publish
        self.downstream: list[Sink] = []  # MCAP, Foxglove, MQTT, Kafka sinks, each serving every source
        self.sinks: list[Sink] = []  # every sink all sources write to
        self.events = EventBus()  # event starts and ends: .subscribe(callback), .listen() (streamseg.events)
        self.results: StageQueue | None = None
        self.collector: FrameCollector | None = None
        self.arrived = threading.Event()  # set by every lane's prepared queue: the infer stage waits on it

    def build(
        self,
        owner: Any,
        plans: Sequence[Plan],
        *,
        stopping: threading.Event,
        on_error: Callable[[BaseException], None],
    ) -> list[Plan]:
        """Everything but the lanes; ``owner`` (the pipeline) is what the preview page reports on.

        Returns ``plans`` with each source's regions and rules, checked against the model's classes
        before the backend loads or a shared sink opens.
        """
        cfg = self.config
        sources = cfg.sources
        assert cfg.model is not None, "a run has a model (Pipeline checks)"
        self.model = model = open_model(self.model or cfg.model, cfg.spec)
        self.spec = spec = model.spec.with_short_side(cfg.input_size)
        plans = [(source, name, self.with_events(source, name, out)) for source, name, out in plans]
        if cfg.webhook:
            from streamseg.events.webhook import check_webhook_url

            check_webhook_url(cfg.webhook)
        wanted = cfg.batch or len(sources)
        share_opencv_threads()  # the stages' OpenCV calls run side by side with the engine's threads
        # a file anywhere: results wait for the reader (lossless); live only: the reader gets the newest
        any_file = any(not is_live(s.uri, s.live_options(cfg.live)) for s in sources)
        self.backend = backend = create_backend(
            cfg.backend,
            model.with_spec(spec),
            threads=cfg.threads,
            precision=cfg.precision,
            winograd=cfg.winograd,
            compile=cfg.compile,
            batch=wanted,
            labels=cfg.labels_from_engine,
            pictures=cfg.engine_normalize,
            # throughput where a file waits for nothing; live frames want each one's lowest latency
            streams=cfg.engine_streams or (None if any_file else 1),
        )
        compositor = Compositor(spec, mode=cfg.overlay, alpha=cfg.alpha, classes=cfg.classes)
        self.stages = stages = make_stages(backend, spec, compositor, scores=cfg.scores)
        self.plugins = lane_plugins(cfg, stages, stages.input_spec, backend.run)
        self.sinks = self._open_shared_sinks(owner, spec, live=not any_file) + self.extra_sinks
        self._attach_events()
        size = max(cfg.queue_size or (4 if any_file else 1), len(sources))  # lanes make room for what they hold
        self.results = StageQueue("results", size, FillPolicy.BLOCK if any_file else FillPolicy.DROP_OLDEST)
        self.collector = FrameCollector(
            stages.infer,
            prepare=stages.prepare,
            max_batch=min(wanted, backend.max_batch or wanted),
            timeout=cfg.batch_timeout / 1000,
            stopping=stopping,
            on_error=on_error,
            arrived=self.arrived,
            streams=lambda: backend.streams,
            queued=lambda: backend.queued,
        )
        return plans

    def with_events(self, source: SourceSpec, name: str, outputs: SourceOutputs) -> SourceOutputs:
        """``outputs`` with the source's regions and rules, checked against the model's classes."""
        from streamseg.events.source import plan_source_events

        assert self.spec is not None, "the model is resolved first"
        events = plan_source_events(self.config, source, name, self.spec.classes, self.events)
        return outputs if events is None else dataclasses.replace(outputs, events=events)

    def _attach_events(self) -> None:
        """Event messages go to the shared sinks that take them (MQTT, Kafka, MCAP) and the webhook."""
        webhook = None
        if self.config.webhook:
            from streamseg.events.webhook import Webhook

            webhook = Webhook(self.config.webhook)
        self.events.attach(self.sinks, webhook)

    def _open_shared_sinks(self, owner: Any, spec: ModelSpec, live: bool) -> list[Sink]:
        cfg, sinks = self.config, list[Sink]()
        try:
            if cfg.publish:
                from streamseg.outputs.messages.zmq_pub import LabelPublisher

                self.publisher = LabelPublisher(cfg.publish, spec.classes)
                sinks.append(self.publisher)
            if cfg.preview_port is not None:
                from streamseg.outputs.servers import PreviewServer

                self.preview = PreviewServer(owner, cfg.preview_port, spec.classes, spec.colors, cfg.serve_host)
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

    def lane_steps(self) -> LaneSteps:
        """A new source's steps: the stage set's own, wrapped by each plug-in the run has."""
        assert self.stages is not None, "built"
        steps = self.stages.lane()
        for plugin in self.plugins:
            steps = plugin.wrap(steps)
        return steps

    def new_lane(
        self,
        spec: SourceSpec,
        name: str,
        index: int,
        outputs: SourceOutputs,
        on_error: Callable[[SourceLane, BaseException], None],
    ) -> SourceLane:
        assert self.spec is not None and self.backend is not None and self.results is not None, "built"
        return SourceLane(
            name,
            index,
            spec.uri,
            options=spec.live_options(self.config.live),
            outputs=outputs,
            config=self.config,
            spec=self.spec,
            steps=self.lane_steps(),
            results=self.results,
            shared_sinks=self.sinks,
            arrived=self.arrived,
            on_error=on_error,
            device=self.backend.device,
        )

    def close_sinks(self, complete: bool) -> list[Exception]:
        """Close every shared sink (the metrics server alone if the run never got that far); their errors."""
        errors = []
        self.events.close()  # listeners end; the webhook sends what it can
        for sink in self.sinks or ([self.metrics] if self.metrics is not None else []):
            try:
                sink.close(complete=complete)
            except Exception as err:  # keep closing the others
                errors.append(err)
        return errors


def lane_plugins(config: RunConfig, stages: Stages, spec: ModelSpec, run: Callable) -> list[LanePlugin]:
    """The plug-ins the config asks for, each one the stage set carries (else a config error)."""
    plugins: list[LanePlugin] = []
    for kind in PLUGINS:
        plugin = kind.wanted(config, spec, run)
        if plugin is None:
            continue
        if plugin.name not in stages.plugins:
            raise ConfigError(
                f"{plugin.options}: the {stages.device} stages lack the {plugin.name} plug-in (use a CPU backend)"
            )
        plugins.append(plugin)
    return plugins
