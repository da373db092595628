"""Peak resident memory of a child process, as the child itself used it."""

from __future__ import annotations

import subprocess
import time


def vm_hwm(pid: int) -> int:
    """The process's resident high-water mark in bytes (0 once it has exited)."""
    try:
        with open(f"/proc/{pid}/status") as status:
            for line in status:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1]) * 1024
    except OSError:
        pass
    return 0


def wait_with_peak_rss(proc: subprocess.Popen, timeout: float) -> int:
    """Wait for ``proc``, polling its VmHWM; returns the highest seen, in bytes.

    Not ``wait4``'s ``ru_maxrss``: Linux counts into it the parent's high-water mark at the child's exec (the
    child starts as a vfork of the test process), so a test session that once grew large would be measured.
    VmHWM belongs to the child's own memory since exec, and only grows, so the last reading is the peak so far.
    """
    deadline = time.monotonic() + timeout
    peak = 0
    while proc.poll() is None:
        if time.monotonic() > deadline:
            proc.kill()
            proc.wait()
            raise AssertionError(f"{proc.args} ran past {timeout} s")
        peak = max(peak, vm_hwm(proc.pid))
        time.sleep(0.01)
    return peak
