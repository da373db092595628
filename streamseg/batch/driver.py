"""The batch driver: decides which videos to (re)do, feeds an executor, writes the manifest, handles Ctrl-C.

The driver is the only writer of the manifest, whatever runs the videos (this process, worker processes or
Ray tasks): each finished video's record comes back to it and is appended as one line.
"""

from __future__ import annotations

import datetime
import os
import signal
import sys
import threading
import time
from collections import deque
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol

import click

from streamseg.batch.inputs import VideoInput, output_stem, video_output
from streamseg.batch.job import ABORTED, DONE, FAILED, Job, JobOutputs, remove_paths
from streamseg.batch.manifest import Manifest, file_sha256, input_identity, output_options
from streamseg.config import RunConfig
from streamseg.errors import ModelError
from streamseg.models import resolve_model

if TYPE_CHECKING:
    from tqdm import tqdm

SKIPPED, LEFT = "skipped", "left"


@dataclass(frozen=True)
class BatchSettings:
    outdir: Path
    labels: bool = False  # label maps (and their summary.csv) in NAME.labels/
    summary: bool = False  # NAME.summary.csv
    force: bool = False  # redo videos the manifest says are done
    verify: bool = False  # compare inputs by sha256, not size and mtime
    retries: int = 0  # extra attempts for a failure that may be transient
    progress: bool = True


@dataclass
class Outcome:
    key: str
    input: str
    status: str  # done | partial | failed | skipped | aborted | left (never started)
    frames: int = 0
    expected_frames: int | None = None
    fps: float = 0.0
    wall_s: float = 0.0
    attempts: int = 0
    error: str | None = None


@dataclass
class BatchResult:
    outcomes: list[Outcome]
    wall_s: float
    interrupted: bool
    frames: int = field(init=False)

    def __post_init__(self) -> None:
        self.frames = sum(o.frames for o in self.outcomes if o.status != SKIPPED)

    def count(self, *statuses: str) -> int:
        return sum(o.status in statuses for o in self.outcomes)

    @property
    def exit_code(self) -> int:
        if self.interrupted:
            return 130
        return 0 if self.count(DONE, SKIPPED) == len(self.outcomes) else 1


class Executor(Protocol):
    """What the driver asks of an executor (this process, local worker processes, a Ray cluster)."""

    @property
    def capacity(self) -> int: ...  # videos at once

    @property
    def running(self) -> int: ...

    def submit(self, job: Job) -> None: ...

    def wait(self, timeout: float) -> list[tuple[Job, dict]]: ...

    def abort(self) -> None: ...

    def close(self) -> None: ...


# an executor factory gets the per-frame progress callback
ExecutorFactory = Callable[[Callable[[int], None]], Executor]


