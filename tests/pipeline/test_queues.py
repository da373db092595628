"""Bounded stage queues: blocking keeps every item, drop-oldest keeps the freshest."""

from __future__ import annotations

import threading
import time

import pytest

from streamseg.queues import END, Closed, FillPolicy, StageQueue


def test_block_policy_is_lossless_and_ordered():
    q = StageQueue("q", 2, FillPolicy.BLOCK)
    received = []

    def consume():
        while (item := q.get()) is not END:
            received.append(item)

    q.put(0)  # full before the consumer starts: the peak does not depend on which thread runs faster
    q.put(1)
    t = threading.Thread(target=consume)
    t.start()
    for i in range(2, 200):
        q.put(i)
        assert len(q) <= 2
    q.put(END)
    t.join(5)
    assert received == list(range(200)) and q.dropped == 0 and q.peak == 2


def test_drop_oldest_keeps_the_freshest_and_counts():
    q = StageQueue("q", 3, FillPolicy.DROP_OLDEST)
    for i in range(10):
        q.put(i)
    assert q.dropped == 7
    assert [q.get(), q.get(), q.get()] == [7, 8, 9]


def test_end_is_never_dropped():
    q = StageQueue("q", 2, FillPolicy.DROP_OLDEST)
    q.put(END)
    for i in range(5):
        q.put(i)
    assert q.get() is END and q.get() == 4


def test_close_wakes_a_blocked_producer():
    q = StageQueue("q", 1)
    q.put(0)
    errors = []

    def produce():
        try:
            q.put(1)
        except Closed:
            errors.append("closed")

    t = threading.Thread(target=produce)
    t.start()
    time.sleep(0.05)
    q.close()
    t.join(2)
    assert errors == ["closed"] and q.get() is END


def test_get_timeout():
    with pytest.raises(TimeoutError):
        StageQueue("q", 1).get(timeout=0.01)
