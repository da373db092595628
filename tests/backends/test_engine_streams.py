"""Engine streams: OpenVINO works on several frames at once, and the pipeline keeps that many in flight, plus
the one it holds queued.

The outputs must be those of one stream, frame for frame and in each source's order, whatever order the
calls finish in.
"""

from __future__ import annotations

import contextlib
import importlib.util
import subprocess
import sys
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
import pytest

from streamseg import Pipeline
from streamseg.backends import create_backend
from streamseg.collector import CollectorInput, FrameCollector
from streamseg.queues import END, StageQueue
from tests.support.cli import run_segment
from tests.support.onnx_models import HEAD_SPEC
from tests.support.videos import make_video

needs_openvino = pytest.mark.skipif(importlib.util.find_spec("openvino") is None, reason="needs the openvino extra")
SPEC = HEAD_SPEC


class AtOnce:
    """Counts the calls inside ``during()`` at the same time, and the most there ever were."""

    def __init__(self):
        self._lock = threading.Lock()
        self.now = self.most = 0

    @contextlib.contextmanager
    def during(self):
        with self._lock:
            self.now += 1
            self.most = max(self.most, self.now)
        try:
            yield
        finally:
            with self._lock:
                self.now -= 1


@needs_openvino
def test_two_streams_run_side_by_side_with_the_outputs_of_one(head_onnx, tensors):
    one = create_backend("openvino", head_onnx, SPEC, labels=True)
    two = create_backend("openvino", head_onnx, SPEC, labels=True, streams=2)
    assert (one.streams, two.streams) == (1, 2)
    assert (one.queued, two.queued) == (0, 1)  # one stream: nothing waits in the engine (a live run's latency)
    assert "2 streams" in two.name and "streams" not in one.name
    expected = [one.run(tensor) for tensor in tensors]
    at_once = AtOnce()

    def call(tensor):
        with at_once.during():
            return two.run(tensor)

    with ThreadPoolExecutor(3) as calls:  # three calls at once, each on its own infer request
        got = list(calls.map(call, tensors * 4))
    assert all(np.array_equal(g, expected[k % len(tensors)]) for k, g in enumerate(got))
    assert at_once.most == 3  # three calls were in run() together, and each got one stream's outputs


# a fresh process on one core whose first three inferences start together (OpenVINO's binding deadlocked here)
FIRST_CALLS_AT_ONCE = """
import os, sys, threading
from concurrent.futures import ThreadPoolExecutor
import numpy as np
from streamseg.backends import create_backend
from tests.support.onnx_models import HEAD_SPEC
os.sched_setaffinity(0, {min(os.sched_getaffinity(0))})
engine = create_backend("openvino", sys.argv[1], HEAD_SPEC, labels=True, streams=2)
tensor = np.zeros((1, 3, 108, 192), np.float32)
engine.prepare(tensor.shape)
together = threading.Barrier(engine.streams + engine.queued)
def call(_):
    together.wait()
    return engine.run(tensor)
with ThreadPoolExecutor(together.parties) as calls:
    print(len(list(calls.map(call, range(together.parties)))))
"""


@pytest.mark.slow
@needs_openvino
def test_first_inferences_at_once_on_one_core_do_not_hang(head_onnx):
    """Before the process's first inference ran alone, 6 in 30 such processes hung for good."""
    for _ in range(10):
        proc = subprocess.run(
            [sys.executable, "-c", FIRST_CALLS_AT_ONCE, str(head_onnx)],
            capture_output=True,
            text=True,
            timeout=120,
            cwd=str(Path(__file__).resolve().parents[2]),
        )
        assert proc.returncode == 0 and proc.stdout.strip() == "3", proc.stderr[-2000:]


@needs_openvino
def test_openvino_chooses_its_streams_on_the_first_compile(head_onnx, tensors):
    engine = create_backend("openvino", head_onnx, SPEC, streams=None)
    assert engine.streams == 1  # nothing compiled yet: one until OpenVINO has chosen
    engine.prepare(tensors[0].shape)
    assert engine.streams >= 1
    assert engine.run(tensors[0]).shape[1] == 21


class Item(int):
    """A frame the collector infers: it has a tensor."""

    tensor = np.zeros((1, 3, 4, 4), np.float32)


def started_collector(infer, lanes, arrived, *, on_error, **engine) -> FrameCollector:
    """A running infer stage over ``lanes``, one frame a call, sealed; ``engine``: its streams and queued."""
    collector = FrameCollector(
        infer,
        prepare=lambda shape: None,
        max_batch=1,
        timeout=0.0,
        stopping=threading.Event(),
        on_error=on_error,
        arrived=arrived,
        **engine,
    )
    for lane in lanes:
        collector.add(lane)
    collector.seal()
    collector.start()
    return collector


