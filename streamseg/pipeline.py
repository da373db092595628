"""The pipeline, wired as the README's diagram draws it, for one source or many:

    source 1: decode -> preprocess ─┐                 ┌─> composite -> outputs ─┐
    source 2: decode -> preprocess ─┼─> infer (batch) ┼─> composite -> outputs ─┼─> results
    source N: decode -> preprocess ─┘                 └─> composite -> outputs ─┘

Each source is a ``SourceLane`` with its own threads and bounded queues (files
lossless, live sources drop oldest); one ``FrameCollector`` runs the model for all
of them, batched. Sources can be added and removed while it runs.

The shared parts are built once (``streamseg.build``: model, backend, stage set,
shared sinks, infer stage), the sources kept in a registry (``streamseg.lanes``),
and the figures read by ``streamseg.report``; this module joins them.
"""

from __future__ import annotations

import functools
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from streamseg.build import RunParts
from streamseg.config import RunConfig, SourceSpec
from streamseg.errors import ConfigError, StreamsegError
from streamseg.frames import Result
from streamseg.lane import SourceLane
from streamseg.lanes import Admit, LaneRegistry, SourceLike
from streamseg.models import ModelHandle
from streamseg.outputs import Sink
from streamseg.outputs.naming import SourceOutputs
from streamseg.queues import END, Closed
from streamseg.report import RunFigures, RunSummary, elapsed_since, run_state

if TYPE_CHECKING:
    from streamseg.backends.base import Backend
    from streamseg.models.spec import ModelSpec
    from streamseg.outputs.messages.zmq_pub import LabelPublisher
    from streamseg.outputs.servers import MetricsServer, PreviewServer

__all__ = ["Pipeline", "RunSummary", "SourcesFailed"]


