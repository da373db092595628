"""The node pipeline: one ordinary multi-source ``Pipeline`` per node (or GPU), holding the cameras placed there.

It decodes its own cameras and writes their outputs itself; frames never leave the node. One model instance,
batched across its cameras. It keeps nothing the map cannot rebuild: a node pipeline (re)started on a node
asks the map for that node's cameras and starts them, so re-running the constructor is all a restart needs.

A ``Pipeline`` ends when its last source does; the next camera then starts a new one.
"""

from __future__ import annotations

import importlib.util
import logging
import os
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

from streamseg.config import RunConfig, SourceSpec
from streamseg.errors import StreamsegError
from streamseg.fleet.capacity import cameras_held, engine_seconds
from streamseg.fleet.config import placed_source
from streamseg.logs import redact
from streamseg.pipeline import Pipeline

log = logging.getLogger(__name__)

STATES = {"starting": "opening", "opening": "opening", "running": "running", "reconnecting": "reconnecting",
          "ended": "ended", "removed": "ended", "failed": "failed"}  # fmt: skip  # a lane's health -> the API's


class NodePipeline:
    """The cameras of one node. ``store`` is the map (``streamseg.fleet.cluster.Store``)."""

    def __init__(
        self,
        node: str,
        address: str,
        store: Any,
        *,
        capacity: int | None = None,
        measure: bool = True,
        camera_fps: float = 25.0,
    ):
        self.node, self.address, self.store = node, address, store
        shared = store.call("read")
        self.config = RunConfig.build(shared["config"], "the fleet's options")
        # its /metrics is read-only: cameras change through the fleet API alone, which keeps the map
        here = {"model": self._model_here(), "metrics_port": _metrics_port(), "api": "read-only"}
        self.config = self.config.model_copy(update=here)
        self.capacity = capacity
        if capacity is None and measure:
            self.capacity = cameras_held(engine_seconds(self.config), camera_fps, self.config.interval)
        self.pipeline: Pipeline | None = None
        self._runner: threading.Thread | None = None
        self._lock = threading.RLock()
        self.lanes: dict[str, str] = {}  # camera name -> its lane's name in the current pipeline
        self.final: dict[str, dict[str, Any]] = {}  # cameras whose pipeline ended: their last row
        self.errors: dict[str, str] = {}  # cameras that could not start here: why
        self.seen: dict[str, float] = {}  # lane name -> time.monotonic() of its last frame written
        self._live: Any = None
        self._wanted: tuple[float, list[dict[str, Any]]] = (-1.0, [])  # the newest map sync() was given
        self._changed = threading.Event()
        self.busy = False  # cameras are being started or stopped
        self._stopping = threading.Event()
        for record in store.call("restarting", node):
            self._add(record)
        # cameras start off the caller's thread: a first camera loads the model, and sync() answers at once
        self._applier = threading.Thread(target=self._apply_changes, name="node-sync", daemon=True)
        self._applier.start()

    # -- the controller's calls ------------------------------------------------------------------
    def info(self) -> dict[str, Any]:
        pipeline = self.pipeline
        metrics = pipeline.metrics if pipeline is not None else None
        host = self.config.serve_host
        host = self.address if host in ("0.0.0.0", "::") else host  # listening everywhere: the node's own
        return {
            "node": self.node,
            "address": self.address,
            "capacity": self.capacity,
            "metrics": f"{host}:{metrics.port}" if metrics is not None else None,
            "pid": os.getpid(),
        }

    def sync(self, version: float, wanted: list[dict[str, Any]]) -> dict[str, Any]:
        """Run the ``wanted`` records here (the missing start, the others stop, soon); returns info and status."""
        if version >= self._wanted[0]:  # an older map (from a controller before this one) never wins
            self._wanted = (version, wanted)
            if {r["name"] for r in wanted} != set(self.lanes) | set(self.errors):
                self.busy = True  # starting a first camera loads the model: this node may answer late for a while
                self._changed.set()
        return {**self.info(), "cameras": self.status(), "busy": self.busy}

    def _apply_changes(self) -> None:
        while not self._stopping.is_set():
            self._changed.wait()
            self._changed.clear()
            with self._lock:
                if self._stopping.is_set():
                    return
                wanted = self._wanted[1]
                names = {r["name"] for r in wanted}
                for name in [n for n in self.lanes if n not in names]:
                    self._remove(name)
                for record in wanted:
                    if record["name"] not in self.lanes and record["name"] not in self.errors:
                        self._add(record)
                for name in [n for n in self.errors if n not in names]:
                    del self.errors[name]
                self.busy = self._changed.is_set()  # a newer map came meanwhile: still busy

    def status(self) -> dict[str, dict[str, Any]]:
        """Each camera here: state, fps, frames dropped, seconds since its last frame was written."""
        pipeline, live, lanes = self.pipeline, self._live, dict(self.lanes)  # read as they are: no lock
        rows: dict[str, dict[str, Any]] = {n: {"state": "failed", "error": why} for n, why in dict(self.errors).items()}
        rows.update(dict(self.final))
        if pipeline is None or live is None:
            return rows
        sources = live.read()["sources"]
        failures = pipeline.failures
        now = time.monotonic()
        for name, lane in lanes.items():
            one = sources.get(lane)
            if one is None:
                continue
            seen = self.seen.get(lane)
            rows[name] = {
                "state": STATES.get(one["state"], one["state"]),
                "fps": round(one["fps"], 3),
                "frames": one["frames_out"],
                "dropped": one["dropped"],
                "last_frame_age_s": round(now - seen, 3) if seen is not None else None,
                **({"error": failures[lane]} if lane in failures else {}),
            }
        return rows

    def stop(self) -> dict[str, dict[str, Any]]:
        """Stop every camera and finalize its outputs; returns the last status."""
        self._stopping.set()
        self._changed.set()
        with self._lock:
            rows = self.status()
            pipeline, runner = self.pipeline, self._runner
            if pipeline is not None:
                pipeline.stop()
        if runner is not None:
            runner.join()
        return rows

    # -- cameras ---------------------------------------------------------------------------------
    def _add(self, record: dict[str, Any]) -> None:
        camera = SourceSpec.model_validate(record["source"])
        segment = max(1, int(record["segment"]))
        spec = placed_source(self.config, camera, int(record["index"]), self.node, segment)
        name = record["name"]
        self.final.pop(name, None)
        try:
            _make_folders(spec)
            if self.pipeline is not None:
                lane = self._lane_name(name, segment)
                try:
                    self.pipeline.add_source(spec.model_copy(update={"name": lane}))
                except StreamsegError:
                    if not self._finished():
                        raise
                    self._retire()
            if self.pipeline is None:
                lane = name
                self._open(spec)
        except (StreamsegError, OSError) as err:
            self.errors[name] = redact(str(err))
            log.warning("camera %s cannot start on node %s: %s", name, self.node[:12], self.errors[name])
            return
        self.lanes[name] = lane

    def _lane_name(self, name: str, segment: int) -> str:
        """A Pipeline never reuses a source's name: a camera back on a node runs as ``NAME.SEGMENT``."""
        assert self.pipeline is not None
        return name if name not in self.pipeline.lanes else f"{name}.{segment}"

    def _remove(self, name: str) -> None:
        lane = self.lanes.pop(name)
        if self.pipeline is not None:
            try:
                self.pipeline.remove_source(lane)
            except StreamsegError:
                pass  # it had ended already

    def _open(self, spec: SourceSpec) -> None:
        from streamseg.outputs.servers.live import LiveStats

        pipeline = Pipeline(config=self.config, source=[spec.model_dump(exclude_none=True)], on_result=self._saw)
        pipeline.start()
        self.pipeline, self._live = pipeline, LiveStats(pipeline)
        self.lanes.clear()
        self._runner = threading.Thread(target=self._run, args=(pipeline,), name="node-pipeline", daemon=True)
        self._runner.start()

    def _run(self, pipeline: Pipeline) -> None:
        try:
            pipeline.run()
        except Exception as err:  # noqa: BLE001 - the sources' own failures are in their lanes
            log.warning("node %s: pipeline ended: %s", self.node[:12], redact(str(err)))

    def _finished(self) -> bool:
        return self.pipeline is not None and self.pipeline.state() == "stopped"

    def _retire(self) -> None:
        """Every camera of the current pipeline has ended: keep their last rows, wait for it to close."""
        self.final.update({n: r for n, r in self.status().items() if n in self.lanes})
        if self._runner is not None:
            self._runner.join()
        self.pipeline = self._runner = self._live = None
        self.lanes.clear()

    def _saw(self, result: Any) -> None:
        self.seen[result.source] = time.monotonic()

    def _model_here(self) -> str:
        """The model's path on this node: the configured one if it is a file here, else the map's copy."""
        model = self.config.model
        assert model is not None, "a fleet has a model"
        if not model.lower().endswith(".onnx") or Path(model).is_file():
            return model  # a zoo name, or a file this node sees (shared storage, or one machine)
        data = self.store.call("model_bytes")
        if data is None:
            return model
        import hashlib

        cached = Path(tempfile.gettempdir()) / "streamseg-models" / f"{hashlib.sha256(data).hexdigest()}.onnx"
        if not cached.exists():
            cached.parent.mkdir(parents=True, exist_ok=True)
            partial = cached.with_name(f".{cached.name}.{os.getpid()}.part")
            partial.write_bytes(data)
            os.replace(partial, cached)  # atomic: another node pipeline here never reads half a model
        return str(cached)


def _make_folders(spec: SourceSpec) -> None:
    """The folders of a camera's file outputs, on this node (templates with {node} name new ones)."""
    for path in [*(spec.outputs or ()), spec.summary]:
        if path and "://" not in path and not path.startswith("hls:"):
            Path(path).parent.mkdir(parents=True, exist_ok=True)


def _metrics_port() -> int | None:
    """Each node pipeline serves its own /metrics on a free port, where prometheus-client is installed."""
    return 0 if importlib.util.find_spec("prometheus_client") is not None else None