class BatchRun:
    def __init__(
        self,
        inputs: list[VideoInput],
        config: RunConfig,
        settings: BatchSettings,
        make_executor: ExecutorFactory,
        threads_per_job: int | None = None,
    ):
        self.inputs, self.config, self.settings = inputs, config, settings
        self.make_executor = make_executor
        self.threads_per_job = config.threads or threads_per_job
        self.outdir = settings.outdir
        self.stopping = False  # no new videos (first Ctrl-C, or an error every video would hit)
        self.interrupted = False  # by Ctrl-C or SIGTERM
        self.aborting = False  # second Ctrl-C: running videos stop too
        self._bar: tqdm[Any] | None = None
        self._executor: Executor | None = None  # its abort() only sets flags, so the signal handler may call it
        self._bar_lock = threading.Lock()

    # -- planning --------------------------------------------------------------------------
    def plan(self, manifest: Manifest) -> tuple[list[Job], list[Outcome], dict[str, dict]]:
        """Jobs to run, and the outcomes of videos skipped (done before) or unreadable; plus each job's record."""
        model_path = self._model_file()
        stat = model_path.stat()
        model = {
            "model": str(self.config.model),
            "model_path": str(model_path),
            "model_size": stat.st_size,
            "model_mtime_ns": stat.st_mtime_ns,
        }
        # an unchanged model file keeps its hash from the last run: a re-run of a finished batch reads no model
        known = None if self.settings.verify else manifest.model_sha256(model)
        self.model_sha256 = model["model_sha256"] = known or file_sha256(model_path)
        options = output_options(self.config, labels=self.settings.labels, summary=self.settings.summary)
        pending, outcomes = [], []
        for item in self.inputs:
            if item.problem is not None:
                outcomes.append(Outcome(item.key, str(item.path), FAILED, error=item.problem))
                continue
            try:
                identity = input_identity(item.path, self.settings.verify)
            except OSError as err:
                outcomes.append(Outcome(item.key, str(item.path), FAILED, error=_unreadable(item.path, err)))
                continue
            expected = _recorded_outputs(self._outputs(item))
            if not self.settings.force and manifest.is_done(
                item.key, identity, self.model_sha256, options, self.outdir, expected
            ):
                last = manifest.latest[item.key]  # its figures as numbers, whatever the line holds
                frames, expected_frames = _number(last.get("frames"), 0), _number(last.get("expected_frames"), None)
                outcomes.append(
                    Outcome(
                        item.key,
                        str(item.path),
                        SKIPPED,
                        int(frames or 0),
                        None if expected_frames is None else int(expected_frames),
                        float(_number(last.get("fps"), 0.0) or 0.0),
                        float(_number(last.get("wall_s"), 0.0) or 0.0),
                    )
                )
            else:
                pending.append((item, identity))
        jobs, base = [], {}
        if pending:
            job_config = self._job_config(model_path)
            for item, identity in pending:
                outputs = self._outputs(item)
                jobs.append(Job(item.key, str(item.path), str(self.outdir), outputs, job_config, self.threads_per_job))
                base[item.key] = {
                    "key": item.key,
                    "input": str(item.path),
                    **identity,
                    **model,
                    "options": options,
                    "outputs": _recorded_outputs(outputs),
                }
        return jobs, outcomes, base

    def _model_file(self) -> Path:
        """The ONNX file, without reading it (a zoo name resolves to its cached file)."""
        model = self._model_name()
        path = Path(model)
        if path.is_file():
            return path.resolve()
        return resolve_model(model, self.config.spec)[0].resolve()

    def _model_name(self) -> str:
        if self.config.model is None:
            raise ModelError("batch: no model given: pass --model NAME or --model PATH.onnx")
        return self.config.model

    def _job_config(self, model_path: Path) -> RunConfig:
        """The run options every job gets: the model as a file path, its spec resolved (once, here)."""
        _, spec = resolve_model(self._model_name(), self.config.spec)
        spec.with_short_side(self.config.input_size)  # an option the model can't take fails once, up front
        values = self.config.model_dump(exclude_unset=True)
        values.update(model=str(model_path), spec=spec)
        return RunConfig.build(values)

    def _outputs(self, item: VideoInput) -> JobOutputs:
        stem = output_stem(item.relative).as_posix()
        return JobOutputs(
            video=video_output(item.relative).as_posix(),
            labels=f"{stem}.labels" if self.settings.labels else None,
            summary=f"{stem}.summary.csv" if self.settings.summary else None,
        )

    # -- running ---------------------------------------------------------------------------
    def run(self) -> BatchResult:
        started = time.perf_counter()
        self.outdir.mkdir(parents=True, exist_ok=True)
        manifest = Manifest(self.outdir)
        jobs, outcomes, base = self.plan(manifest)
        skipped = sum(o.status == SKIPPED for o in outcomes)  # not the unreadable ones, failed already
        if skipped:
            self._say(f"streamseg: {skipped} of {len(self.inputs)} videos done before, skipped (--force redoes them)")
        expected = {job.key: _frame_count(job) for job in jobs}
        restore = self._catch_signals()
        try:
            if jobs:
                self._open_bar(sum(expected.values()), len(jobs))
                outcomes += self._run_jobs(jobs, base, expected, manifest)
        finally:
            restore()
            if self._bar is not None:
                self._bar.close()
        by_key = {o.key: o for o in outcomes}
        ordered = [by_key[item.key] for item in self.inputs]
        return BatchResult(ordered, time.perf_counter() - started, self.interrupted)

    def _run_jobs(
        self, jobs: list[Job], base: dict[str, dict], expected: dict[str, int], manifest: Manifest
    ) -> list[Outcome]:
        executor = self._executor = self.make_executor(self._progress)
        queue = deque(jobs)
        in_flight: dict[str, Job] = {}
        attempts: dict[str, int] = {}
        outcomes: list[Outcome] = []
        try:
            while (queue and not self.stopping) or executor.running:
                while queue and not self.stopping and executor.running < executor.capacity:
                    job = queue.popleft()
                    attempts[job.key] = attempts.get(job.key, 0) + 1
                    in_flight[job.key] = job
                    executor.submit(job)
                for job, record in executor.wait(timeout=0.5):
                    del in_flight[job.key]
                    if record["status"] not in (DONE, "partial"):
                        remove_paths(job.outputs.temp_paths(self.outdir))
                    self._adjust_total(record, expected.get(job.key, 0))
                    if (
                        record["status"] == FAILED
                        and record.get("retryable")
                        and not self.stopping
                        and attempts[job.key] <= self.settings.retries
                    ):
                        self._say(f"streamseg: {job.key}: {record['error']}; retrying")
                        expected[job.key] = 0
                        queue.appendleft(job)
                        continue
                    outcome = self._finish(job, record, base[job.key], attempts[job.key], manifest)
                    outcomes.append(outcome)
                    if record.get("fatal") and not self.stopping:
                        self.stopping = True
                        self._say("streamseg: stopping: that error would fail every video")
        finally:
            executor.close()
            for job in in_flight.values():  # a hard abort (third Ctrl-C, executor crash): no half-written outputs
                remove_paths(job.outputs.temp_paths(self.outdir))
        for job in queue:
            outcomes.append(Outcome(job.key, job.input, LEFT))
        return outcomes

    def _finish(self, job: Job, record: dict, base: dict, attempts: int, manifest: Manifest) -> Outcome:
        outcome = Outcome(
            job.key,
            job.input,
            record["status"],
            record["frames"],
            record["expected_frames"],
            record["fps"],
            record["wall_s"],
            attempts,
            record["error"],
        )
        if record["status"] != ABORTED:  # an aborted video is simply not done: no line, redone next time
            result = {k: v for k, v in record.items() if k not in ("retryable", "fatal")}
            manifest.append(
                {
                    **base,
                    **result,
                    "attempts": attempts,
                    "finished": datetime.datetime.now(datetime.UTC).isoformat(timespec="seconds"),
                }
            )
        with self._bar_lock:
            if self._bar is not None:
                self._videos_done += 1
                self._bar.set_description(f"videos {self._videos_done}/{self._videos_total}", refresh=True)
        detail = f"{outcome.frames} frames, {outcome.fps:.1f} fps"
        if outcome.status == FAILED:
            detail = outcome.error or "failed"
        elif outcome.status == ABORTED:
            detail = f"stopped after {outcome.frames} frames, outputs removed"
        elif outcome.status != DONE and outcome.error:
            detail += f": {outcome.error}"
        self._say(f"streamseg: {job.key}: {outcome.status} ({detail})")
        return outcome

    # -- progress --------------------------------------------------------------------------
    def _open_bar(self, total_frames: int, videos: int) -> None:
        from tqdm import tqdm

        self._videos_done, self._videos_total = 0, videos
        self._bar = tqdm(
            total=total_frames or None,
            desc=f"videos 0/{videos}",
            unit="frame",
            dynamic_ncols=True,
            disable=not self.settings.progress or not sys.stderr.isatty(),
            smoothing=0.1,
        )

    def _progress(self, frames: int) -> None:
        with self._bar_lock:
            if self._bar is not None:
                self._bar.update(frames)

    def _adjust_total(self, record: dict, expected: int) -> None:
        """ETA counts frames: a video that ended short (or is retried) changes how many are left."""
        with self._bar_lock:
            if self._bar is not None and self._bar.total:
                self._bar.total += record["frames"] - expected
                self._bar.refresh()

    def _say(self, text: str) -> None:
        with self._bar_lock:
            if self._bar is not None and not self._bar.disable:
                self._bar.write(text, file=sys.stderr)
            else:
                click.echo(text, err=True)

    # -- Ctrl-C ----------------------------------------------------------------------------
    def _catch_signals(self) -> Callable[[], None]:
        """First Ctrl-C (or SIGTERM): no new videos, running ones finish; second: running ones are aborted."""
        if threading.current_thread() is not threading.main_thread():
            return lambda: None
        previous = {sig: signal.getsignal(sig) for sig in (signal.SIGINT, signal.SIGTERM)}

        def handler(signum, frame):
            if not self.interrupted:
                self.stopping = self.interrupted = True
                click.echo(
                    "\nstreamseg: stopping: no new videos; running ones finish (Ctrl-C again to abort them)", err=True
                )
            elif not self.aborting:
                self.aborting = True
                if self._executor is not None:
                    self._executor.abort()
                click.echo("\nstreamseg: aborting running videos; their partial outputs are removed", err=True)
                signal.signal(signal.SIGINT, signal.default_int_handler)

        for sig in previous:
            signal.signal(sig, handler)

        def restore() -> None:
            for sig, old in previous.items():
                signal.signal(sig, old)

        return restore


def _number(value: Any, default: float | None) -> float | None:
    """A manifest figure, if it is a finite number (the file is data, not trusted)."""
    if isinstance(value, (int, float)) and not isinstance(value, bool) and abs(value) < 1e15:
        return value
    return default


def _recorded_outputs(outputs: JobOutputs) -> dict[str, str]:
    """A job's outputs as its manifest line holds them."""
    return {k: v for k, v in asdict(outputs).items() if v}


def _unreadable(path: Path, err: OSError) -> str:
    if path.is_symlink() and not path.exists():
        return f"broken symbolic link to {os.readlink(path)}"
    return f"cannot read: {err.strerror or err}"


def _frame_count(job: Job) -> int:
    """The container's frame count (capped by --max-frames), for the ETA; 0 when unknown or unreadable."""
    import av

    try:
        with av.open(job.input) as container:
            count = container.streams.video[0].frames if container.streams.video else 0
    except (av.FFmpegError, OSError):
        return 0
    limit = job.config.max_frames
    return min(count, limit) if count and limit else count
