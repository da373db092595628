"""A live ``streamseg run`` in a child process: start it, stop it with a signal, read its live counters."""

from __future__ import annotations

import re
import subprocess
import sys

CAMERA_SIZE = (320, 192)


def streamseg(*args: str) -> subprocess.Popen:
    return subprocess.Popen(
        [sys.executable, "-m", "streamseg", *args, "--no-progress"],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
    )


def stop(proc: subprocess.Popen, signum: int) -> str:
    """Send ``signum``; the run must finish by itself and exit 0. Returns its stderr."""
    proc.send_signal(signum)
    try:
        _, err = proc.communicate(timeout=30)
    except subprocess.TimeoutExpired:
        proc.kill()
        raise
    assert proc.returncode == 0, err[-2000:]
    assert "Traceback" not in err
    return err


def live_counts(stderr: str) -> tuple[int, int]:
    found = re.search(r"live: (\d+) input reconnects, (\d+) output reconnects", stderr)
    assert found, stderr[-2000:]
    return int(found[1]), int(found[2])
