"""The fleet's controller: desired state (the map) against actual state (what each node pipeline reports),
reconciled every ``PERIOD`` seconds, as a Kubernetes controller does.

Each pass: drop the node pipelines whose node left the cluster or that died, and put their cameras back to be
placed ("moving"); start a node pipeline on every node that has none (again after a failure, with back-off);
place unplaced and moving cameras on the nodes with room; send each node pipeline the cameras it should run.
A camera that fails on its own (the camera is down) stays where it is and reconnects there, as in ``run``.
"""

from __future__ import annotations

import logging
import os
import socket
import threading
import time
import uuid
from typing import Any

from streamseg.config import RunConfig, SourceSpec
from streamseg.errors import ConfigError
from streamseg.fleet.config import NODE_FOR_CHECKS, Fleet, check_outputs, parse_camera, placed_source
from streamseg.fleet.placement import most_room, orphans, rooms, spread
from streamseg.fleet.state import LEASE_SECONDS
from streamseg.outputs.naming import SourceOutputs
from streamseg.outputs.servers.confine import Confinement

log = logging.getLogger(__name__)

PERIOD = 0.5  # seconds between reconcile passes
RETRY_FIRST, RETRY_MAX = 1.0, 30.0  # back-off, in seconds, for a node pipeline that failed to start or died
SILENCE = 5.0  # seconds a ready node pipeline may leave a call unanswered before it counts as lost
BUSY_SILENCE = 60.0  # the same while it starts cameras (a first camera loads the model, which may hold the GIL)
START_GRACE = 60.0  # seconds a fresh fleet waits for every node pipeline to be ready before its first placement


