"""One source's own part of the pipeline:

    decode -> preprocess -> [the shared, batched infer stage] -> composite -> outputs

Each arrow is this source's own bounded queue with its own fill policy (files
lossless, live sources drop oldest), so a fast camera never evicts a slow
camera's frames, and a source that fails, ends or is removed takes only its
own lane with it. The source opens in the lane's decode thread, then its
outputs, then the backend is set up for its input size before frames flow.
"""

from __future__ import annotations

import dataclasses
import logging
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from typing import Any

from streamseg.collector import CollectorInput, WarmUp
from streamseg.config import RunConfig
from streamseg.frames import Frame, Result, StreamInfo
from streamseg.logs import redact
from streamseg.models.spec import ModelSpec
from streamseg.outputs import (
    NpzLabelSink,
    PngLabelSink,
    Sink,
    SummarySink,
    check_delivered,
    open_video_sink,
    output_links,
)
from streamseg.outputs.naming import SourceOutputs
from streamseg.queues import FillPolicy, StageQueue
from streamseg.sources import is_live
from streamseg.sources.nvdec import open_input
from streamseg.stage_options import SourceOptions
from streamseg.stage_stats import StageStats
from streamseg.stages import LaneSteps
from streamseg.workers import Worker

log = logging.getLogger(__name__)

STAGES = ("decode", "preprocess", "composite", "output")  # this lane's own; "infer" is shared


