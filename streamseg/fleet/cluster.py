"""Where node pipelines run: on the nodes of a Ray cluster (one per node, or one per GPU), or in this process.

Both give the controller the same few things: the map (``Store``), the node pipelines that could run now
(``alive``), and a ``NodeLink`` to each, with at most one call in flight, so a slow or starting node pipeline
never holds the controller up.

On Ray the map and the node pipelines are detached named actors: they outlive the ``serve`` process, and a
``serve`` started again finds them by name. A node pipeline is pinned to its node (and given one GPU where the
node has GPUs); Ray does not restart it (``max_restarts=0``): the controller does, after moving its cameras.
"""

from __future__ import annotations

import logging
import socket
import time
from typing import Any

from streamseg.fleet.node import NodePipeline
from streamseg.fleet.state import FleetState
from streamseg.ray_join import first_line, import_ray, join, no_cluster

log = logging.getLogger(__name__)

NAMESPACE = "streamseg"
STATE_ACTOR = "fleet-state"
NODE_ACTOR = "fleet-node-"  # + the node pipeline's id
CALL_TIMEOUT = 30.0  # seconds for a blocking call to the map


class Store:
    """The map: a ``FleetState`` in this process, or its Ray actor; ``call(method, *args)`` either way."""

    def __init__(self, target: Any, remote: bool):
        self.target, self.remote = target, remote

    def call(self, method: str, *args: Any) -> Any:
        if not self.remote:
            return getattr(self.target, method)(*args)
        import ray

        return ray.get(getattr(self.target, method).remote(*args), timeout=CALL_TIMEOUT)


class NodeLink:
    """One node pipeline, in this process: calls run at once."""

    def __init__(self, unit: str, pipeline: NodePipeline):
        self.unit, self.pipeline = unit, pipeline
        self._result: tuple[str, Any] | None = None

    @property
    def busy(self) -> bool:
        return False

    def waited(self) -> float:
        return 0.0

    def send(self, method: str, *args: Any) -> None:
        try:
            self._result = ("done", getattr(self.pipeline, method)(*args))
        except Exception as err:  # noqa: BLE001 - the controller logs it and goes on
            self._result = ("error", str(err))

    def poll(self) -> tuple[str, Any]:
        """("idle", None): nothing sent; ("busy", None), ("done", value), ("error", why), or ("dead", why)."""
        result, self._result = self._result or ("idle", None), None
        return result

    def call(self, method: str, *args: Any, timeout: float = CALL_TIMEOUT) -> Any:
        return getattr(self.pipeline, method)(*args)

    def kill(self) -> None:
        pass


class LocalNodes:
    """This machine alone: one node pipeline in this process (``serve`` without ``--ray``)."""

    remote = False

    def __init__(self) -> None:
        self.state = FleetState()

    def store(self) -> Store:
        return Store(self.state, remote=False)

    head = frozenset({"local"})

    def alive(self) -> dict[str, str]:
        return {"local": "127.0.0.1"}

    def link(self, unit: str, address: str, store: Store, capacity: int | None, camera_fps: float) -> NodeLink:
        pipeline = NodePipeline(unit, address, store, capacity=capacity, measure=False, camera_fps=camera_fps)
        return NodeLink(unit, pipeline)

    def close(self, store: Store, *, keep: bool = False) -> None:
        pass


class RayNodeLink:
    """One node pipeline as a Ray actor: one call in flight at a time; the actor's death shows as "dead"."""

    def __init__(self, unit: str, handle: Any):
        import ray

        self.unit, self.handle, self._ray = unit, handle, ray
        self._pending: Any = None
        self.sent_at = 0.0  # time.monotonic() of the call in flight

    @property
    def busy(self) -> bool:
        return self._pending is not None

    def waited(self) -> float:
        """Seconds the call in flight has waited for its answer (0 with none)."""
        return time.monotonic() - self.sent_at if self._pending is not None else 0.0

    def send(self, method: str, *args: Any) -> None:
        if self._pending is None:
            self._pending = getattr(self.handle, method).remote(*args)
            self.sent_at = time.monotonic()

    def poll(self) -> tuple[str, Any]:
        ray = self._ray
        if self._pending is None:
            return "idle", None
        ready, _ = ray.wait([self._pending], timeout=0)
        if not ready:
            return "busy", None
        ref, self._pending = self._pending, None
        try:
            return "done", ray.get(ref)
        except ray.exceptions.RayActorError as err:
            return "dead", first_line(err)
        except ray.exceptions.RayError as err:
            return "error", first_line(err)

    def call(self, method: str, *args: Any, timeout: float = CALL_TIMEOUT) -> Any:
        return self._ray.get(getattr(self.handle, method).remote(*args), timeout=timeout)

    def kill(self) -> None:
        try:
            self._ray.kill(self.handle, no_restart=True)
        except Exception:  # noqa: BLE001 - already gone
            pass


