"""Stage threads: take from one queue, work, put on the next, always end with END."""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Generator, Iterable
from typing import Any

from streamseg.queues import END, Closed, StageQueue
from streamseg.stage_stats import StageStats

log = logging.getLogger(__name__)


class Worker(threading.Thread):
    """Runs ``work`` on each item of ``inbox`` and puts the result on ``outbox``.

    A producer worker has no inbox and iterates ``items`` instead. ``work`` may
    return None to emit nothing. On any exit the worker runs ``on_end`` and then
    puts END on its outbox from ``finally``, so the consumer always stops; an
    error goes to ``on_error``, and the inbox is closed so upstream stops too.
    """

    def __init__(
        self,
        name: str,
        work: Callable[[Any], Any],
        *,
        inbox: StageQueue | None = None,
        outbox: StageQueue | None = None,
        items: Callable[[], Iterable[Any]] | None = None,
        stopping: threading.Event,
        skip_when_stopping: bool = False,
        on_error: Callable[[BaseException], None],
        on_end: Callable[[], None] | None = None,
        thread_name: str | None = None,
    ):
        super().__init__(name=f"streamseg-{thread_name or name}", daemon=True)
        self.stage = name
        self.work = work
        self.inbox = inbox
        self.outbox = outbox
        self.items = items
        self.stopping = stopping
        self.skip_when_stopping = skip_when_stopping
        self.on_error = on_error
        self.on_end = on_end
        self.stats = StageStats(name)
        self.exhausted = False  # a producer whose items ran out, not one told to stop

    def _inputs(self) -> Generator[Any, None, None]:
        if self.items is not None:
            for item in self.items():
                if self.stopping.is_set():
                    return
                yield item
            self.exhausted = True
            return
        if self.inbox is None:
            raise ValueError(f"{self.stage}: a worker needs an inbox or items")
        while True:
            item = self.inbox.get()
            if item is END:
                return
            if self.skip_when_stopping and self.stopping.is_set():
                continue  # stopping: drain without working, END still comes
            yield item

    def run(self) -> None:
        inputs = self._inputs()
        try:
            while True:
                started, cpu_started = time.perf_counter(), time.thread_time()
                item = next(inputs, END)  # a producer's time includes its decode
                if item is END:
                    break
                if self.items is None:
                    started, cpu_started = time.perf_counter(), time.thread_time()
                out = self.work(item)
                self.stats.add(time.perf_counter() - started, cpu=time.thread_time() - cpu_started)
                if out is not None and self.outbox is not None:
                    self.outbox.put(out)
        except Closed:  # downstream is gone: pass the news upstream
            if self.inbox is not None:
                self.inbox.close()
        except BaseException as err:  # noqa: BLE001 - handed to the pipeline, re-raised there
            self.on_error(err)
            if self.inbox is not None:
                self.inbox.close()
        finally:
            inputs.close()  # a producer's source is closed by its own thread, never under a decoder
            if self.on_end is not None:
                try:
                    self.on_end()
                except BaseException as err:  # noqa: BLE001 - e.g. an output that cannot be finalized
                    self.on_error(err)
            if self.outbox is not None:
                try:
                    self.outbox.put(END)
                except Closed:
                    pass
