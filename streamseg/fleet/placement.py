"""Where cameras go: pure functions of each node's capacity and camera count, tested without a cluster.

The rules: a node never holds more cameras than its capacity; cameras are spread evenly (each goes to the node
least full for its capacity); a camera that fits nowhere stays unplaced until a node with room joins; a camera
added while the fleet runs goes to the node with the most room. Running cameras are never moved to even out
the load: only a node's death moves them.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, replace


@dataclass(frozen=True)
class NodeRoom:
    """One node as placement sees it: ``capacity`` None is unbounded (one machine without --ray)."""

    node: str
    capacity: int | None
    cameras: int = 0

    @property
    def room(self) -> float:
        return float("inf") if self.capacity is None else max(0, self.capacity - self.cameras)

    @property
    def fill(self) -> float:
        """How full the node is, 0..1 (an unbounded node counts its cameras as a fraction of a large number)."""
        return self.cameras / (self.capacity if self.capacity else 1e9)


def most_room(nodes: Iterable[NodeRoom]) -> str | None:
    """The node with the most room left (ties: fewer cameras, then the node id); None when every node is full."""
    open_nodes = [n for n in nodes if n.room > 0]
    if not open_nodes:
        return None
    return min(open_nodes, key=lambda n: (-n.room, n.cameras, n.node)).node


def spread(cameras: Sequence[str], nodes: Iterable[NodeRoom]) -> tuple[dict[str, str], list[str]]:
    """Place ``cameras`` in order, each on the node least full (ties: most room, then the node id).

    Returns the cameras placed (name -> node) and, in order, those that fit nowhere.
    """
    rooms = {n.node: n for n in nodes}
    placed: dict[str, str] = {}
    unplaced: list[str] = []
    for name in cameras:
        open_nodes = [n for n in rooms.values() if n.room > 0]
        if not open_nodes:
            unplaced.append(name)
            continue
        best = min(open_nodes, key=lambda n: (n.fill, -n.room, n.node))
        placed[name] = best.node
        rooms[best.node] = replace(best, cameras=best.cameras + 1)
    return placed, unplaced


def orphans(assigned: Mapping[str, str | None], alive: Iterable[str]) -> list[str]:
    """Cameras assigned to a node that is not in ``alive`` (it died, or its node pipeline did), in order."""
    up = set(alive)
    return [name for name, node in assigned.items() if node is not None and node not in up]


def rooms(assigned: Mapping[str, str | None], capacities: Mapping[str, int | None]) -> list[NodeRoom]:
    """Each ready node with the number of cameras the map gives it."""
    counts = {node: 0 for node in capacities}
    for node in assigned.values():
        if node in counts:
            counts[node] += 1
    return [NodeRoom(node, capacity, counts[node]) for node, capacity in capacities.items()]