def test_collector_hands_outputs_on_in_order_though_calls_finish_out_of_order():
    """Two calls in flight, the first of each pair slower: the lanes still get their frames in order, and
    a source's END after all of them."""
    arrived = threading.Event()
    lanes = [
        CollectorInput(name, StageQueue(name, 64), StageQueue(f"{name}-out", 64), threading.Event()) for name in "ab"
    ]
    running = []

    def infer(items):
        running.append(len(running))
        time.sleep(0.03 if items[0] % 2 == 0 else 0.001)  # even frames finish after the odd one behind them
        return [-item for item in items]

    collector = started_collector(
        infer, lanes, arrived, on_error=lambda err: pytest.fail(f"collector failed: {err!r}"), streams=lambda: 2
    )
    for k in range(10):
        for lane in lanes:
            lane.inbox.put(Item(k))
            arrived.set()
    for lane in lanes:
        lane.inbox.put(END)
        arrived.set()
    collector.join(10)
    assert not collector.is_alive()
    for lane in lanes:
        got = []
        while (item := lane.outbox.get(timeout=1)) is not END:
            got.append(item)
        assert got == [-k for k in range(10)], lane.name
    assert len(running) == 20


def test_collector_keeps_the_queued_calls_submitted_beside_the_running_ones():
    """Two streams and one queued: three calls are in flight at once (a barrier of three would break after
    its timeout were the third held back), and never a fourth."""
    arrived = threading.Event()
    lane = CollectorInput("a", StageQueue("a", 64), StageQueue("a-out", 64), threading.Event())
    three = threading.Barrier(3, timeout=10)
    at_once = AtOnce()

    def infer(items):
        with at_once.during():
            if items[0] < 3:
                three.wait()  # the first three calls meet here: all of them submitted together
        return [-item for item in items]

    errors: list[BaseException] = []
    collector = started_collector(infer, [lane], arrived, on_error=errors.append, streams=lambda: 2, queued=lambda: 1)
    for k in range(9):
        lane.inbox.put(Item(k))
    lane.inbox.put(END)
    arrived.set()
    collector.join(20)
    assert not collector.is_alive() and not errors, errors
    got = []
    while (item := lane.outbox.get(timeout=1)) is not END:
        got.append(item)
    assert got == [-k for k in range(9)]
    assert at_once.most == 3


@needs_openvino
def test_a_run_with_two_streams_writes_the_labels_of_one(head_onnx, tmp_path):
    """Two sources, every second frame carried (uninferred frames pass in order between inferred ones):
    the same label maps, frame for frame, as with one stream."""
    clips = [
        make_video(tmp_path / "a.mp4", width=192, height=108, frames=12),
        make_video(tmp_path / "b.mp4", width=160, height=120, frames=9),
    ]

    def labels(streams: int) -> dict[str, list[np.ndarray]]:
        got: dict[str, list[np.ndarray]] = {}
        with Pipeline(
            [str(c) for c in clips], model=head_onnx, spec=SPEC, backend="openvino", engine_streams=streams, interval=2
        ) as pipeline:
            backend = pipeline.parts.backend
            assert (backend.streams, backend.queued) == (streams, 1 if streams > 1 else 0)
            for result in pipeline:
                got.setdefault(result.source, []).append((result.index, result.labels))
                engine = pipeline.snapshot()["engine"]  # what /metrics reports
                assert (engine["streams"], engine["queued"]) == (backend.streams, backend.queued)
                assert 0 <= engine["in_flight"] <= backend.streams + backend.queued
        for frames in got.values():
            assert [index for index, _ in frames] == list(range(len(frames)))  # each source's order
        return {name: [labels for _, labels in frames] for name, frames in got.items()}

    one, two = labels(1), labels(2)
    assert {name: len(frames) for name, frames in two.items()} == {"a": 12, "b": 9}
    assert all(np.array_equal(x, y) for name in one for x, y in zip(one[name], two[name], strict=True))


@needs_openvino
def test_run_says_how_many_streams_the_engine_has(head_onnx, car_video, tmp_path):
    out = tmp_path / "out.mp4"
    proc = run_segment(
        car_video,
        head_onnx,
        "-o",
        str(out),
        "--spec",
        str(head_onnx.with_suffix(".yaml")),
        "--backend",
        "openvino",
        "--engine-streams",
        "2",
        max_frames=6,
    )
    assert proc.returncode == 0, proc.stderr
    assert "6 frames in, 6 out" in proc.stderr and "openvino (CPU, fp32, 2 streams)" in proc.stderr
    assert out.stat().st_size > 0