class RayNodes:
    """The nodes of the Ray cluster at ``address``; one node pipeline per node, or per GPU of a GPU node."""

    remote = True

    def __init__(self, address: str):
        import_ray()
        self.head: frozenset[str] = frozenset()  # the head node's node pipelines
        _check_reachable(address)
        self._ray = join(address, namespace=NAMESPACE)

    def store(self) -> Store:
        ray = self._ray
        actor = ray.remote(FleetState).options(
            name=STATE_ACTOR,
            namespace=NAMESPACE,
            lifetime="detached",
            get_if_exists=True,
            num_cpus=0,
            max_restarts=0,
            resources={"node:__internal_head__": 0.001},  # on the head: it dies only with the cluster
        )
        return Store(actor.remote(), remote=True)

    def alive(self) -> dict[str, str]:
        """Each node pipeline that could run now -> its node's address: a node's id, or ``ID-gpuN`` per GPU."""
        units, head = {}, set()
        for node in self._ray.nodes():
            if not node.get("Alive"):
                continue
            node_id, address = node["NodeID"], node.get("NodeManagerAddress", "")
            resources = node.get("Resources", {})
            gpus = int(resources.get("GPU", 0))
            mine = [f"{node_id}-gpu{i}" for i in range(gpus)] if gpus else [node_id]
            units.update(dict.fromkeys(mine, address))
            if "node:__internal_head__" in resources:
                head.update(mine)
        self.head = frozenset(head)
        return units

    def link(self, unit: str, address: str, store: Store, capacity: int | None, camera_fps: float) -> RayNodeLink:
        """The node pipeline of ``unit``: the running one (a ``serve`` re-attaching), else a new one."""
        ray = self._ray
        from ray.util.scheduling_strategies import NodeAffinitySchedulingStrategy

        name = NODE_ACTOR + unit
        try:
            return RayNodeLink(unit, ray.get_actor(name, namespace=NAMESPACE))
        except ValueError:
            pass
        node_id, _, gpu = unit.partition("-gpu")
        handle = (
            ray.remote(NodePipeline)
            .options(
                name=name,
                namespace=NAMESPACE,
                lifetime="detached",
                max_restarts=0,
                max_concurrency=4,  # sync, status and stop answer while the pipeline's threads work
                num_cpus=0,
                num_gpus=1 if gpu else 0,
                scheduling_strategy=NodeAffinitySchedulingStrategy(node_id, soft=False),
            )
            .remote(unit, address, store, capacity=capacity, camera_fps=camera_fps)
        )
        return RayNodeLink(unit, handle)

    def close(self, store: Store, *, keep: bool = False) -> None:
        """The fleet is over: the map goes too (unless ``keep``), then this driver leaves the cluster."""
        if not keep:
            try:
                self._ray.kill(store.target, no_restart=True)
            except Exception:  # noqa: BLE001 - already gone
                pass
        self._ray.shutdown()


def _check_reachable(address: str) -> None:
    """A HOST:PORT nobody listens on fails at once, in one line (Ray itself retries for minutes)."""
    host, _, port = address.rpartition(":")
    if "://" in address or not host or not port.isdigit():
        return  # "auto", a Ray client URL: Ray finds it
    try:
        socket.create_connection((host, int(port)), timeout=5).close()
    except OSError as err:
        raise no_cluster(address, str(err.strerror or err)) from None
