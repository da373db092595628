"""The event state machine of one rule on one source: idle -> pending -> active -> cooldown -> idle.

The condition must hold for the rule's ``hold`` seconds before it is an event; the event's start is then
backdated to the first frame of that run, so ``start`` is when it began, not when it was confirmed. The
event ends on the first frame where the condition no longer holds (or at the end of the stream). A
frame whose labels were carried from an earlier inferred frame (``Result.origin``) counts like an inferred
one; the event says how many of its frames were inferred.
"""

from __future__ import annotations

import itertools
import secrets
from dataclasses import dataclass, field
from typing import Any

from streamseg.events.rules import Rule

_RUN = secrets.token_hex(3)  # event ids are unique across runs as well as within one
_NUMBERS = itertools.count(1)


@dataclass(eq=False)  # one event is one object: compared by identity
class Event:
    """One event; ``end`` is None while it lasts."""

    id: str
    source: str
    rule: Rule
    start: float  # seconds on the source's timeline
    start_index: int
    peak: float  # the coverage furthest past the threshold
    peak_time: float
    peak_index: int
    end: float | None = None
    ended_by: str | None = None  # "condition" or "stream end"
    frames: int = 0
    inferred: int = 0
    series: list[tuple[float, float]] = field(default_factory=list)  # (time, coverage) of every frame in it
    peak_picture: Any = field(default=None, repr=False)  # what the caller keeps of the peak frame (a thumbnail)

    def add(self, time: float, index: int, value: float, inferred: bool, keep: Any = None) -> None:
        """One more frame of the event."""
        self.frames += 1
        self.inferred += inferred
        self.series.append((time, value))
        if self.rule.beyond(value, self.peak):
            self.peak, self.peak_time, self.peak_index = value, time, index
            if keep is not None:
                self.peak_picture = keep

    def message(self, kind: str) -> dict[str, Any]:
        """The JSON every alert carries: ``kind`` is "start" or "end" (schema in docs/events.md)."""
        return {
            "kind": kind, "id": self.id, "source": self.source, "rule": self.rule.label,
            "region": self.rule.region, "classes": list(self.rule.classes), "op": self.rule.op,
            "threshold": self.rule.threshold, "start": round(self.start, 6),
            "end": None if self.end is None else round(self.end, 6), "ended_by": self.ended_by,
            "peak": round(self.peak, 6), "peak_time": round(self.peak_time, 6),
            "frames": self.frames, "inferred": self.inferred,
        }  # fmt: skip


@dataclass(frozen=True)
class Change:
    """An event began ("start") or ended ("end") on this frame."""

    kind: str
    event: Event


class RuleTracker:
    """Feeds one rule the coverage of each frame of one source; returns the events that start or end."""

    def __init__(self, rule: Rule, source: str):
        self.rule = rule
        self.source = source
        self.active: Event | None = None
        self._pending: list[tuple[float, int, float, bool]] = []  # frames of a run not yet held long enough
        self._pending_peak: tuple[float, Any] | None = None  # the run's peak so far, and what was kept of it
        self._quiet_until: float | None = None  # cooldown: no new event before this time
        self.events = 0

    def update(self, time: float, index: int, value: float, inferred: bool, keep: Any = None) -> list[Change]:
        """One frame's coverage; ``keep`` (e.g. its picture) is held on to while the frame is its event's peak."""
        rule, changes = self.rule, list[Change]()
        holds = rule.holds(value)
        if self.active is not None:
            if holds:
                self.active.add(time, index, value, inferred, keep)
                return changes
            event, self.active = self.active, None
            event.end, event.ended_by = time, "condition"
            self._quiet_until = time + rule.cooldown if rule.cooldown else None
            changes.append(Change("end", event))
            return changes
        if self._quiet_until is not None and time < self._quiet_until:
            return changes
        if not holds:
            self._pending.clear()
            return changes
        self._pending.append((time, index, value, inferred))
        if self._pending_peak is None or len(self._pending) == 1 or rule.beyond(value, self._pending_peak[0]):
            self._pending_peak = (value, keep)
        first_time, first_index, first_value, _ = self._pending[0]
        if time - first_time + 1e-9 < rule.hold:
            return changes
        self.events += 1
        event = Event(
            id=f"{self.source}-{_RUN}-{next(_NUMBERS)}",
            source=self.source,
            rule=rule,
            start=first_time,
            start_index=first_index,
            peak=first_value,
            peak_time=first_time,
            peak_index=first_index,
        )
        for frame in self._pending:
            event.add(*frame)
        assert self._pending_peak is not None, "set with the first pending frame"
        event.peak_picture = self._pending_peak[1]
        self._pending.clear()
        self._pending_peak = None
        self.active = event
        changes.append(Change("start", event))
        return changes

    def finish(self, time: float) -> list[Change]:
        """The stream ended: an event still on ends at its last frame."""
        self._pending.clear()
        if self.active is None:
            return []
        event, self.active = self.active, None
        event.end, event.ended_by = time, "stream end"
        return [Change("end", event)]
