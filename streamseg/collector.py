"""The inference stage for many sources: gather a batch across their queues, run it once, hand each result back.

As DeepStream's nvstreammux and Roboflow's ``multiplex_videos`` do, each source
keeps its own queue, and the collector takes frames from them round-robin until
it holds ``max_batch`` or ``timeout`` has passed since the first one, so a
stalled camera delays a batch by at most the timeout and never blocks the
others. Frames whose input tensors differ in shape (sources of other aspect
ratios) run as separate calls of the same round: each frame is inferred at the
size a single-source run would give it, so its labels are the same.

Each source ends with its own END: the collector counts ENDs per source, not
the first one, and passes each on to that source's composite queue after the
frames before it. Items without a ``tensor`` (frames whose labels are carried
from an earlier inference) pass through in their source's order, uninferred.

An engine that works on several frames at once (``Backend.streams``, OpenVINO's
throughput streams) gets that many calls in flight, and the ones it asks to hold
waiting (``Backend.queued``): the collector hands a batch to a worker and gathers
the next while it runs; outputs still leave in the order the frames came, as
DeepStream's nvinfer keeps its batches in flight.
"""

from __future__ import annotations

import threading
import time
from collections import Counter, deque
from collections.abc import Callable, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any

from streamseg.queues import END, Closed, StageQueue
from streamseg.stage_stats import StageStats


@dataclass(frozen=True, slots=True)
class WarmUp:
    """Asks the infer stage to set the backend up for ``input_shape``; ``done`` is set once it has."""

    input_shape: tuple[int, ...]
    done: threading.Event = field(default_factory=threading.Event)


@dataclass(eq=False)
class CollectorInput:
    """One source as the collector sees it: where its frames come from and where their outputs go."""

    name: str
    inbox: StageQueue
    outbox: StageQueue
    stopping: threading.Event  # set: drain this source's frames without inferring them
    ended: bool = False