class SourceLane:
    """The threads, queues and outputs of one source; ``results`` is the queue all lanes share."""

    def __init__(
        self,
        name: str,
        index: int,
        uri: str,
        *,
        options: SourceOptions,
        outputs: SourceOutputs,
        config: RunConfig,
        spec: ModelSpec,
        steps: LaneSteps,
        results: StageQueue,
        shared_sinks: Sequence[Sink],
        arrived: threading.Event,
        on_error: Callable[[SourceLane, BaseException], None],
        device: str = "cpu",
    ):
        self.name, self.index, self.uri = name, index, uri
        self.display = redact(uri)
        self.options = options
        self.outputs = outputs
        self.config = config
        self.spec = spec
        self.live = is_live(uri, options)
        self.device = device  # where the backend computes: NVDEC decode pays only for "cuda"
        self.stopping = threading.Event()  # stop reading; what is inferred still reaches the outputs
        self.source_stop = threading.Event()  # the source's own: it stops reading, even mid-connect
        self.opened = threading.Event()  # set once the source opened (``info`` known), or the lane is over
        self.state = "starting"
        self.error: BaseException | None = None
        self.removed = False
        self.source: Any = None
        self.info: StreamInfo | None = None
        self.sinks: list[Sink] = []
        self.latency = StageStats("latency")  # per frame, from capture to written to every output
        self.started_at = time.perf_counter()
        self.finished_at = 0.0
        self.written_limit_hit = False
        self.steps = steps
        self.results = results
        self._shared_sinks = list(shared_sinks)
        self._on_error = on_error
        policy = FillPolicy.DROP_OLDEST if self.live else FillPolicy.BLOCK
        # live: a frame waits behind at most one other anywhere, so latency is the stages' time
        size = config.queue_size or (1 if self.live else 4)
        fresh = 1 if self.live else size  # live: inference always takes the newest decoded frame
        self.queues = {
            "decoded": StageQueue("decoded", fresh, policy),
            "prepared": StageQueue("prepared", fresh, policy, arrived=arrived),
            "inferred": StageQueue("inferred", size, policy),
            "composited": StageQueue("composited", size, policy),
        }
        q = self.queues
        common: dict[str, Any] = {"stopping": self.stopping, "on_error": self._fail}
        self.workers = {
            "decode": Worker(
                "decode", _same, items=self._frames, outbox=q["decoded"], thread_name=f"{name}-decode", **common
            ),
            "preprocess": Worker(
                "preprocess",
                steps.preprocess,
                inbox=q["decoded"],
                outbox=q["prepared"],
                skip_when_stopping=True,
                thread_name=f"{name}-preprocess",
                **common,
            ),
            "composite": Worker(
                "composite",
                steps.composite,
                inbox=q["inferred"],
                outbox=q["composited"],
                thread_name=f"{name}-composite",
                **common,
            ),
            "output": Worker(
                "output",
                self._output,
                inbox=q["composited"],
                outbox=results,
                on_end=self._finish,
                thread_name=f"{name}-output",
                **common,
            ),
        }
        self.collector_input = CollectorInput(name, q["prepared"], q["inferred"], self.stopping)

    # -- life ------------------------------------------------------------------------------
    def start(self) -> None:
        for worker in self.workers.values():
            worker.start()

    def stop(self) -> None:
        """Stop reading (safe from any thread and from signal handlers)."""
        self.stopping.set()
        self.source_stop.set()

    def join(self, timeout: float | None = None) -> None:
        for worker in self.workers.values():
            worker.join(timeout)

    @property
    def done(self) -> bool:
        return all(not w.is_alive() for w in self.workers.values()) and self.finished_at > 0

    def _fail(self, err: BaseException) -> None:
        if self.error is None:
            self.error = err
            self.state = "failed"
            self._on_error(self, err)
        self.stop()

    # -- decode: open the source, its outputs, the backend for its size; then frames -------------
    def _frames(self) -> Iterator[Frame]:
        self.state = "opening"
        cfg = self.config
        self.source = open_input(
            self.uri,
            decode=cfg.decode,
            device=self.device,
            max_frames=None if self.live else cfg.max_frames,
            options=self.options,
            interrupted=self.source_stop,
            vectors=self.steps.motion_vectors,
            planes=self.steps.decoder_planes,
        )
        try:  # closed here, in the decoding thread: closing it from another would pull it from under a decode
            if self.stopping.is_set():  # removed or stopped while it opened
                self.stop()
            self.info = info = self.source.info
            self.steps.on_open(info, self._reconnects)
            self._make_room(self.steps.room())
            self.opened.set()
            self.sinks = self._open_sinks()
            if not self.steps.warm_up(info.height, info.width, self._warm_up):
                return
            self.state = "running"
            for frame in self.source.frames():
                yield dataclasses.replace(frame, source=self.name)
        finally:
            self.source.close()

    def _warm_up(self, shape: tuple[int, ...]) -> bool:
        """The backend set up for ``shape`` by the infer stage; False if the lane stopped meanwhile."""
        warm = WarmUp(shape)
        self.queues["prepared"].put(warm)
        while not warm.done.wait(0.2):
            if self.stopping.is_set():
                return False
        return True

    def _reconnects(self) -> int:
        return getattr(self.source, "reconnects", 0)  # live sources count them; files never reconnect

    def _make_room(self, held: int) -> None:
        """Room for the frames the steps hold back behind one in inference: every one of them comes out."""
        if not held:
            return
        self.results.make_room(held + 1)
        if self.live:  # files wait anyway
            self.queues["decoded"].make_room(held + 1)
            # past the steps' choice a dropped key frame would leave the frames carried from it without labels:
            # those queues wait instead, and an overloaded run drops camera frames before preprocess
            for name in ("prepared", "inferred", "composited"):
                self.queues[name].make_room(held + 1, FillPolicy.BLOCK)

    def _open_sinks(self) -> list[Sink]:
        cfg, spec, out, sinks = self.config, self.spec, self.outputs, []
        columns = out.events.columns if out.events is not None else ()  # coverage: (region, class) per column
        assert self.info is not None, "sinks open once the source has"
        try:
            for uri in out.videos:
                sinks.append(open_video_sink(uri, self.info, cfg.encoder, self.options))
            if out.labels_out:
                folder = out.labels_out
                if cfg.labels_format == "npz":
                    sinks.append(NpzLabelSink(f"{folder}/labels.npz"))
                else:
                    sinks.append(PngLabelSink(folder, spec.colors))
                if out.summary is None:
                    summary = f"{folder}/summary.csv"
                    sinks.append(SummarySink(summary, spec.classes, origin=self.steps.labels_origin, coverage=columns))
            if out.summary:
                sinks.append(SummarySink(out.summary, spec.classes, origin=self.steps.labels_origin, coverage=columns))
            events = out.events.open_sink(self.info) if out.events is not None else None
            if events is not None:
                sinks.append(events)
        except BaseException:
            for sink in sinks:
                sink.close(complete=False)
            raise
        return sinks

    # -- outputs ---------------------------------------------------------------------------
    def _output(self, result: Result) -> Result | None:
        limit = self.config.max_frames
        if self.written_limit_hit:
            return None  # a live source past --max-frames: frames still in flight are not written
        if self.outputs.events is not None:  # regions' coverage, on the result for every output
            result = self.outputs.events.measure(result)
        for sink in self.sinks:
            sink.write(result)
        for sink in self._shared_sinks:
            sink.write(result)
        self.latency.add(time.time() - result.capture_time)
        if self.live and limit is not None and self.latency.items >= limit:
            self.written_limit_hit = True  # live --max-frames N: N frames written, then stop
            self.stop()
        return result

    def _finish(self) -> None:
        """The last frame is out: finalize this source's outputs now, not when the other sources end."""
        self.finished_at = time.perf_counter()
        self.opened.set()  # nobody waits for an open that will not come
        if self.state not in ("failed",):
            self.state = "removed" if self.removed else "ended"
        errors = []
        complete = not self.stopped_early and not self.hit_max_frames
        for sink in self.sinks:
            try:
                sink.close(complete=complete)
            except Exception as err:  # noqa: BLE001 - keep closing the others
                errors.append(err)
        if errors:
            raise errors[0]
        if self.error is None:
            check_delivered(self.sinks)  # a stream output that reached nobody fails its source

    # -- figures ---------------------------------------------------------------------------
    @property
    def hit_max_frames(self) -> bool:
        limit = self.config.max_frames
        return limit is not None and (self.written_limit_hit or self.workers["decode"].stats.items >= limit)

    @property
    def stopped_early(self) -> bool:
        """True after an error, or a stop before the source ran out (drops don't count)."""
        if self.error is not None:
            return True
        return not self.workers["decode"].exhausted and not self.hit_max_frames

    @property
    def reconnecting(self) -> bool:
        return bool(getattr(self.source, "reconnecting", False))

    def health(self) -> str:
        if self.state == "running" and self.reconnecting:
            return "reconnecting"
        return self.state

    def stage_stats(self) -> dict[str, StageStats]:
        return {name: worker.stats for name, worker in self.workers.items()}

    def link_counts(self) -> dict[str, int]:
        """Reconnects of a live source and of stream outputs, and frames outputs dropped while down."""
        counts = {"reconnects": self.source.reconnects} if hasattr(self.source, "reconnects") else {}
        return {**counts, **output_links(self.sinks)}

    def summary_row(self) -> dict[str, Any]:
        stats = self.stage_stats()
        ended = self.finished_at or time.perf_counter()
        frames_out = self.latency.items  # written to every output (live frames past --max-frames are not)
        wall = ended - self.started_at
        return {
            "name": self.name, "source": self.info.name if self.info else self.display, "state": self.state,
            "frames_in": stats["decode"].items, "frames_out": frames_out,
            "dropped": sum(q.dropped for q in self.queues.values()),
            "fps": round(frames_out / wall, 3) if wall > 0 else 0.0, "wall_seconds": round(wall, 3),
            "latency_p50_ms": round(1000 * self.latency.percentile(50), 1),
            "stopped_early": self.stopped_early,
            "error": redact(str(self.error)) if self.error is not None else None,
            **self.steps.counts(),
            **self.link_counts(),
        }  # fmt: skip


def _same(item: Any) -> Any:
    return item
