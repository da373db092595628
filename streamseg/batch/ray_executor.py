"""``--ray``: each video is a Ray task on an existing cluster; results come back to the driver.

How things reach the workers:
- code: the driver's ``streamseg`` package is shipped with the job (``runtime_env`` ``py_modules``), so every
  node runs the driver's exact code; its dependencies (PyAV, ONNX Runtime…) must be installed on the nodes.
- the model: its bytes go into Ray's object store once (``ray.put``). A task uses the driver's model path when
  that file is visible on its node with the same sha256 (a shared filesystem); otherwise it fetches the bytes
  and writes them once per node to ``$TMPDIR/streamseg-models/SHA256.onnx``.
- inputs and outputs: read and written by path, so they must be on a filesystem every node mounts at the same
  path. A multi-node cluster with OUTDIR on a local filesystem is refused before anything runs.
"""

from __future__ import annotations

import functools
import importlib.util
import logging
import os
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass, replace
from pathlib import Path

from streamseg.batch.job import ABORTED, FAILED, Job, run_job, unfinished_record
from streamseg.batch.manifest import file_sha256
from streamseg.errors import ConfigError, MissingExtraError
from streamseg.ray_join import first_line, import_ray, join

log = logging.getLogger(__name__)

# filesystems that other machines can mount too (FUSE ones by their driver's name)
SHARED_FILESYSTEMS = frozenset(
    {
        "nfs",
        "nfs4",
        "cifs",
        "smb3",
        "smbfs",
        "lustre",
        "gpfs",
        "ceph",
        "glusterfs",
        "beegfs",
        "orangefs",
        "9p",
        "fuse.s3fs",
        "fuse.gcsfuse",
        "fuse.juicefs",
        "fuse.ceph-fuse",
        "fuse.glusterfs",
        "fuse.sshfs",
        "fuse.rclone",
        "fuse.goofys",
        "fuse.mountpoint-s3",
        "fuse.blobfuse",
        "fuse.blobfuse2",
        "fuse.alluxio-fuse",
    }
)


def require_ray() -> None:
    """Fail before any work when the ray extra is missing (without importing ray, which takes a while)."""
    if importlib.util.find_spec("ray") is None:
        raise MissingExtraError("--ray", "ray")


@dataclass(frozen=True)
class RayCluster:
    nodes: int
    cpus: float
    gpus: float


def connect(address: str, outdir: Path, shared_outdir: bool) -> RayCluster:
    """Join the cluster at ``address`` ("auto": RAY_ADDRESS, else the local ``ray start`` one) and check OUTDIR."""
    ray = join(address)
    alive = [node for node in ray.nodes() if node.get("Alive")]
    resources = ray.cluster_resources()
    if len(alive) > 1 and not shared_outdir:
        fstype = filesystem_type(outdir)
        if fstype not in SHARED_FILESYSTEMS:
            ray.shutdown()
            raise ConfigError(
                f"{outdir} is on a local filesystem ({fstype}) but the Ray cluster has {len(alive)} "
                "nodes, whose tasks could not write there: put OUTDIR (and the inputs) on a "
                "filesystem every node mounts at the same path (NFS, a FUSE bucket mount…), or "
                "pass --shared-outdir if it already is one"
            )
    return RayCluster(len(alive), resources.get("CPU", 0.0), resources.get("GPU", 0.0))


def filesystem_type(path: Path) -> str:
    """The type of the filesystem holding ``path`` (its nearest existing folder), from /proc/mounts."""
    path = path.resolve()
    while not path.exists():
        path = path.parent
    best, fstype = "", "unknown"
    try:
        with open("/proc/mounts") as mounts:
            for line in mounts:
                fields = line.split()
                point = fields[1].replace("\\040", " ")
                if (str(path) == point or str(path).startswith(point.rstrip("/") + "/")) and len(point) >= len(best):
                    best, fstype = point, fields[2]
    except OSError:
        pass
    return fstype


