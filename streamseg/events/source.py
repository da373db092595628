"""One source's regions and rules, checked when it starts, and the sink that turns its frames into events.

``SourceEvents`` is made per source (at the run's start, or when ``POST /sources`` adds one): the run's
``rois:`` and ``events:`` plus the source's own, each rule's region and classes checked against the
source's regions and the model's classes, so a bad rule is refused before a frame is read. The lane
calls ``measure`` on every result (coverage goes on the ``Result`` for every output to use) and writes
results to the ``EventsSink``, which runs the rules, alerts the bus and writes clips.
"""

from __future__ import annotations

import dataclasses
import json
import logging
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import cv2

from streamseg.errors import ConfigError, SinkError
from streamseg.events.bus import EventBus
from streamseg.events.clips import KEY_SECONDS, Clip, ClipEncoder, PacketRing, Stored
from streamseg.events.coverage import CoverageMeter
from streamseg.events.regions import Region
from streamseg.events.rules import Rule
from streamseg.events.tracker import Change, Event, RuleTracker
from streamseg.frames import Result, StreamInfo
from streamseg.stage_options import EncoderOptions

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class ClipOptions:
    folder: str  # --events-dir
    pre_roll: float  # seconds
    post_roll: float
    max_bytes: int  # the packet ring's cap, per source
    encoder: EncoderOptions


class SourceEvents:
    """A source's regions, rules and coverage columns; ``measure`` puts coverage on each result."""

    def __init__(
        self,
        source: str,
        regions: tuple[Region, ...],
        rules: tuple[Rule, ...],
        classes: tuple[str, ...],
        *,
        bus: EventBus,
        all_classes: bool = False,
        clips: ClipOptions | None = None,
    ):
        self.source, self.regions, self.rules, self.classes = source, regions, rules, classes
        self.bus = bus
        self.clips = clips
        names = [r.name for r in regions]
        if len(set(names)) != len(names):
            raise ConfigError(f"source {source}: region {sorted(n for n in names if names.count(n) > 1)[0]!r} twice")
        for rule in rules:
            if rule.region not in names:
                known = ", ".join(names) or "none (--roi NAME=x1,y1;x2,y2;...)"
                raise ConfigError(f"event rule {rule.label!r}: no region {rule.region!r} (regions: {known})")
            for name in rule.classes:
                if name not in classes:
                    raise ConfigError(f"event rule {rule.label!r}: {name!r} is not a class of the model")
        # (region, class) pairs measured: those the rules name, or every class of every region
        wanted = {(rule.region, c) for rule in rules for c in rule.classes}
        self.columns = tuple(
            (region.name, c) for region in regions for c in classes if all_classes or (region.name, c) in wanted
        )
        measured = {region for region, _ in self.columns}
        self._ids = {c: i for i, c in enumerate(classes)}
        self.meter = CoverageMeter(tuple(r for r in regions if r.name in measured), len(classes))
        bus.add_source(source, regions)

    def measure(self, result: Result) -> Result:
        """``result`` with the coverage of each (region, class) column."""
        if not self.columns:
            return result
        measured = self.meter.measure(result.labels)
        coverage: dict[str, dict[str, float]] = {}
        for region, name in self.columns:
            coverage.setdefault(region, {})[name] = round(float(measured[region][self._ids[name]]), 6)
        return dataclasses.replace(result, coverage=coverage)

    def open_sink(self, info: StreamInfo) -> EventsSink | None:
        return EventsSink(self, info) if self.rules else None


def media_time(result: Result, rate: float) -> float:
    """Seconds on the source's timeline; a frame without a timestamp is placed by its index."""
    time = result.time
    return time if time is not None else result.index / rate


