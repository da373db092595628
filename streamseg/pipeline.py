"""The pipeline, wired as the README's diagram draws it:

    decode -> preprocess -> infer -> composite -> outputs (video, label maps, summary)

Each arrow is a bounded ``StageQueue``; each stage is a ``Worker`` thread.
Files flow losslessly (queues block); live sources drop the oldest frame.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from streamseg.backends import create_backend
from streamseg.composite import Compositor
from streamseg.config import RunConfig
from streamseg.errors import ConfigError
from streamseg.frames import Inferred, Prepared, Result
from streamseg.models import resolve_model
from streamseg.models.spec import ModelSpec
from streamseg.postprocess import CpuPostprocessor
from streamseg.preprocess import CpuPreprocessor
from streamseg.queues import END, FillPolicy, StageQueue
from streamseg.sinks import NpzLabelSink, PngLabelSink, Sink, SummarySink, open_video_sink
from streamseg.sources import open_source
from streamseg.workers import StageStats, Worker

log = logging.getLogger(__name__)


@dataclass
class RunSummary:
    source: str
    backend: str
    frames_in: int
    frames_out: int
    dropped: dict[str, int]
    stages: dict[str, dict[str, float]]
    queue_peaks: dict[str, int]
    wall_seconds: float
    stopped_early: bool
    extra: dict[str, Any] = field(default_factory=dict)
    latency: dict[str, float] = field(default_factory=dict)  # capture -> written to every output

    @property
    def fps(self) -> float:
        return self.frames_out / self.wall_seconds if self.wall_seconds > 0 else 0.0


class Pipeline:
    """Segments a video source; iterate it for results, or ``run()`` it to the outputs.

    >>> with Pipeline("street.mp4", model="m.onnx", outputs=["out.mp4"]) as p:
    ...     for r in p:
    ...         print(r.index, r.labels.shape)
    """

    def __init__(self, source: str | Path, model: str | Path | None = None, *, config: RunConfig | None = None,
                 on_result: Callable[[Result], None] | None = None, sinks: Sequence[Sink] = (), **options: Any):
        values = config.model_dump(exclude_unset=True) if config is not None else {}
        values.update(options)
        if model is not None:
            values["model"] = str(model)
        self.config = RunConfig.build(values)
        if self.config.model is None:
            raise ConfigError("model: no model given (--model NAME|PATH.onnx)")
        self.source_uri = str(source)
        self.on_result = on_result
        self._stopping = threading.Event()
        self._errors: list[BaseException] = []
        self._workers: list[Worker] = []
        self.latency = StageStats("latency")  # per frame, from capture to written to every output
        self._queues: list[StageQueue] = []
        self._sinks: list[Sink] = []
        self._extra_sinks = list(sinks)  # caller-made sinks (publishers, previews), closed with ours
        self.metrics = None  # the /metrics and /health server, with --metrics-port
        self.preview = None  # the preview page server, with --preview
        self.publisher = None  # the label-map publisher, with --publish
        self._started_at = 0.0
        self._finished_at = 0.0
        self._closed = False
        self.source = None
        self.backend = None
        self.spec: ModelSpec | None = None

    # -- set-up --------------------------------------------------------------------------
    def start(self) -> Pipeline:
        if self.config.metrics_port is not None:  # first, so /health says "starting" while the model loads
            from streamseg.observe import MetricsServer

            self.metrics = MetricsServer(self, self.config.metrics_port, self.config.serve_host)
        try:
            return self._start_stages()
        except BaseException:
            if self.metrics is not None:
                self.metrics.close()
            raise

    def _start_stages(self) -> Pipeline:
        cfg = self.config
        model_path, spec = resolve_model(cfg.model, cfg.spec)
        self.spec = spec = spec.with_short_side(cfg.input_size)
        self.backend = create_backend(cfg.backend, model_path, spec, threads=cfg.threads, precision=cfg.precision,
                                      winograd=cfg.winograd)
        compositor = Compositor(spec, mode=cfg.overlay, alpha=cfg.alpha, classes=cfg.classes)
        self.source = open_source(self.source_uri, max_frames=cfg.max_frames, options=cfg.live)
        self.info = self.source.info
        try:
            self._sinks = self._open_sinks(spec) + self._extra_sinks
        except BaseException:
            self.source.close()
            raise
        self.preprocess = CpuPreprocessor(spec)
        self.postprocess = CpuPostprocessor(spec)
        self.compositor = compositor
        if getattr(self.backend, "device", "cpu") == "cuda":  # frames stay on the GPU until encoding
            from streamseg.cuda_stages import CudaStages

            gpu = CudaStages(self.backend, spec, compositor, scores=cfg.scores)
            self.preprocess, self._infer, self._composite = gpu.preprocess, gpu.infer, gpu.composite
        self._wire()
        self._started_at = time.perf_counter()
        for worker in self._workers:
            worker.start()
        return self

    def _open_sinks(self, spec: ModelSpec) -> list[Sink]:
        cfg, sinks = self.config, []
        try:
            for uri in cfg.outputs:
                sinks.append(open_video_sink(uri, self.info, cfg.encoder, cfg.live))
            if cfg.labels_out:
                folder = Path(cfg.labels_out)
                if cfg.labels_format == "npz":
                    sinks.append(NpzLabelSink(folder / "labels.npz"))
                else:
                    sinks.append(PngLabelSink(folder, spec.colors))
                if cfg.summary is None:
                    sinks.append(SummarySink(folder / "summary.csv", spec.classes))
            if cfg.summary:
                sinks.append(SummarySink(cfg.summary, spec.classes))
            if cfg.publish:
                from streamseg.publish import LabelPublisher

                self.publisher = LabelPublisher(cfg.publish, spec.classes, self.info.name)
                sinks.append(self.publisher)
            if cfg.preview_port is not None:
                from streamseg.observe import PreviewServer

                self.preview = PreviewServer(self, cfg.preview_port, spec.classes, spec.colors, self.info.name,
                                             cfg.serve_host)
                sinks.append(self.preview)
            if cfg.mcap or cfg.foxglove_port is not None or cfg.mqtt or cfg.kafka:  # one of each serves all sources
                from streamseg.downstream.factory import open_downstream_sinks

                self.downstream = open_downstream_sinks(cfg, spec, live=self.info.live)
                sinks.extend(self.downstream)
            if self.metrics is not None:
                sinks.append(self.metrics)
        except BaseException:
            for sink in sinks:
                sink.close(complete=False)
            raise
        return sinks

    def _wire(self) -> None:
        """decode -> preprocess -> infer -> composite -> outputs, each arrow a bounded queue."""
        live = self.info.live
        policy = FillPolicy.DROP_OLDEST if live else FillPolicy.BLOCK
        # live: a frame waits behind at most one other anywhere, so latency is the stages' time
        size = self.config.queue_size or (1 if live else 4)
        fresh = 1 if live else size  # live: inference always takes the newest decoded frame
        decoded = StageQueue("decoded", fresh, policy)
        prepared = StageQueue("prepared", fresh, policy)
        inferred = StageQueue("inferred", size, policy)
        composited = StageQueue("composited", size, policy)
        results = StageQueue("results", size, policy)
        self._queues = [decoded, prepared, inferred, composited, results]
        self._results = results
        common = {"stopping": self._stopping, "on_error": self._fail}
        self._workers = [
            Worker("decode", lambda frame: frame, items=self.source.frames, outbox=decoded, **common),
            Worker("preprocess", self.preprocess, inbox=decoded, outbox=prepared, skip_when_stopping=True, **common),
            Worker("infer", self._infer, inbox=prepared, outbox=inferred, skip_when_stopping=True, **common),
            Worker("composite", self._composite, inbox=inferred, outbox=composited, **common),
            Worker("output", self._output, inbox=composited, outbox=results, **common),
        ]

    # -- per-frame work -----------------------------------------------------------------
    def _infer(self, item: Prepared) -> Inferred:
        return Inferred(item.frame, self.backend.run(item.tensor), item.geometry)

    def _composite(self, item: Inferred) -> Result:
        frame = item.frame
        labels = self.postprocess(item.output, item.geometry)
        picture = self.compositor(frame.image, labels)
        scores = self.postprocess.scores(item.output, item.geometry) if self.config.scores else None
        return Result(frame.source, frame.index, frame.pts, frame.time_base, frame.capture_time,
                      frame.image, labels, picture, time.time() - frame.capture_time, scores)

    def _output(self, result: Result) -> Result:
        for sink in self._sinks:
            sink.write(result)
        self.latency.add(time.time() - result.capture_time)
        return result

    def _fail(self, err: BaseException) -> None:
        if not self._errors:
            self._errors.append(err)
        self._stopping.set()

    # -- use -------------------------------------------------------------------------------
    def __enter__(self) -> Pipeline:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __iter__(self) -> Iterator[Result]:
        if not self._workers:
            self.start()
        while True:
            result = self._results.get()
            if result is END:
                break
            yield result
        self._finished_at = time.perf_counter()
        self._raise_error()

    def run(self) -> RunSummary:
        """Process the whole source into the outputs, then close; returns the summary."""
        try:
            for result in self:
                if self.on_result is not None:
                    self.on_result(result)
        finally:
            self.close()
        return self.summary()

    def stop(self) -> None:
        """Stop reading; frames already inferred still reach the outputs. Safe from signal handlers."""
        self._stopping.set()
        self._interrupt_source()

    def _interrupt_source(self) -> None:
        """Wake a live source out of a reconnect wait or a stalled read."""
        interrupt = getattr(self.source, "interrupt", None)
        if interrupt is not None:
            interrupt()

    def close(self) -> None:
        """Stop, join the stages, and finalize every output (on every exit path)."""
        if self._closed:
            return
        self._closed = True
        self._stopping.set()
        self._interrupt_source()
        if self._queues:
            self._results.close()  # nobody reads results any more
        for worker in self._workers:
            worker.join()
        if not self._finished_at:
            self._finished_at = time.perf_counter()
        # audio beyond the last frame is copied only when the whole source went through
        complete = not self.stopped_early and not self._hit_max_frames()
        errors = []
        for sink in self._sinks:
            try:
                sink.close(complete=complete)
            except Exception as err:  # keep closing the others
                errors.append(err)
        if self.source is not None:
            self.source.close()
        if self.backend is not None:
            self.backend.close()
        if errors and not self._errors:
            raise errors[0]

    def _hit_max_frames(self) -> bool:
        limit = self.config.max_frames
        return bool(self._workers) and limit is not None and self._workers[0].stats.items >= limit

    def _raise_error(self) -> None:
        if self._errors:
            raise self._errors[0]

    @property
    def stopped_early(self) -> bool:
        """True after an error or a stop before the source ran out."""
        if self._errors or not self._workers:
            return bool(self._errors)
        decode, output = self._workers[0], self._workers[-1]
        return not decode.exhausted or output.stats.items < decode.stats.items

    def snapshot(self) -> dict[str, Any]:
        """Live counters for metrics pages: per-stage stats, queue depths and drops."""
        return {
            "stages": {w.stage: w.stats for w in self._workers},
            "queues": {q.name: {"depth": len(q), "dropped": q.dropped, "maxsize": q.maxsize} for q in self._queues},
            "elapsed": time.perf_counter() - self._started_at if self._started_at else 0.0,
            "state": ("stopped" if self._closed or self._stopping.is_set()  # stopping: only draining is left
                      else "starting" if not self._workers
                      else "reconnecting" if getattr(self.source, "reconnecting", False) else "running"),
            "extra": self._link_counts(),  # reconnects of a live source and of stream outputs
        }

    def summary(self) -> RunSummary:
        stats = {w.stage: w.stats.as_dict() for w in self._workers}
        return RunSummary(
            source=self.info.name if self.source else self.source_uri,
            backend=self.backend.name if self.backend else "",
            frames_in=self._workers[0].stats.items if self._workers else 0,
            frames_out=self._workers[-1].stats.items if self._workers else 0,
            dropped={q.name: q.dropped for q in self._queues if q.dropped},
            stages=stats,
            queue_peaks={q.name: q.peak for q in self._queues},
            wall_seconds=(self._finished_at or time.perf_counter()) - self._started_at,
            stopped_early=self.stopped_early,
            extra=self._link_counts(),
            latency=self.latency.as_dict(),
        )

    def _link_counts(self) -> dict[str, int]:
        """Reconnects of a live source and of stream outputs, and frames outputs dropped while down."""
        counts = {}
        if hasattr(self.source, "reconnects"):
            counts["reconnects"] = self.source.reconnects
        streams = [sink for sink in self._sinks if hasattr(sink, "reconnects")]
        if streams:
            counts["output_reconnects"] = sum(sink.reconnects for sink in streams)
            counts["output_dropped"] = sum(sink.dropped for sink in streams)
        return counts