class RayExecutor:
    """Up to as many videos at once as the cluster has room for, at ``cpus``/``gpus`` per video."""

    def __init__(self, cluster: RayCluster, cpus: float, gpus: float, progress: Callable[[int], None]):
        ray = self._ray = import_ray()
        if gpus > 0 and cluster.gpus < gpus:
            raise ConfigError(f"--ray-gpus {gpus}: the Ray cluster has {cluster.gpus:g} GPUs")
        slots = [cluster.cpus / cpus if cpus > 0 else float("inf"), cluster.gpus / gpus if gpus > 0 else float("inf")]
        bounded = min(slots)
        self.capacity = max(1, int(bounded + 1e-9)) if bounded != float("inf") else max(1, cluster.nodes)
        self._progress = progress
        self._task = ray.remote(num_cpus=cpus, num_gpus=gpus, max_retries=0)(_run_video)
        self._counter = ray.remote(num_cpus=0)(FrameCounter).remote()
        self._refs: dict = {}
        self._model: tuple[str, str, object] | None = None  # driver path, sha256, object-store reference
        self._abort = False
        self._cancelled = False

    @property
    def running(self) -> int:
        return len(self._refs)

    def submit(self, job: Job) -> None:
        if self._model is None:
            path = job.config.model
            if path is None:
                raise ConfigError(f"{job.key}: the batch driver names the model file of every job")
            self._model = (path, file_sha256(path), self._ray.put(Path(path).read_bytes()))
        _, sha256, reference = self._model
        # the reference travels in a list so Ray passes it as is: a task fetches the bytes only when it must
        self._refs[self._task.remote(job, sha256, [reference], self._counter)] = job

    def wait(self, timeout: float) -> list[tuple[Job, dict]]:
        ray = self._ray
        if self._abort and not self._cancelled:
            self._cancelled = True
            for ref in self._refs:
                ray.cancel(ref, force=True)
        ready = []
        if self._refs:
            ray.wait(list(self._refs), num_returns=1, timeout=timeout)
            ready, _ = ray.wait(list(self._refs), num_returns=len(self._refs), timeout=0)
        self._progress(ray.get(self._counter.take.remote()))
        finished = []
        for ref in ready:
            job = self._refs.pop(ref)
            try:
                finished.append((job, ray.get(ref)))
            except Exception as err:  # noqa: BLE001 - the task or its worker died: that video failed
                status = ABORTED if self._cancelled else FAILED
                error = f"Ray task: {first_line(err)}"
                finished.append((job, unfinished_record(job.key, status=status, error=error, retryable=True)))
        return finished

    def abort(self) -> None:
        self._abort = True  # wait() cancels the running tasks (a signal handler only sets this)

    def close(self) -> None:
        self._ray.shutdown()


class FrameCounter:
    """A tiny actor the tasks add written frames to; the driver takes the count for its progress bar."""

    def __init__(self):
        self.frames = 0

    def add(self, frames: int) -> None:
        self.frames += frames

    def take(self) -> int:
        frames, self.frames = self.frames, 0
        return frames


def _run_video(job: Job, model_sha256: str, model_box: list, counter) -> dict:
    """The Ray task: one ordinary ``Pipeline`` run of one video, on whichever node Ray picked."""
    if job.config.model is None:
        raise ConfigError(f"{job.key}: the batch driver names the model file of every job")
    model = _local_model(job.config.model, model_sha256, model_box[0])
    job = replace(job, config=job.config.model_copy(update={"model": model}))
    pending, last = 0, time.monotonic()

    def on_frame() -> None:
        nonlocal pending, last
        pending += 1
        if time.monotonic() - last > 0.5:
            counter.add.remote(pending)
            pending, last = 0, time.monotonic()

    try:
        return run_job(job, on_frame=on_frame)
    finally:
        if pending:
            counter.add.remote(pending)


def _local_model(path: str, sha256: str, reference) -> str:
    """The driver's model file if this node sees it unchanged; else the object store's copy, once per node."""
    try:
        stamp = os.stat(path).st_mtime_ns
    except OSError:
        stamp = None
    if stamp is not None and _file_matches(path, sha256, stamp):
        return path
    cached = Path(tempfile.gettempdir()) / "streamseg-models" / f"{sha256}.onnx"
    if not cached.exists():
        import ray

        cached.parent.mkdir(parents=True, exist_ok=True)
        partial = cached.with_name(f".{sha256}.{os.getpid()}.part")
        partial.write_bytes(ray.get(reference))
        os.replace(partial, cached)  # atomic: tasks on this node never see half a model
    return str(cached)


@functools.lru_cache(maxsize=8)
def _file_matches(path: str, sha256: str, mtime_ns: int) -> bool:
    """Hashed once per worker process for each file version (``mtime_ns`` is part of the cache key)."""
    try:
        return Path(path).is_file() and file_sha256(path) == sha256
    except OSError:
        return False
