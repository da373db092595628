"""Local executors: one video at a time in this process, or ``--workers N`` processes.

Every executor offers the same small interface to the driver: ``capacity`` (videos at once), ``running``,
``submit(job)``, ``wait(timeout) -> [(job, record)]``, ``abort()`` and ``close()``; frames are reported
through the ``progress(n)`` callback as they are written.
"""

from __future__ import annotations

import logging
import multiprocessing
import multiprocessing.queues
import multiprocessing.synchronize
import os
import queue
import signal
import threading
import time
from collections.abc import Callable
from concurrent.futures import FIRST_COMPLETED, Future, ProcessPoolExecutor
from concurrent.futures import wait as wait_futures
from concurrent.futures.process import BrokenProcessPool

from streamseg import logs
from streamseg.batch.job import Job, run_job, unfinished_record


def cpu_count() -> int:
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not Linux
        return os.cpu_count() or 1


class InProcessExecutor:
    """``--workers 1``: a plain loop; ``wait`` runs the next video to its end in this thread."""

    capacity = 1

    def __init__(self, progress: Callable[[int], None]):
        self._progress = progress
        self._pending: list[Job] = []
        self._abort = False

    @property
    def running(self) -> int:
        return len(self._pending)

    def submit(self, job: Job) -> None:
        self._pending.append(job)

    def wait(self, timeout: float) -> list[tuple[Job, dict]]:
        if not self._pending:
            return []
        job = self._pending.pop(0)
        return [(job, run_job(job, on_frame=lambda: self._progress(1), should_abort=lambda: self._abort))]

    def abort(self) -> None:
        self._abort = True  # the running video stops at its next frame

    def close(self) -> None:
        pass


# set in each worker process by _start_worker
_frames_queue: multiprocessing.queues.Queue[int] | None = None
_abort_event: multiprocessing.synchronize.Event | None = None


def _start_worker(
    frames_queue: multiprocessing.queues.Queue[int], abort_event: multiprocessing.synchronize.Event, log_level: int
) -> None:
    """Ctrl-C reaches the whole process group: workers leave it to the driver, which tells them what to do."""
    global _frames_queue, _abort_event
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    logs.setup()
    logging.getLogger("streamseg").setLevel(log_level)
    _frames_queue, _abort_event = frames_queue, abort_event


def _run_in_worker(job: Job) -> dict:
    frames_queue, abort_event = _frames_queue, _abort_event
    if frames_queue is None or abort_event is None:
        raise RuntimeError("a batch job runs in a worker process started by ProcessExecutor")
    pending, last = 0, time.monotonic()

    def on_frame() -> None:  # frame counts go to the driver's bar in small bundles
        nonlocal pending, last
        pending += 1
        if time.monotonic() - last > 0.25:
            frames_queue.put(pending)
            pending, last = 0, time.monotonic()

    try:
        return run_job(job, on_frame=on_frame, should_abort=abort_event.is_set)
    finally:
        if pending:
            frames_queue.put(pending)


class ProcessExecutor:
    """``--workers N``: N spawned processes, each running one video's ``Pipeline`` at a time."""

    def __init__(self, workers: int, progress: Callable[[int], None]):
        self.capacity = workers
        self._progress = progress
        context = multiprocessing.get_context("spawn")  # no fork of a process that has threads
        self._frames = context.Queue()
        self._abort_event = context.Event()
        self._pool = self._new_pool(context)
        self._context = context
        self._futures: dict[Future, Job] = {}
        self._closing = threading.Event()
        self._drainer = threading.Thread(target=self._drain, name="batch-progress", daemon=True)
        self._drainer.start()

    def _new_pool(self, context) -> ProcessPoolExecutor:
        return ProcessPoolExecutor(
            self.capacity,
            mp_context=context,
            initializer=_start_worker,
            initargs=(self._frames, self._abort_event, logging.getLogger("streamseg").getEffectiveLevel()),
        )

    def _drain(self) -> None:
        while not self._closing.is_set():
            try:
                self._progress(self._frames.get(timeout=0.2))
            except queue.Empty:
                continue
            except (EOFError, OSError):
                return

    @property
    def running(self) -> int:
        return len(self._futures)

    def submit(self, job: Job) -> None:
        self._futures[self._pool.submit(_run_in_worker, job)] = job

    def wait(self, timeout: float) -> list[tuple[Job, dict]]:
        if not self._futures:
            return []
        done, _ = wait_futures(list(self._futures), timeout=timeout, return_when=FIRST_COMPLETED)
        finished, broken = [], False
        for future in done:
            job = self._futures.pop(future)
            try:
                finished.append((job, future.result()))
            except BrokenProcessPool:  # a worker died (out of memory, killed): every video it held failed
                broken = True
                finished.append((job, unfinished_record(job.key, error="a worker process died", retryable=True)))
        if broken:
            for job in list(self._futures.values()):
                finished.append((job, unfinished_record(job.key, error="a worker process died", retryable=True)))
            self._futures.clear()
            self._pool.shutdown(wait=False, cancel_futures=True)
            self._pool = self._new_pool(self._context)
        return finished

    def abort(self) -> None:
        """Running videos stop at their next frame and remove their temporary files."""
        self._abort_event.set()

    def close(self) -> None:
        self._pool.shutdown(wait=True, cancel_futures=True)
        self._closing.set()
        self._drainer.join()
