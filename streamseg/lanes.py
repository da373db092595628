"""The sources of a run: one ``SourceLane`` each, added, removed and failed while the run goes on.

The registry names each source (its own ``name``, else one from its URI, unique in the run), expands its
output templates, refuses an output that would replace an input or another output, and keeps every lane
the run had, in order, with how many are still to end.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from streamseg.config import RunConfig, SourceSpec
from streamseg.errors import ConfigError, SinkError
from streamseg.frames import StreamInfo
from streamseg.lane import SourceLane
from streamseg.logs import redact
from streamseg.outputs.naming import SourceOutputs, check_name, expand, source_name, unique_names
from streamseg.outputs.paths import OutputPath, check_output_paths

log = logging.getLogger(__name__)

# a source as add_source takes it: a URI or path, a SourceSpec, or its fields
SourceLike = str | Path | SourceSpec | dict
# (source, its name, its index in the run, its outputs) -> a lane that has not started yet
LaneFactory = Callable[[SourceSpec, str, int, SourceOutputs], SourceLane]
# (source, its name, its outputs) -> those outputs with what the run adds (its regions and rules)
Equip = Callable[[SourceSpec, str, SourceOutputs], SourceOutputs]
# (source, its outputs) -> None, or raises: may refuse a source before it joins (the REST API's confinement)
Admit = Callable[[SourceSpec, SourceOutputs], None]


class LaneRegistry:
    """Every lane of one run by name, in the order they were added."""

    def __init__(self, config: RunConfig):
        self.config = config
        self.lanes: dict[str, SourceLane] = {}  # name -> lane, every lane this run had, in order
        self.lock = threading.Lock()
        self.running = 0  # lanes whose END has not come out of the results queue yet
        self.ever = 0  # lanes ever added (for {index})

    # -- before the run: names and outputs, checked -----------------------------------------
    def plan(self, specs: Sequence[SourceSpec]) -> list[tuple[SourceSpec, str, SourceOutputs]]:
        """Each source with its name and outputs; no output replaces an input or another output."""
        cfg = self.config
        if len(specs) > cfg.max_sources:
            raise ConfigError(f"{len(specs)} sources given, more than --max-sources {cfg.max_sources}")
        names = self._names(specs)
        plans = [(spec, name, self._outputs_for(spec, name, i)) for i, (spec, name) in enumerate(zip(specs, names))]
        owner = len(plans) > 1
        shared = [OutputPath("--mcap", cfg.mcap)] if cfg.mcap else []  # one file every source writes to
        check_output_paths(
            [s.uri for s in specs],
            [*shared, *(p for _, name, out in plans for p in out.paths(cfg, name if owner else None))],
        )
        return plans

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

    # -- while it runs ---------------------------------------------------------------------
    def add(self, spec: SourceSpec, name: str, outputs: SourceOutputs, make: LaneFactory, join: Callable) -> None:
        """Make the lane, ``join`` it to the shared infer stage (raises ``Closed`` once the run ended), start it."""
        lane = make(spec, name, self.ever, outputs)
        with self.lock:
            join(lane.collector_input)
            self.lanes[name] = lane
            self.running += 1
            self.ever += 1
        lane.start()
        log.info("source %s: %s", name, lane.display)

    def plan_one(
        self, spec: SourceSpec, equip: Equip, admit: Admit | None = None
    ) -> tuple[SourceSpec, str, SourceOutputs]:
        """A source joining a running run: its name and outputs (``equip``-ped, then ``admit``-ted),
        checked against everything the run holds: every lane's, ended ones too, and the one --mcap file."""
        cfg = self.config
        with self.lock:
            running = sum(not lane.done for lane in self.lanes.values())
            if running >= cfg.max_sources:
                raise ConfigError(f"{running} sources are running, the most --max-sources allows")
            (new_name,) = self._names([spec], taken=list(self.lanes))
            outputs = equip(spec, new_name, self._outputs_for(spec, new_name, self.ever))
            if admit is not None:
                admit(spec, outputs)
            held = [p for lane in self.lanes.values() for p in lane.outputs.paths(cfg, lane.name)]
            shared = [OutputPath("--mcap", cfg.mcap)] if cfg.mcap else []
            try:
                check_output_paths(
                    [spec.uri, *(lane.uri for lane in self.lanes.values())],
                    [*shared, *held, *outputs.paths(cfg, new_name)],
                )
            except SinkError as err:
                raise ConfigError(str(err)) from None
        return spec, new_name, outputs

    @staticmethod
    def source_spec(uri: SourceLike, name: str | None, options: dict[str, Any]) -> SourceSpec:
        """``add_source``'s arguments as one checked ``SourceSpec``."""
        if isinstance(uri, SourceSpec):
            return uri
        data = dict(uri) if isinstance(uri, dict) else {"uri": str(uri)}
        data.update(options)
        if name is not None:
            data["name"] = name
        try:
            return SourceSpec.model_validate(data)
        except ValueError as err:
            raise ConfigError(f"source: {str(err).splitlines()[0]}") from None

    def remove(self, name: str) -> None:
        """Stop one source: its frames in flight reach its outputs, which are then finalized."""
        lane = self.lanes.get(name)
        if lane is None or lane.done:
            raise ConfigError(f"no running source named {name!r}")
        lane.removed = True
        lane.stop()

    def failed(self, lane: SourceLane, err: BaseException) -> None:
        if self.ever > 1:  # one source's failure is the run's error, said once at the end
            log.warning("source %s failed: %s", lane.name, redact(str(err)))

    def ended(self) -> None:
        """One lane's END came out of the results queue."""
        with self.lock:
            self.running -= 1

    def all_ended(self) -> bool:
        with self.lock:
            return self.running == 0

    def stop(self) -> None:
        for lane in list(self.lanes.values()):
            lane.stop()

    def join(self) -> None:
        for lane in list(self.lanes.values()):
            lane.join()

    # -- as they stand -----------------------------------------------------------------------
    @property
    def failures(self) -> dict[str, str]:
        """Sources that failed for good: name -> one-line reason."""
        return {lane.name: redact(str(lane.error)) for lane in self.lanes.values() if lane.error is not None}

    def stopped_early(self) -> bool:
        """A source stopped before it ran out (a removed or failed one does not count)."""
        return any(lane.stopped_early and lane.error is None and not lane.removed for lane in self.lanes.values())

    def whole(self) -> bool:
        """Every source went through whole: nothing stopped early and no --max-frames cut."""
        return not self.stopped_early() and not any(lane.hit_max_frames for lane in self.lanes.values())

    def only_info(self) -> StreamInfo | None:
        """The ``StreamInfo`` of a one-source run, once its source has opened (waits for that)."""
        if len(self.lanes) != 1:
            raise ConfigError(f"info: this run has {len(self.lanes)} sources; see each lane's info in .lanes")
        lane = next(iter(self.lanes.values()))
        lane.opened.wait()
        if lane.info is None and lane.error is not None:
            raise lane.error
        return lane.info

    def only_error(self) -> BaseException | None:
        """The error of a one-source run's source (as a single-source run always raised it)."""
        failed = [lane for lane in self.lanes.values() if lane.error is not None]
        return failed[0].error if len(failed) == 1 and len(self.lanes) == 1 else None
