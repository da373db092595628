"""What a run reports: its state, live figures for ``/metrics`` (``snapshot``), and the ``RunSummary`` at the end.

Every figure is read from the lanes, the shared infer stage and the results queue as they stand; nothing
here changes them. Per-stage figures merge the lanes' own stages (decode, preprocess, composite, output)
with the one shared infer stage.
"""

from __future__ import annotations

import time
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

from streamseg.collector import FrameCollector
from streamseg.lane import SourceLane
from streamseg.outputs import Sink, delivery_counts, output_links
from streamseg.queues import StageQueue
from streamseg.stage_stats import StageStats


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
    # process CPU seconds (user + system, every thread: the engine's and the codecs' too) over wall_seconds
    cpu_seconds: float = 0.0

    @property
    def fps(self) -> float:
        return self.frames_out / self.wall_seconds if self.wall_seconds > 0 else 0.0

    @property
    def cpu_ms_per_frame(self) -> float:
        """The whole process's CPU per frame out; a stage's ``cpu_ms`` counts its own thread only."""
        return 1000 * self.cpu_seconds / self.frames_out if self.frames_out else 0.0


@dataclass
class RunFigures:
    """The parts of a run the figures come from."""

    lanes: Sequence[SourceLane]
    collector: FrameCollector | None
    results: StageQueue | None
    shared: Sequence[Sink]  # the sinks every source writes to, counted once
    downstream: Sequence[Sink] = ()  # of those, MCAP, Foxglove, MQTT, Kafka: brokers count frames acknowledged

    def stages(self) -> dict[str, StageStats]:
        """Each stage's figures, the lanes' own merged, in the pipeline's order."""
        lanes = self.lanes
        stages = {
            name: StageStats.merged(name, [lane.workers[name].stats for lane in lanes])
            for name in ("decode", "preprocess")
        }
        if self.collector is not None:
            stages["infer"] = self.collector.stats
        for name in ("composite", "output"):
            stages[name] = StageStats.merged(name, [lane.workers[name].stats for lane in lanes])
        stages["output"].items = sum(lane.latency.items for lane in lanes)  # written, not handed over
        return stages

    def queues(self) -> dict[str, dict[str, int]]:
        queues: dict[str, dict[str, int]] = {}
        for lane in self.lanes:
            for name, q in lane.queues.items():
                entry = queues.setdefault(name, {"depth": 0, "dropped": 0, "maxsize": 0, "peak": 0})
                entry["depth"] += len(q)
                entry["dropped"] += q.dropped
                entry["maxsize"] += q.maxsize
                entry["peak"] = max(entry["peak"], q.peak)
        if self.results is not None:
            q = self.results
            queues["results"] = {"depth": len(q), "dropped": q.dropped, "maxsize": q.maxsize, "peak": q.peak}
        return queues

    def links(self) -> dict[str, int]:
        """Reconnects and drops of every source and output, summed; the shared outputs counted once."""
        return summed([*(lane.link_counts() for lane in self.lanes), output_links(self.shared)])

    def batches(self) -> dict[int, int]:
        return dict(sorted(self.collector.batch_sizes.items())) if self.collector is not None else {}

    def snapshot(self, state: str, elapsed: float, cpu_seconds: float = 0.0) -> dict[str, Any]:
        """Live counters for metrics pages: totals, and per source its state, stages, queues and links."""
        return {
            "stages": self.stages(),
            "queues": self.queues(),
            "elapsed": elapsed,
            "cpu_seconds": cpu_seconds,  # the process's, every thread's, since the run started
            "state": state,
            "extra": self.links(),
            "batches": dict(self.collector.batch_sizes) if self.collector is not None else {},
            # calls the engine may run at once, held waiting besides, and submitted now: all busy means the engine
            # is the limit
            "engine": {
                "streams": self.collector.streams(),
                "queued": self.collector.queued(),
                "in_flight": self.collector.in_flight(),
            }
            if self.collector is not None
            else {},
            "sources": {lane.name: {
                "state": lane.health(), "uri": lane.display, "stages": lane.stage_stats(),
                "written": lane.latency.items, "latency": lane.latency,
                "dropped": sum(q.dropped for q in lane.queues.values()), **lane.link_counts(),
                "problem": getattr(lane.source, "problem", None), "temporal": lane.steps.state(),
            } for lane in self.lanes},
        }  # fmt: skip

    def summary(
        self, *, backend: str, wall_seconds: float, cpu_seconds: float, stopped_early: bool, failed: dict[str, str]
    ) -> RunSummary:
        lanes = self.lanes
        queues = self.queues()
        results = queues.get("results", {"dropped": 0})
        return RunSummary(
            source=", ".join(lane.info.name if lane.info and len(lanes) == 1 else lane.name for lane in lanes),
            backend=backend,
            frames_in=sum(lane.workers["decode"].stats.items for lane in lanes),
            frames_out=sum(lane.latency.items for lane in lanes),
            dropped={name: q["dropped"] for name, q in queues.items() if q["dropped"] and name != "results"},
            stages={name: s.as_dict() for name, s in self.stages().items()},
            queue_peaks={name: q["peak"] for name, q in queues.items()},
            wall_seconds=wall_seconds,
            cpu_seconds=cpu_seconds,
            stopped_early=stopped_early,
            extra=self.links(),
            latency=StageStats.merged("latency", [lane.latency for lane in lanes]).as_dict(),
            sources=[lane.summary_row() for lane in lanes],
            batches=self.batches(),
            results_dropped=results["dropped"],
            failed=failed,
            delivered={
                **{name: n for lane in lanes for name, n in delivery_counts(lane.sinks).items()},
                **delivery_counts(self.downstream),  # MQTT, Kafka: frames their broker acknowledged
            },
        )


def run_state(lanes: Iterable[SourceLane], *, started: bool, stopping: bool) -> str:
    """starting, running, reconnecting or stopped: the run as a whole, from its running sources."""
    if stopping:
        return "stopped"
    lanes = list(lanes)
    if not started or not lanes:
        return "starting"
    states = [lane.health() for lane in lanes if not lane.done]
    if not states:
        return "stopped"
    if "running" in states:
        return "running"
    return "reconnecting" if "reconnecting" in states else "starting"


def elapsed_since(started_at: float) -> float:
    return time.perf_counter() - started_at if started_at else 0.0


def summed(counts: Iterable[dict[str, int]]) -> dict[str, int]:
    total: dict[str, int] = {}
    for part in counts:
        for key, value in part.items():
            total[key] = total.get(key, 0) + value
    return total