class Controller:
    """Keeps the fleet's cameras running on ``nodes`` (``streamseg.fleet.cluster``)."""

    def __init__(self, nodes: Any, fleet: Fleet, *, capacity: int | None, camera_fps: float):
        self.nodes, self.capacity, self.camera_fps = nodes, capacity, camera_fps
        self.store = nodes.store()
        self.id = f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:6]}"
        self._claim()
        model = fleet.run.model
        data = open(model, "rb").read() if nodes.remote and model and os.path.isfile(model) else None
        cameras = [c.model_dump(exclude_none=True) for c in fleet.cameras]
        self.fresh = self.store.call("setup", fleet.run.model_dump(mode="json", exclude_unset=True), data, cameras)
        self.lock = threading.RLock()
        self.links: dict[str, Any] = {}  # node pipeline id -> its link
        self.views: dict[str, dict[str, Any]] = {}  # node pipeline id -> its last report (info and cameras)
        self.addresses: dict[str, str] = {}
        self.moving: set[str] = set()  # cameras taken off a lost node, until their new node runs them
        self.retry: dict[str, tuple[float, float]] = {}  # node pipeline id -> (not before, next delay)
        self.records: dict[str, dict[str, Any]] = {}
        self.moves = 0
        self.started = time.monotonic()
        self._refresh()
        self.run = RunConfig.build(self.store.call("read")["config"], "the fleet's options")

    def _claim(self) -> None:
        """The fleet's lease; a ``serve`` that died leaves it to lapse, so a restarted one waits that long."""
        deadline = time.monotonic() + LEASE_SECONDS + 1
        while (holder := self.store.call("claim", self.id)) is not None:
            if time.monotonic() > deadline:
                raise ConfigError(f"this cluster's fleet is served already, by {holder}: stop that `serve` first")
            time.sleep(0.5)

    # -- the loop --------------------------------------------------------------------------------
    def serve(self, stopping: threading.Event) -> None:
        """Reconcile until ``stopping`` is set."""
        while not stopping.is_set():
            started = time.monotonic()
            try:
                self.reconcile()
            except Exception as err:  # noqa: BLE001 - a failed pass is retried by the next one
                log.warning("fleet: reconcile pass failed: %s", err)
            stopping.wait(max(0.0, PERIOD - (time.monotonic() - started)))

    def reconcile(self) -> None:
        with self.lock:
            holder = self.store.call("claim", self.id)
            if holder is not None:
                raise ConfigError(f"the fleet was taken over by {holder}")
            alive = self.nodes.alive()
            self.addresses.update(alive)
            for unit in [u for u in self.links if u not in alive]:
                self._lost(unit, "its node left the cluster")
            for unit, link in list(self.links.items()):
                kind, value = link.poll()
                if kind == "done":
                    self.views[unit] = value
                    self.retry.pop(unit, None)
                elif kind == "dead":
                    self._lost(unit, value)
                elif kind == "error":
                    log.warning("fleet: node %s: %s", short(unit), value)
                elif unit in self.views and link.waited() > (limit := self._silence(unit)):
                    # Ray notices a dead node by missed health checks, ~30 s by default; a node pipeline answers
                    # a sync in milliseconds, so a long silence is the faster sign of its node's death
                    self._lost(unit, f"no answer for {limit:g} s")
            now = time.monotonic()
            for unit, address in alive.items():
                if unit not in self.links and now >= self.retry.get(unit, (0.0, 0.0))[0]:
                    self.links[unit] = self.nodes.link(unit, address, self.store, self.capacity, self.camera_fps)
            lost = orphans({n: r["node"] for n, r in self.records.items()}, self.links)
            if lost:  # on a node that went while no controller watched (a re-attach)
                self.store.call("assign", dict.fromkeys(lost), len(lost))
                self.moving.update(lost)
                self._refresh()
            self._place()
            version = time.time()
            for unit, link in self.links.items():
                if not link.busy:
                    link.send("sync", version, [r for r in self.records.values() if r["node"] == unit])

    def _silence(self, unit: str) -> float:
        return BUSY_SILENCE if self.views[unit].get("busy") else SILENCE

    def _place(self) -> None:
        """Unplaced and moving cameras onto ready node pipelines, spread evenly, never over capacity."""
        waiting = [name for name, r in self.records.items() if r["node"] is None]
        ready = self._capacities()
        if len(ready) < len(self.links) and time.monotonic() - self.started < START_GRACE:
            waiting = [name for name in waiting if name in self.moving]  # spread over every node, once all are up
        if not waiting or not ready:
            return
        placed, _ = spread(waiting, rooms(self._assigned(), ready))
        if placed:
            moved = sum(1 for name in placed if name in self.moving)
            self.store.call("assign", placed, moved)
            for name, unit in placed.items():
                log.info("fleet: camera %s on node %s", name, short(unit))
            self._refresh()

    def _lost(self, unit: str, why: str) -> None:
        """A node pipeline is gone: its cameras go back to be placed elsewhere; it is started again later."""
        link = self.links.pop(unit)
        link.kill()
        self.views.pop(unit, None)
        mine = [name for name, r in self.records.items() if r["node"] == unit]
        _, delay = self.retry.get(unit, (0.0, RETRY_FIRST))
        self.retry[unit] = (time.monotonic() + delay, min(RETRY_MAX, delay * 2))
        log.warning("fleet: node %s lost (%s); moving %d cameras: %s", short(unit), why, len(mine), ", ".join(mine))
        if mine:
            self.store.call("assign", dict.fromkeys(mine), 0)
            self.moving.update(mine)
            self._refresh()

    def _refresh(self) -> None:
        read = self.store.call("read")
        self.records = {r["name"]: r for r in read["cameras"]}
        self.moves = read["moves"]

    def _assigned(self) -> dict[str, str | None]:
        return {name: r["node"] for name, r in self.records.items()}

    def _capacities(self) -> dict[str, int | None]:
        return {unit: view["capacity"] for unit, view in self.views.items() if unit in self.links}

    # -- the API's calls -------------------------------------------------------------------------
    def add_camera(self, body: Any) -> dict[str, Any]:
        """A ``sources:`` entry: named, confined as the run API's POSTs are (``Forbidden``: --input-root,
        --output-root, loopback URLs), checked against the other cameras' outputs, put on the node with most room."""
        with self.lock:
            camera = parse_camera(body, list(self.records))
            present = tuple(SourceSpec.model_validate(r["source"]) for r in self.records.values())
            confinement = Confinement.from_config(self.run)
            confinement.check_source(camera.uri)
            placed = placed_source(self.run, camera, len(present), NODE_FOR_CHECKS, 1)
            outputs = SourceOutputs(placed.outputs or (), placed.labels_out, placed.summary)
            confinement.check_outputs(placed, outputs, self.run)
            check_outputs(self.run, (camera,), present)
            self.store.call("add", camera.model_dump(exclude_none=True))
            self._refresh()
            node = most_room(rooms(self._assigned(), self._capacities()))
            if node is not None:
                self.store.call("assign", {camera.name: node}, 0)
                self._refresh()
            return {"name": camera.name, "node": node}

    def remove_camera(self, name: str) -> None:
        with self.lock:
            if not self.store.call("remove", name):
                raise KeyError(name)
            self.moving.discard(name)
            self._refresh()

    def cameras(self) -> list[dict[str, Any]]:
        """``GET /cameras``: each camera's node, state and figures."""
        with self.lock:
            rows = []
            for name, record in self.records.items():
                unit = record["node"]
                seen = self.views.get(unit, {}).get("cameras", {}).get(name) if unit else None
                state = self._state(name, unit, seen)
                rows.append({
                    "name": name, "node": unit, "state": state,
                    "fps": seen.get("fps", 0.0) if seen else 0.0,
                    "dropped": seen.get("dropped", 0) if seen else 0,
                    "last_frame_age_s": seen.get("last_frame_age_s") if seen else None,
                    "segment": record["segment"],
                    **({"error": seen["error"]} if seen and seen.get("error") else {}),
                })  # fmt: skip
            return rows

    def _state(self, name: str, unit: str | None, seen: dict[str, Any] | None) -> str:
        if unit is None:
            return "moving" if name in self.moving else "unplaced"
        if seen is None:
            return "moving" if name in self.moving else "opening"
        if seen["state"] != "opening":
            self.moving.discard(name)  # frames flow on its new node (or it failed there): the move is over
        return "moving" if name in self.moving else seen["state"]

    def node_rows(self) -> list[dict[str, Any]]:
        """``GET /nodes``: each node pipeline's node, address, capacity and cameras."""
        with self.lock:
            assigned = self._assigned()
            rows = []
            for unit in self.links:
                view = self.views.get(unit, {})
                rows.append({
                    "node": unit, "address": self.addresses.get(unit, ""), "head": unit in self.nodes.head,
                    "capacity": view.get("capacity"),
                    "cameras": sorted(n for n, u in assigned.items() if u == unit),
                    "state": "ready" if view else "starting", "metrics": view.get("metrics"),
                })  # fmt: skip
            return rows

    # -- the end ---------------------------------------------------------------------------------
    def shutdown(self) -> None:
        """Stop every camera on every node and finalize its outputs; then the fleet and its map are gone."""
        with self.lock:
            links = list(self.links.values())
            self.links.clear()
        threads = [threading.Thread(target=_stop, args=(link,), daemon=True) for link in links]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        for link in links:
            link.kill()
        self.store.call("release", self.id)
        self.nodes.close(self.store)

    def detach(self) -> None:
        """Leave the fleet running as it is (its cameras, its map) for another ``serve`` to re-attach to."""
        self.store.call("release", self.id)
        self.nodes.close(self.store, keep=True)


def _stop(link: Any) -> None:
    try:
        link.call("stop", timeout=120)
    except Exception as err:  # noqa: BLE001 - a node that died meanwhile has nothing to finalize
        log.warning("fleet: node %s did not stop cleanly: %s", short(link.unit), err)


def short(unit: str | None) -> str:
    """A node id as logs show it: its first 12 characters (and its GPU)."""
    if unit is None:
        return "-"
    node, _, gpu = unit.partition("-gpu")
    return node[:12] + (f"-gpu{gpu}" if gpu else "")