class EventsSink:
    """Runs a source's rules on each result; alerts the bus; with ``--events-dir`` writes clips and sidecars."""

    def __init__(self, plan: SourceEvents, info: StreamInfo):
        self.plan = plan
        self.name = f"events {plan.source}"
        self.rate = float(info.rate or 25)
        self.trackers = [RuleTracker(rule, plan.source) for rule in plan.rules]
        self.events = 0
        self.clips_written: list[str] = []
        self._last_time: float | None = None
        self._clip: Clip | None = None
        self._clip_events: list[Event] = []
        self._close_at: float | None = None  # the clip ends at this time, once none of its events is on
        options = plan.clips
        self._encoder = self._ring = None
        if options is not None:
            try:
                Path(options.folder).mkdir(parents=True, exist_ok=True)
            except OSError as err:
                raise SinkError(f"cannot create {options.folder}: {err.strerror or err}") from None
            self._encoder = ClipEncoder(info.time_base, self.rate, options.encoder)
            longest_hold = max((r.hold for r in plan.rules), default=0.0)
            self._ring = PacketRing(options.pre_roll + longest_hold + 2 * KEY_SECONDS, options.max_bytes)

    @property
    def delivered(self) -> int:
        return self.events

    def write(self, result: Result) -> None:
        time = self._last_time = media_time(result, self.rate)
        if self._encoder is not None and self._ring is not None:
            for packet in self._encoder.encode(result.composited, result.pts):
                item = Stored(time, packet, bool(packet.is_keyframe), packet.size)
                self._ring.add(item)
                if self._clip is not None:
                    self._clip.add(item)
        coverage = result.coverage or {}
        inferred = result.origin == "inferred"
        for tracker in self.trackers:
            rule = tracker.rule
            value = sum(coverage.get(rule.region, {}).get(c, 0.0) for c in rule.classes)
            for change in tracker.update(time, result.index, value, inferred, keep=result):
                self._changed(change)
        if self._clip is not None and self._close_at is not None and time >= self._close_at - 1e-6:
            if not any(t.active is not None and t.active in self._clip_events for t in self.trackers):
                self._finish_clip()

    def _changed(self, change: Change) -> None:
        event = change.event
        if change.kind == "start":
            self.events += 1
            if self.plan.clips is not None:
                self._clip_begin(event)
        elif self._clip is not None and event in self._clip_events and event.end is not None:
            self._close_at = max(self._close_at or event.end, event.end + self._post_roll)
        message = event.message(change.kind)
        if self._clip is not None and event in self._clip_events:
            message["clip"] = self._clip.path
        self.plan.bus.emit(message)

    @property
    def _post_roll(self) -> float:
        return self.plan.clips.post_roll if self.plan.clips is not None else 0.0

    # -- clips -----------------------------------------------------------------------------
    def _clip_begin(self, event: Event) -> None:
        options = self.plan.clips
        assert options is not None and self._ring is not None and self._encoder is not None
        if self._clip is not None:  # an overlapping event: the clip it is in grows
            self._clip_events.append(event)
            self._close_at = None
            self._write_sidecar()
            return
        if self._encoder.stream is None:
            return  # nothing encoded yet (cannot happen: the frame that starts it is encoded first)
        path = _free_name(os.path.join(options.folder, event.id), ".mp4")
        self._clip = Clip(path, self._encoder.stream)
        self._clip_events = [event]
        self._close_at = None
        wanted = event.start - options.pre_roll
        for item in self._ring.since(wanted):
            self._clip.add(item)
        if self._clip.first is not None and self._clip.first > wanted + KEY_SECONDS:
            log.warning(
                "events %s: clip %s starts %.1f s before its event, not %.1f s (%s)",
                self.plan.source,
                path,
                event.start - self._clip.first,
                options.pre_roll,
                "--pre-roll-megabytes caps it" if self._ring.capped else "the stream began later",
            )
        self._write_sidecar()

    def _finish_clip(self, seekable: bool = True) -> None:
        clip, self._clip = self._clip, None
        if clip is None:
            return
        clip.finish(seekable)
        self._write_sidecar(clip)
        peak = self._clip_events[0].peak_picture  # the peak frame's Result
        if peak is not None:
            thumbnail = str(Path(clip.path).with_suffix(".jpg"))
            if not cv2.imwrite(thumbnail, cv2.cvtColor(peak.picture, cv2.COLOR_RGB2BGR)):
                log.warning("events %s: cannot write %s", self.plan.source, thumbnail)
        for event in self._clip_events:
            event.peak_picture = None  # done with it: let the frame go
        self.clips_written.append(clip.path)
        log.info("event clip %s (%d events)", clip.path, len(self._clip_events))
        self._clip_events, self._close_at = [], None

    def _write_sidecar(self, done: Clip | None = None) -> None:
        """The clip's JSON (its first event's fields, then every event in it); replaced atomically."""
        clip = done or self._clip
        if clip is None or not self._clip_events:
            return
        first = self._clip_events[0]
        body = {
            **first.message("end" if first.end is not None else "start"),
            "clip": os.path.basename(clip.path),
            "thumbnail": os.path.basename(str(Path(clip.path).with_suffix(".jpg"))) if done else None,
            "clip_start": clip.first,
            "clip_end": clip.last,
            "complete": done is not None,
            "coverage": [[round(t, 6), round(v, 6)] for t, v in first.series],
            "events": [{**e.message("end"), "coverage": [[round(t, 6), round(v, 6)] for t, v in e.series]}
                       for e in self._clip_events],
        }  # fmt: skip
        body.pop("kind")
        path = str(Path(clip.path).with_suffix(".json"))
        temporary = f"{path}.partial"
        try:
            with open(temporary, "w") as file:
                json.dump(body, file)
            os.replace(temporary, path)
        except OSError as err:
            raise SinkError(f"cannot write {path}: {err.strerror or err}") from None

    def close(self, complete: bool = True) -> None:
        """The source ended: events still on end at its last frame; an open clip is finalized."""
        errors: list[BaseException] = []
        if self._last_time is not None:
            for tracker in self.trackers:
                for change in tracker.finish(self._last_time):
                    try:
                        self._changed(change)
                    except SinkError as err:
                        errors.append(err)
        try:
            self._finish_clip()
        finally:
            if self._encoder is not None:
                self._encoder.close()
        if errors:
            raise errors[0]


def _free_name(stem: str, suffix: str) -> str:
    """``stem + suffix``, or with -2, -3 … where a file (or its sidecar) is already there: never overwrite."""
    candidate, n = stem, 1
    while any(os.path.lexists(candidate + s) for s in (suffix, ".json", ".jpg")):
        n += 1
        candidate = f"{stem}-{n}"
    return candidate + suffix


def plan_source_events(
    config: Any, spec: Any, name: str, classes: tuple[str, ...], bus: EventBus
) -> SourceEvents | None:
    """The events of source ``name`` (``spec`` its SourceSpec) under the run's ``config``; None without any."""
    regions = {r.name: r for r in config.rois}
    regions.update({r.name: r for r in spec.rois or ()})  # a source's own region wins over the run's of that name
    rules = (*config.events, *(spec.events or ()))
    if not regions and not rules:
        return None
    clips = None
    if config.events_dir and rules:
        clips = ClipOptions(
            folder=config.events_dir,
            pre_roll=config.pre_roll,
            post_roll=config.post_roll,
            max_bytes=int(config.pre_roll_megabytes * 1e6),
            encoder=config.encoder,
        )
    return SourceEvents(
        name,
        tuple(regions.values()),
        rules,
        classes,
        bus=bus,
        all_classes=config.coverage == "all",
        clips=clips,
    )
