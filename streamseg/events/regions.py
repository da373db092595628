"""Regions of interest: named polygons in normalized coordinates, and their pixel masks per frame size.

Points are (x, y) fractions of the frame's width and height, so a region keeps its place when a camera
changes resolution. A region must be a simple polygon (no edge crosses another) of at least 3 points, all
inside 0..1; anything else is refused when the run starts.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
from pydantic import BaseModel, ConfigDict, field_validator, model_validator

Point = tuple[float, float]


class Region(BaseModel):
    """One named polygon, e.g. ``crosswalk=0.4,0.3;0.6,0.3;0.6,0.7;0.4,0.7`` on the command line."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    name: str
    points: tuple[Point, ...]

    @field_validator("name")
    @classmethod
    def _plain_name(cls, name: str) -> str:
        if not name or not all(c.isalnum() or c in "_-" for c in name):
            raise ValueError(f"region name {name!r}: use letters, digits, '_' and '-'")
        return name

    @field_validator("points", mode="before")
    @classmethod
    def _text_points(cls, value: Any) -> Any:
        return parse_points(value) if isinstance(value, str) else value

    @model_validator(mode="after")
    def _simple_polygon(self) -> Region:
        problem = polygon_problem(self.points)
        if problem:
            raise ValueError(f"region {self.name!r}: {problem}")
        return self


def parse_points(text: str) -> tuple[Point, ...]:
    """``x1,y1;x2,y2;...`` as points."""
    points = []
    for pair in text.replace(" ", "").strip(";").split(";"):
        x, sep, y = pair.partition(",")
        try:
            points.append((float(x), float(y)))
        except ValueError:
            raise ValueError(f"{pair!r} is not a point x,y (expected x1,y1;x2,y2;...)") from None
        if not sep:
            raise ValueError(f"{pair!r} is not a point x,y (expected x1,y1;x2,y2;...)")
    return tuple(points)


def parse_region(text: str) -> dict[str, Any]:
    """``NAME=x1,y1;x2,y2;...`` (the ``--roi`` flag) as a Region's fields."""
    name, sep, points = text.partition("=")
    if not sep:
        raise ValueError(f"--roi {text!r}: expected NAME=x1,y1;x2,y2;...")
    return {"name": name.strip(), "points": points}


def regions_from(value: Any) -> Any:
    """Regions as flags give them (``NAME=...`` strings) or YAML does (a mapping of name to points)."""
    if isinstance(value, (str, dict)) and not (isinstance(value, dict) and "name" in value):
        value = [value] if isinstance(value, str) else [{"name": k, "points": v} for k, v in value.items()]
    if isinstance(value, (list, tuple)):
        return tuple(parse_region(v) if isinstance(v, str) else v for v in value)
    return value


def polygon_problem(points: tuple[Point, ...]) -> str | None:
    """Why ``points`` is not a usable region, or None."""
    if len(points) < 3:
        return f"{len(points)} points; a region needs at least 3"
    for x, y in points:
        if not (0.0 <= x <= 1.0 and 0.0 <= y <= 1.0):
            return f"point ({x:g}, {y:g}) is outside 0..1 (coordinates are fractions of the frame)"
    edges = [(points[i], points[(i + 1) % len(points)]) for i in range(len(points))]
    for i, first in enumerate(edges):
        for j in range(i + 1, len(edges)):
            if j == i + 1 or (i == 0 and j == len(edges) - 1):
                continue  # neighbours share a corner
            if _cross(*first, *edges[j]):
                return f"edges {i + 1} and {j + 1} cross: not a simple polygon"
    if abs(_area(points)) < 1e-9:
        return "the polygon has no area"
    return None


def _area(points: tuple[Point, ...]) -> float:
    return 0.5 * sum(x1 * y2 - x2 * y1 for (x1, y1), (x2, y2) in zip(points, points[1:] + points[:1]))


def _cross(a: Point, b: Point, c: Point, d: Point) -> bool:
    """Whether segments ab and cd touch (collinear overlaps included)."""

    def side(p: Point, q: Point, r: Point) -> float:
        return (q[0] - p[0]) * (r[1] - p[1]) - (q[1] - p[1]) * (r[0] - p[0])

    def between(p: Point, q: Point, r: Point) -> bool:
        return min(p[0], q[0]) <= r[0] <= max(p[0], q[0]) and min(p[1], q[1]) <= r[1] <= max(p[1], q[1])

    d1, d2, d3, d4 = side(c, d, a), side(c, d, b), side(a, b, c), side(a, b, d)
    if ((d1 > 0) != (d2 > 0)) and ((d3 > 0) != (d4 > 0)) and 0 not in (d1, d2, d3, d4):
        return True
    return any(
        s == 0 and between(p, q, r) for s, p, q, r in ((d1, c, d, a), (d2, c, d, b), (d3, a, b, c), (d4, a, b, d))
    )


@dataclass(frozen=True)
class RegionMask:
    """A region at one frame size: its bounding box, the mask inside it (None: the box is the region), pixels."""

    rows: slice
    cols: slice
    mask: np.ndarray | None  # uint8, 1 inside the polygon, shaped like the box
    pixels: int


def rasterize(region: Region, height: int, width: int) -> RegionMask:
    """The pixels whose centres lie inside the polygon (even-odd rule, edges half-open), cropped to their box."""
    xs = np.array([x * width for x, _ in region.points])
    ys = np.array([y * height for _, y in region.points])
    x0, y0, x1, y1 = xs, ys, np.roll(xs, -1), np.roll(ys, -1)
    full = np.zeros((height, width), np.uint8)
    for row in range(height):
        centre = row + 0.5
        crossing = (y0 <= centre) != (y1 <= centre)  # edges that straddle this row's centre line
        if not crossing.any():
            continue
        at = np.sort(x0[crossing] + (centre - y0[crossing]) * (x1[crossing] - x0[crossing]) / (y1 - y0)[crossing])
        for left, right in zip(at[::2], at[1::2]):  # inside between each pair: pixel centres in [left, right)
            first, stop = max(0, int(np.ceil(left - 0.5))), min(width, int(np.ceil(right - 0.5)))
            full[row, first:stop] = 1
    rows_in, cols_in = np.nonzero(full.any(axis=1))[0], np.nonzero(full.any(axis=0))[0]
    if len(rows_in) == 0:  # thinner than a pixel at this size: its nearest pixel stands for it
        y, x = min(height - 1, int(ys.mean())), min(width - 1, int(xs.mean()))
        return RegionMask(slice(y, y + 1), slice(x, x + 1), None, 1)
    rows, cols = slice(int(rows_in[0]), int(rows_in[-1]) + 1), slice(int(cols_in[0]), int(cols_in[-1]) + 1)
    box = full[rows, cols]
    pixels = int(box.sum())
    return RegionMask(rows, cols, None if pixels == box.size else np.ascontiguousarray(box), pixels)


class RegionMasks:
    """Each region's mask, made once per frame size and reused for every frame of that size."""

    def __init__(self, regions: tuple[Region, ...]):
        self.regions = regions
        self._by_size: dict[tuple[int, int], tuple[RegionMask, ...]] = {}

    def at(self, height: int, width: int) -> tuple[RegionMask, ...]:
        masks = self._by_size.get((height, width))
        if masks is None:
            masks = self._by_size[(height, width)] = tuple(rasterize(r, height, width) for r in self.regions)
        return masks
