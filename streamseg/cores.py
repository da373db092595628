"""How many CPU cores this process may use: one answer for every thread-count default."""

from __future__ import annotations

import os

# decode and encode each get this share of the cores by default: the engine's threads use every core, and
# the stages run side by side, so FFmpeg's own default (a thread per core, plus one) would only queue them
CODEC_SHARE = 4


def usable_cores() -> int:
    """The cores this process may run on (its affinity mask where the OS has one)."""
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:
        return os.cpu_count() or 1


def codec_threads(asked: int | None = None) -> int:
    """Threads for one decoder or encoder: ``asked`` (a flag), else a quarter of the cores, at least one."""
    return asked or max(1, usable_cores() // CODEC_SHARE)


def share_opencv_threads() -> int:
    """Let one OpenCV call (resize, colour conversion, compositing) use a codec's share of the cores; returns it.

    OpenCV's own default, a worker per core for every call, splits a 640x360 frame into slices whose hand-offs
    cost more CPU than they save: composite, I420 conversion and resize took 1.76 ms of the process's CPU a
    frame on 2 threads against 1.28 ms on one (2-core VM, nothing else running). Beside the engine, which
    already keeps every core busy, a run gained within its noise (docs/cpu-speed.md). The setting is
    OpenCV's, for the whole process.
    """
    import cv2

    threads = codec_threads()
    cv2.setNumThreads(threads)
    return threads