class FrameCollector(threading.Thread):
    """Runs ``infer(items) -> outputs`` on batches gathered across the registered lanes.

    The worker ends once every lane has ended and ``seal()`` was called (no lane
    will be added any more), or at ``stopping``. An error in ``infer`` goes to
    ``on_error``; every lane's outbox still gets its END.
    """

    def __init__(
        self,
        infer: Callable[[Sequence[Any]], list[Any]],
        *,
        prepare: Callable[[tuple[int, ...]], None],
        max_batch: int,
        timeout: float,
        stopping: threading.Event,
        on_error: Callable[[BaseException], None],
        arrived: threading.Event,
        streams: Callable[[], int] = lambda: 1,
        queued: Callable[[], int] = lambda: 0,
    ):
        """``streams()``: how many ``infer`` calls may run at once (the backend's ``streams``, read per batch:
        an engine may choose it on its first compile); ``queued()``: how many more to keep submitted."""
        super().__init__(name="streamseg-infer", daemon=True)
        self.stage = "infer"
        self.infer = infer
        self.prepare = prepare
        self.max_batch = max(1, max_batch)
        self.timeout = timeout
        self.stopping = stopping
        self.on_error = on_error
        self.arrived = arrived  # set by every lane's inbox on put
        self.stats = StageStats("infer")  # items: frames; one latency sample per backend call
        self.batch_sizes: Counter[int] = Counter()  # frames per backend call -> how many calls
        self.streams = streams
        self.queued = queued
        self._lanes: dict[str, CollectorInput] = {}
        # batches handed to the engine, oldest first: (batch, one future per backend call)
        self._in_flight: deque[tuple[list[tuple[CollectorInput, Any]], list[Future]]] = deque()
        self._workers: ThreadPoolExecutor | None = None  # only where the engine takes calls side by side
        self._stats_lock = threading.Lock()
        self._lock = threading.Lock()
        self._turn = 0
        self._sealed = False
        self._finished = False

    # -- lanes come and go ------------------------------------------------------------------
    def add(self, lane: CollectorInput) -> None:
        with self._lock:
            if self._finished:
                raise Closed("infer")
            self._lanes[lane.name] = lane
        self.arrived.set()

    def in_flight(self) -> int:
        """Backend calls submitted and not done (at most ``streams() + queued()``); safe from any thread."""
        return sum(not call.done() for _, calls in list(self._in_flight) for call in calls)

    def seal(self) -> None:
        """No lane will be added any more: end once the lanes there are have ended."""
        self._sealed = True
        self.arrived.set()

    # -- the loop ---------------------------------------------------------------------------
    def run(self) -> None:
        try:
            while True:
                batch, ended = self._gather()
                if batch:
                    self._submit(batch)
                if ended:
                    self._deliver(wait=True)  # a source's END after every frame before it
                for lane in ended:
                    self._end(lane)
                if not batch and not ended and self._done():
                    break
        except BaseException as err:  # noqa: BLE001 - handed to the pipeline, re-raised there
            self.on_error(err)
        finally:
            if self._workers is not None:  # no engine call outlives the stage
                self._workers.shutdown(wait=True, cancel_futures=True)
            with self._lock:
                self._finished = True
                lanes, self._lanes = list(self._lanes.values()), {}
            for lane in lanes:
                lane.inbox.close()  # upstream stops too
                self._end(lane)

    def _done(self) -> bool:
        with self._lock:
            empty = not self._lanes
        return (self.stopping.is_set() and empty or empty and self._sealed) and not self._in_flight

    def _gather(self) -> tuple[list[tuple[CollectorInput, Any]], list[CollectorInput]]:
        """Frames round-robin until the batch is full or the timeout since the first one has passed."""
        taken: list[tuple[CollectorInput, Any]] = []
        ended: list[CollectorInput] = []
        deadline = None
        while True:
            self.arrived.clear()
            self._deliver(wait=False)  # outputs that came back while waiting go on now
            self._take(taken, ended)
            if _inferable(taken) >= self.max_batch or ended or (not taken and self._done()):
                return taken, ended
            if taken and not _inferable(taken):
                return taken, ended  # carried frames only: nothing to wait for
            if taken and deadline is None:
                deadline = time.monotonic() + self.timeout
            wait = 0.5 if deadline is None else deadline - time.monotonic()
            if wait <= 0:
                return taken, ended
            self.arrived.wait(wait)

    def _take(self, taken: list, ended: list) -> None:
        with self._lock:
            lanes = list(self._lanes.values())
        if not lanes:
            return
        start = self._turn % len(lanes)
        self._turn += 1
        order = lanes[start:] + lanes[:start]  # a different lane goes first each round
        progress = True
        while progress and _inferable(taken) < self.max_batch:
            progress = False
            for lane in order:
                if _inferable(taken) >= self.max_batch:
                    break
                if lane.ended:
                    continue
                item = lane.inbox.poll()
                if item is None:
                    continue
                progress = True
                if item is END:
                    lane.ended = True
                    ended.append(lane)
                elif isinstance(item, WarmUp):
                    self.prepare(item.input_shape)
                    item.done.set()
                elif not lane.stopping.is_set():  # stopping: drain without working, END still comes
                    taken.append((lane, item))

    def _submit(self, batch: list[tuple[CollectorInput, Any]]) -> None:
        """One backend call per input shape in the batch: run here, or on a worker where the engine has streams."""
        groups: dict[tuple, list[Any]] = {}
        for _, item in batch:
            if getattr(item, "tensor", None) is not None:
                groups.setdefault((tuple(item.tensor.shape), str(item.tensor.dtype)), []).append(item)
        limit = max(1, self.streams()) + max(0, self.queued())
        calls: list[Future] = []
        for group in groups.values():
            while self.in_flight() >= limit:
                self._deliver(wait=True, oldest_only=True)  # every stream busy: wait for the oldest batch
            if limit == 1:
                calls.append(_done_future(self._call, group))
            else:
                if self._workers is None:
                    self._workers = ThreadPoolExecutor(limit, thread_name_prefix="streamseg-infer")
                calls.append(self._workers.submit(self._call, group))
                calls[-1].add_done_callback(lambda _: self.arrived.set())  # wakes _gather to deliver it
        self._in_flight.append((batch, calls))
        self._deliver(wait=False)

    def _call(self, group: list[Any]) -> dict[int, Any]:
        started, cpu_started = time.perf_counter(), time.thread_time()
        outputs = {id(item): output for item, output in zip(group, self.infer(group))}
        # the calling thread's CPU only: the engine's own threads are in the run's process CPU time
        with self._stats_lock:
            self.stats.add(time.perf_counter() - started, items=len(group), cpu=time.thread_time() - cpu_started)
            self.batch_sizes[len(group)] += 1
        return outputs

    def _deliver(self, *, wait: bool, oldest_only: bool = False) -> None:
        """Hand finished batches to their lanes, oldest first; ``wait``: for the oldest (or all) to finish."""
        while self._in_flight:
            batch, calls = self._in_flight[0]
            if not wait and not all(call.done() for call in calls):
                return
            outputs: dict[int, Any] = {}
            for call in calls:
                outputs.update(call.result())  # an engine error is raised here, in the stage's thread
            self._in_flight.popleft()
            self._hand_on(batch, outputs)
            if oldest_only:
                return

    def _hand_on(self, batch: list[tuple[CollectorInput, Any]], outputs: dict[int, Any]) -> None:
        """Outputs back to each frame's own lane, in order."""
        for lane, item in batch:
            try:
                lane.outbox.put(outputs.get(id(item), item))  # a carried frame goes on as it came
            except Closed:  # that source's downstream is gone; the others go on
                lane.stopping.set()

    def _end(self, lane: CollectorInput) -> None:
        with self._lock:
            self._lanes.pop(lane.name, None)
        try:
            lane.outbox.put(END)
        except Closed:
            pass


def _done_future(call: Callable[[Any], Any], argument: Any) -> Future:
    """``call(argument)`` run here and now, as a finished future (its error kept for ``result()``)."""
    future: Future = Future()
    try:
        future.set_result(call(argument))
    except BaseException as err:  # noqa: BLE001 - raised again by result(), as a worker's would be
        future.set_exception(err)
    return future


def _inferable(taken: list[tuple[CollectorInput, Any]]) -> int:
    """Frames in ``taken`` that need the model (carried frames ride along free)."""
    return sum(getattr(item, "tensor", None) is not None for _, item in taken)
