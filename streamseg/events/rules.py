"""Rules: a condition on a region's coverage that, held long enough, is an event.

On the command line (``--event``) a rule is one line::

    CLASS[,CLASS...] in REGION (>|>=|<|<=) THRESHOLD [for DURATION] [cooldown DURATION]
    person in crosswalk > 0.02 for 0.5s
    road in lane < 33% for 2s cooldown 30s

In YAML (``events:``) it is that line, or a mapping with the same parts: ``classes``, ``region``, ``op``,
``threshold``, ``for``, ``cooldown`` and an optional ``name``. Several classes add up their coverage.
"""

from __future__ import annotations

import operator
import re
from collections.abc import Callable
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator

_RULE = re.compile(
    r"^\s*(?P<classes>.+?)\s+in\s+(?P<region>[A-Za-z0-9_-]+)\s*(?P<op>>=|<=|>|<)\s*(?P<threshold>[0-9.]+%?)"
    r"(?:\s+for\s+(?P<hold>[0-9.]+\s*(?:ms|s)?))?(?:\s+cooldown\s+(?P<cooldown>[0-9.]+\s*(?:ms|s)?))?\s*$"
)
COMPARE: dict[str, Callable[[float, float], bool]] = {
    ">": operator.gt,
    ">=": operator.ge,
    "<": operator.lt,
    "<=": operator.le,
}
SYNTAX = "CLASS in REGION > THRESHOLD [for 0.5s] [cooldown 10s], e.g. 'person in crosswalk > 0.02 for 0.5s'"


def seconds(value: Any) -> Any:
    """``0.5``, ``"0.5s"`` or ``"500ms"`` as seconds; anything else is left for pydantic to refuse."""
    if isinstance(value, str):
        text = value.strip().lower()
        scale = 0.001 if text.endswith("ms") else 1.0
        try:
            return float(text.removesuffix("ms").removesuffix("s").strip()) * scale
        except ValueError:
            raise ValueError(f"{value!r}: expected a duration such as 0.5s or 500ms") from None
    return value


class Rule(BaseModel):
    """When ``classes`` cover more (or less) than ``threshold`` of ``region`` for ``hold`` seconds."""

    model_config = ConfigDict(extra="forbid", frozen=True, populate_by_name=True)

    classes: tuple[str, ...] = Field(min_length=1)
    region: str
    op: Literal[">", ">=", "<", "<="] = ">"
    threshold: float = Field(ge=0.0, le=1.0)
    hold: float = Field(0.0, ge=0.0, alias="for")  # seconds the condition must hold before it is an event
    cooldown: float = Field(0.0, ge=0.0)  # seconds after an event's end before the rule may fire again
    name: str | None = None  # default: the rule as text

    @field_validator("classes", mode="before")
    @classmethod
    def _split(cls, value: Any) -> Any:
        return tuple(c.strip() for c in value.split(",") if c.strip()) if isinstance(value, str) else value

    @field_validator("threshold", mode="before")
    @classmethod
    def _percent(cls, value: Any) -> Any:
        if isinstance(value, str) and value.strip().endswith("%"):
            return float(value.strip()[:-1]) / 100
        return value

    @field_validator("hold", "cooldown", mode="before")
    @classmethod
    def _duration(cls, value: Any) -> Any:
        return seconds(value)

    @property
    def text(self) -> str:
        """The rule in the ``--event`` syntax; its name when it has none."""
        line = f"{','.join(self.classes)} in {self.region} {self.op} {self.threshold:g}"
        if self.hold:
            line += f" for {self.hold:g}s"
        if self.cooldown:
            line += f" cooldown {self.cooldown:g}s"
        return line

    @property
    def label(self) -> str:
        return self.name or self.text

    def holds(self, value: float) -> bool:
        return COMPARE[self.op](value, self.threshold)

    def beyond(self, value: float, other: float) -> bool:
        """Whether ``value`` is further past the threshold than ``other`` (an event's peak is the furthest)."""
        return value > other if self.op in (">", ">=") else value < other


def parse_rule(text: str) -> dict[str, Any]:
    """One ``--event`` line as a Rule's fields."""
    found = _RULE.match(text)
    if found is None:
        raise ValueError(f"rule {text!r}: expected {SYNTAX}")
    parts = found.groupdict()
    fields: dict[str, Any] = {
        "classes": [c.strip() for c in re.split(r",|\s+or\s+", parts["classes"]) if c.strip()],
        "region": parts["region"],
        "op": parts["op"],
        "threshold": parts["threshold"],
    }
    if parts["hold"]:
        fields["for"] = parts["hold"]
    if parts["cooldown"]:
        fields["cooldown"] = parts["cooldown"]
    return fields


def rules_from(value: Any) -> Any:
    """Rules as flags give them (lines) or YAML does (lines or mappings)."""
    if isinstance(value, (str, dict)):
        value = [value]
    if isinstance(value, (list, tuple)):
        return tuple(parse_rule(v) if isinstance(v, str) else v for v in value)
    return value
