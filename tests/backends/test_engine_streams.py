"""Engine streams: OpenVINO works on several frames at once, and the pipeline keeps that many in flight.

The outputs must be those of one stream, frame for frame and in each source's order, whatever order the
calls finish in.
"""

from __future__ import annotations

import importlib.util
import threading
import time
from concurrent.futures import ThreadPoolExecutor

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


@needs_openvino
def test_two_streams_run_side_by_side_with_the_outputs_of_one(head_onnx, tensors):
    one = create_backend("openvino", head_onnx, SPEC, labels=True)
    two = create_backend("openvino", head_onnx, SPEC, labels=True, streams=2)
    assert (one.streams, two.streams) == (1, 2)
    assert "2 streams" in two.name and "streams" not in one.name
    expected = [one.run(tensor) for tensor in tensors]
    with ThreadPoolExecutor(2) as calls:  # two calls at once, each on its own infer request
        got = list(calls.map(two.run, tensors * 3))
    assert all(np.array_equal(g, expected[k % len(tensors)]) for k, g in enumerate(got))


@needs_openvino
def test_openvino_chooses_its_streams_on_the_first_compile(head_onnx, tensors):
    engine = create_backend("openvino", head_onnx, SPEC, streams=None)
    assert engine.streams == 1  # nothing compiled yet: one until OpenVINO has chosen
    engine.prepare(tensors[0].shape)
    assert engine.streams >= 1
    assert engine.run(tensors[0]).shape[1] == 21


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

    class Item(int):
        tensor = np.zeros((1, 3, 4, 4), np.float32)

    collector = FrameCollector(
        infer,
        prepare=lambda shape: None,
        max_batch=1,
        timeout=0.0,
        stopping=threading.Event(),
        on_error=lambda err: pytest.fail(f"collector failed: {err!r}"),
        arrived=arrived,
        streams=lambda: 2,
    )
    for lane in lanes:
        collector.add(lane)
    collector.seal()
    collector.start()
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
            assert pipeline.parts.backend.streams == streams
            for result in pipeline:
                got.setdefault(result.source, []).append((result.index, result.labels))
                engine = pipeline.snapshot()["engine"]  # what /metrics reports
                assert engine["streams"] == streams and 0 <= engine["in_flight"] <= streams
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