class SourcesFailed(StreamsegError):
    """Some sources of a multi-source run failed for good; the others ran to their end."""


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
        model: str | Path | ModelHandle | None = None,
        *,
        config: RunConfig | None = None,
        on_result: Callable[[Result], None] | None = None,
        sinks: Sequence[Sink] = (),
        **options: Any,
    ):
        self.config = _config(config, source, model, options)
        if self.config.model is None:
            raise ConfigError("model: no model given (--model NAME|PATH.onnx)")
        if not self.config.sources:
            raise ConfigError("sources: no input given")
        self.on_result = on_result
        # model, backend, stage set, shared sinks, infer stage: built by start(); a model handle given is used as is
        self.parts = RunParts(self.config, model if isinstance(model, ModelHandle) else None, extra_sinks=sinks)
        self.events = self.parts.events  # event starts and ends: .subscribe(callback), .listen() (streamseg.events)
        self._lanes = LaneRegistry(self.config)
        self._stopping = threading.Event()
        self._errors: list[BaseException] = []  # pipeline-wide: the model failed, not one source
        self._started = False
        self._started_at = self._finished_at = 0.0
        self._cpu_at_start = self._cpu_at_finish = 0.0  # process CPU seconds, every thread's
        self._closed = False

    # -- set-up: the diagram, left to right ----------------------------------------------------
    def start(self) -> Pipeline:
        if self.config.metrics_port is not None:  # first, so /health says "starting" while the model loads
            from streamseg.outputs.servers import MetricsServer

            self.parts.metrics = MetricsServer(self, self.config.metrics_port, self.config.serve_host)
        try:
            plans = self._lanes.plan(self.config.sources)  # before anything opens: no output replaces an input
            plans = self.parts.build(self, plans, stopping=self._stopping, on_error=self._fail)
            self._started_at, self._cpu_at_start = time.perf_counter(), time.process_time()
            self._collector.start()
            self._started = True
            for spec, name, outputs in plans:
                self._add_lane(spec, name, outputs)
        except BaseException:
            self.parts.close_sinks(complete=False)
            raise
        return self

    def _add_lane(self, spec: SourceSpec, name: str, outputs: SourceOutputs) -> None:
        make = functools.partial(self.parts.new_lane, on_error=self._lanes.failed)
        self._lanes.add(spec, name, outputs, make, join=self._collector.add)

    # -- sources come and go ---------------------------------------------------------------
    def add_source(
        self, uri: SourceLike, *, name: str | None = None, admit: Admit | None = None, **options: Any
    ) -> str:
        """Start one more source while the pipeline runs; returns its name.

        ``options``: ``outputs``, ``labels_out``, ``summary`` (templates, default
        the run's) and live-input options (``transport``, ``realtime`` …). ``admit``
        may refuse the source (raise) once its outputs are known (the REST API's confinement).
        """
        spec = self._lanes.source_spec(uri, name, options)
        if not self._started or self._closed or self._stopping.is_set():
            raise ConfigError("the pipeline is not running")
        spec, new_name, outputs = self._lanes.plan_one(spec, equip=self.parts.with_events, admit=admit)
        try:
            self._add_lane(spec, new_name, outputs)
        except Closed:
            raise ConfigError("the pipeline has finished: every source ended") from None
        return new_name

    def remove_source(self, name: str) -> None:
        """Stop one source: its frames in flight reach its outputs, which are then finalized."""
        self._lanes.remove(name)

    def _fail(self, err: BaseException) -> None:
        """The shared stage failed (the model): every source stops."""
        if not self._errors:
            self._errors.append(err)
        self._stopping.set()
        self._lanes.stop()

    # -- use -------------------------------------------------------------------------------
    def __enter__(self) -> Pipeline:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __iter__(self) -> Iterator[Result]:
        if not self._started:
            self.start()
        collector, results = self._collector, self.parts.results
        assert results is not None
        while True:
            with self._lanes.lock:
                if self._lanes.running == 0:
                    collector.seal()  # every source has ended: no more can join
                    break
            result = results.get()
            if result is END:
                self._lanes.ended()
                continue
            yield result
        self._finished_at, self._cpu_at_finish = time.perf_counter(), time.process_time()
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
        self._lanes.stop()

    def close(self) -> None:
        """Stop, join the stages, and finalize every output (on every exit path)."""
        if self._closed:
            return
        self._closed = True
        self.stop()
        parts = self.parts
        if parts.results is not None:
            parts.results.close()  # nobody reads results any more
        if parts.collector is not None:
            parts.collector.seal()
        self._lanes.join()
        if parts.collector is not None:
            parts.collector.join()
        if not self._finished_at:
            self._finished_at, self._cpu_at_finish = time.perf_counter(), time.process_time()
        # audio beyond the last frame, and the like, only when every source went through whole
        errors = parts.close_sinks(complete=not self._errors and self._lanes.whole())
        if parts.backend is not None:
            parts.backend.close()
        if errors and not self._errors:
            raise errors[0]

    def _raise_error(self) -> None:
        """The model's failure; or a source's, when it was the only one (as a single-source run always did)."""
        if self._errors:
            raise self._errors[0]
        error = self._lanes.only_error()
        if error is not None:
            raise error

    # -- what it has and how it goes --------------------------------------------------------------
    @property
    def _collector(self):
        assert self.parts.collector is not None, "built by start()"
        return self.parts.collector

    @property
    def lanes(self) -> dict[str, SourceLane]:
        """Every source this run had, by name, in order."""
        return self._lanes.lanes

    @property
    def backend(self) -> Backend | None:
        return self.parts.backend

    @property
    def spec(self) -> ModelSpec | None:
        return self.parts.spec

    @property
    def metrics(self) -> MetricsServer | None:
        return self.parts.metrics

    @property
    def preview(self) -> PreviewServer | None:
        return self.parts.preview

    @property
    def publisher(self) -> LabelPublisher | None:
        return self.parts.publisher

    @property
    def downstream(self) -> list[Sink]:
        return self.parts.downstream

    @property
    def api_token(self) -> str | None:
        """The bearer token ``POST``/``DELETE /sources`` need (``--metrics-port``, ``--api on``); None without."""
        return self.metrics.access.token.value if self.metrics and self.metrics.access.token else None

    @property
    def info(self):
        """The ``StreamInfo`` of a one-source run, once its source has opened (waits for that)."""
        return self._lanes.only_info()

    @property
    def failures(self) -> dict[str, str]:
        """Sources that failed for good: name -> one-line reason."""
        return self._lanes.failures

    @property
    def stopped_early(self) -> bool:
        """True after an error or a stop before the sources ran out; dropped frames don't count."""
        return bool(self._errors) or self._lanes.stopped_early()

    def _figures(self) -> RunFigures:
        parts = self.parts
        return RunFigures(list(self.lanes.values()), parts.collector, parts.results, parts.sinks, parts.downstream)

    def state(self) -> str:
        stopping = self._closed or self._stopping.is_set()
        return run_state(self.lanes.values(), started=self._started, stopping=stopping)

    def snapshot(self) -> dict[str, Any]:
        """Live counters for metrics pages: totals, and per source its state, stages, queues and links."""
        cpu = time.process_time() - self._cpu_at_start if self._started_at else 0.0
        return self._figures().snapshot(self.state(), elapsed_since(self._started_at), cpu)

    def summary(self) -> RunSummary:
        return self._figures().summary(
            backend=self.backend.name if self.backend else "",
            wall_seconds=(self._finished_at or time.perf_counter()) - self._started_at,
            cpu_seconds=(self._cpu_at_finish or time.process_time()) - self._cpu_at_start,
            stopped_early=self.stopped_early,
            failed=self.failures,
        )


def _config(config: RunConfig | None, source: Any, model: Any, options: dict[str, Any]) -> RunConfig:
    """The run's config, validated once: as given, or the given values with the arguments on top."""
    values: dict[str, Any] = dict(options)
    if source is not None:
        values["sources"] = [source] if isinstance(source, (str, Path, dict)) else list(source)
    if model is not None:
        values["model"] = str(model.path if isinstance(model, ModelHandle) else model)
    if config is not None and not values:
        return config
    base = config.model_dump(exclude_unset=True) if config is not None else {}
    return RunConfig.build({**base, **values})
