"""One video of a batch: an ordinary ``Pipeline`` run into temporary names, renamed into place when complete.

Temporary names start with a dot and keep the real extension (``dir/.clip.part.mp4``), so a folder search
skips them and the muxer still picks the container from the name. A failed or aborted job removes them.
"""

from __future__ import annotations

import logging
import os
import shutil
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from streamseg.config import RunConfig
from streamseg.errors import ConfigError, ModelError, SourceError, StreamsegError

log = logging.getLogger(__name__)

DONE, PARTIAL, FAILED, ABORTED = "done", "partial", "failed", "aborted"
# an input that cannot be read or a bad option fails the same way every time: not worth a retry
PERMANENT_ERRORS = (SourceError, ConfigError, ModelError)
# a model or option error fails every video alike: the batch stops taking new ones
BATCH_ERRORS = (ConfigError, ModelError)


@dataclass(frozen=True)
class JobOutputs:
    """Where one video's outputs go, relative to OUTDIR; ``None``: not asked for."""

    video: str
    labels: str | None = None
    summary: str | None = None

    def final_paths(self, outdir: Path) -> list[Path]:
        return [outdir / p for p in (self.video, self.labels, self.summary) if p is not None]

    def temp_paths(self, outdir: Path) -> list[Path]:
        return [temp_name(path) for path in self.final_paths(outdir)]


@dataclass(frozen=True)
class Job:
    key: str  # the manifest's name for the video: its path relative to its root
    input: str  # absolute path of the video
    outdir: str
    outputs: JobOutputs
    config: RunConfig  # the run options; the model is a local .onnx path, its spec resolved
    threads: int | None = None  # inference threads: --threads, else the executor's share of the cores


def temp_name(path: Path) -> Path:
    """``dir/clip.mp4`` -> ``dir/.clip.part.mp4``; ``dir/clip.labels`` -> ``dir/.clip.labels.part``."""
    if path.suffix in (".mp4", ".mkv", ".mov", ".csv", ".jsonl"):
        return path.with_name(f".{path.stem}.part{path.suffix}")
    return path.with_name(f".{path.name}.part")


def remove_paths(paths: list[Path]) -> None:
    for path in paths:
        if path.is_dir():
            shutil.rmtree(path, ignore_errors=True)
        elif path.exists():
            path.unlink(missing_ok=True)


def unfinished_record(key: str, *, status: str = FAILED, error: str | None = None, retryable: bool = False) -> dict:
    """A video's manifest record with nothing written: the start of ``run_job``'s, or a job that never returned."""
    return {
        "key": key,
        "status": status,
        "frames": 0,
        "expected_frames": None,
        "fps": 0.0,
        "wall_s": 0.0,
        "error": error,
        "retryable": retryable,
        "fatal": False,
    }


def run_job(
    job: Job, on_frame: Callable[[], None] | None = None, should_abort: Callable[[], bool] | None = None
) -> dict:
    """Process one video; returns its record: status, frames, expected_frames, fps, wall_s, error, retryable."""
    from streamseg.pipeline import Pipeline  # here, so a driver that only skips never imports the stages

    outdir = Path(job.outdir)
    finals, temps = job.outputs.final_paths(outdir), job.outputs.temp_paths(outdir)
    started = time.perf_counter()
    record = unfinished_record(job.key)
    remove_paths(temps)  # leftovers of a crashed run
    aborted, written, pipeline = False, 0, None
    try:
        Path(finals[0]).parent.mkdir(parents=True, exist_ok=True)
        temp_of = dict(zip(finals, temps))
        options: dict[str, Any] = {"outputs": (str(temp_of[outdir / job.outputs.video]),)}
        if job.outputs.labels:
            options["labels_out"] = str(temp_of[outdir / job.outputs.labels])
        if job.outputs.summary:
            options["summary"] = str(temp_of[outdir / job.outputs.summary])
        if job.threads:
            options["threads"] = job.threads
        pipeline = Pipeline(job.input, config=job.config, **options)

        def each_result(result) -> None:
            nonlocal aborted, written
            written += 1
            if on_frame is not None:
                on_frame()
            if should_abort is not None and not aborted and should_abort():
                aborted = True
                pipeline.stop()

        pipeline.on_result = each_result
        pipeline.start()
        expected = pipeline.info.frames
        if expected and job.config.max_frames:
            expected = min(expected, job.config.max_frames)
        record["expected_frames"] = expected
        summary = pipeline.run()
        record.update(frames=summary.frames_out, fps=round(summary.fps, 3), backend=summary.backend)
        if aborted:
            record.update(status=ABORTED, error="aborted")
        elif expected and summary.frames_out < expected:
            record.update(status=PARTIAL, error=f"ended after {summary.frames_out} of {expected} frames (truncated?)")
        else:
            record["status"] = DONE
    except StreamsegError as err:
        record.update(
            error=_one_line(err), retryable=not isinstance(err, PERMANENT_ERRORS), fatal=isinstance(err, BATCH_ERRORS)
        )
        _close_quietly(pipeline)
    except Exception as err:  # noqa: BLE001 - one video's crash is recorded, the batch goes on
        record.update(error=f"{type(err).__name__}: {_one_line(err)}", retryable=True)
        _close_quietly(pipeline)
    record["frames"] = written if record["status"] == FAILED else record["frames"]
    record["wall_s"] = round(time.perf_counter() - started, 3)
    if record["status"] in (DONE, PARTIAL):  # a truncated input's output is whole for the frames it has
        try:
            _move_into_place(temps, finals)
        except OSError as err:
            record.update(status=FAILED, error=f"cannot move outputs into place: {err}", retryable=True)
    remove_paths(temps)
    return record


def _move_into_place(temps: list[Path], finals: list[Path]) -> None:
    """Label maps and summary first, the video last: the video's presence says the rest is there too."""
    for temp, final in reversed(list(zip(temps, finals))):
        if not temp.exists():  # a sink that never opened (no frames) wrote nothing
            continue
        if final.is_dir():
            shutil.rmtree(final)
        os.replace(temp, final)


def _close_quietly(pipeline) -> None:
    """A start that failed half-way (source opened, sink not): free the model and the input in a long batch."""
    if pipeline is not None:
        try:
            pipeline.close()
        except Exception as err:  # noqa: BLE001 - the first error is the one recorded
            log.debug("closing after a failed start: %s", err)


def _one_line(err: BaseException) -> str:
    text = str(err).strip()
    return text.splitlines()[0] if text else type(err).__name__
