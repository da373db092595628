"""The camera->node map: what should run where, kept where a restarted ``serve`` (and a restarted node
pipeline) finds it.

On Ray it lives in a detached named actor on the head node, so it outlives the ``serve`` process: a ``serve``
started again re-attaches to the cameras already running instead of starting them twice. A lease, renewed
every reconcile pass, keeps two ``serve`` processes from driving one fleet.

Each camera's record: ``name``, ``index`` (its place in the fleet, for ``{index}``), ``source`` (its
``sources:`` entry), ``node`` (None: unplaced) and ``segment`` (how many times it has started; each start on a
node is a new segment of its file outputs).
"""

from __future__ import annotations

import time
from typing import Any

LEASE_SECONDS = 10.0  # a controller silent this long has gone: another may take the fleet over


class FleetState:
    """The desired state of the fleet. Plain Python: an in-process object, or a Ray actor."""

    def __init__(self) -> None:
        self.config: dict[str, Any] | None = None  # the shared run options (RunConfig, sources empty)
        self.model: bytes | None = None  # the model file's bytes, for nodes that don't see its path
        self.cameras: dict[str, dict[str, Any]] = {}  # name -> record, in the fleet's order
        self.moves = 0  # cameras moved off a node that died, since the fleet started
        self.holder: str | None = None
        self.renewed = 0.0
        self.next_index = 0
        self.segments: dict[str, int] = {}  # name -> its last segment, kept after a DELETE: a camera added again
        # under the same name goes on numbering, so it never overwrites what it wrote before

    # -- the controller's lease ------------------------------------------------------------------
    def claim(self, holder: str) -> str | None:
        """Take the lease for ``holder``; returns who holds it instead, when another controller is alive."""
        now = time.monotonic()
        if self.holder not in (None, holder) and now - self.renewed < LEASE_SECONDS:
            return self.holder
        self.holder, self.renewed = holder, now
        return None

    def release(self, holder: str) -> None:
        if self.holder == holder:
            self.holder = None

    # -- set-up ----------------------------------------------------------------------------------
    def setup(self, config: dict[str, Any], model: bytes | None, sources: list[dict[str, Any]]) -> bool:
        """The fleet's first start: options, model and cameras. False when it was set up already (re-attach)."""
        if self.config is not None:
            return False
        self.config, self.model = config, model
        for source in sources:
            self.add(source)
        return True

    def read(self) -> dict[str, Any]:
        return {"config": self.config, "cameras": [dict(r) for r in self.cameras.values()], "moves": self.moves}

    def model_bytes(self) -> bytes | None:
        return self.model

    # -- changes ---------------------------------------------------------------------------------
    def add(self, source: dict[str, Any]) -> dict[str, Any]:
        segment = self.segments.get(source["name"], 0)
        record = {"name": source["name"], "index": self.next_index, "source": source, "node": None, "segment": segment}
        self.cameras[source["name"]] = record
        self.next_index += 1
        return record

    def remove(self, name: str) -> bool:
        return self.cameras.pop(name, None) is not None

    def assign(self, placements: dict[str, str | None], moved: int = 0) -> None:
        """Cameras to nodes (None: unplaced). A camera given a node starts there as a new segment."""
        for name, node in placements.items():
            record = self.cameras.get(name)
            if record is None:
                continue
            record["node"] = node
            if node is not None:
                record["segment"] += 1
                self.segments[name] = record["segment"]
        self.moves += moved

    def restarting(self, node: str) -> list[dict[str, Any]]:
        """A node pipeline (re)starting on ``node``: its cameras, each starting again as a new segment."""
        mine = [r for r in self.cameras.values() if r["node"] == node]
        for record in mine:
            record["segment"] += 1
            self.segments[record["name"]] = record["segment"]
        return [dict(r) for r in mine]
