"""``streamseg`` as a user runs it, and what its errors must look like."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path


def run_cli(
    *args: str, cwd: Path | None = None, timeout: float = 600, check: bool = False, input: str | None = None
) -> subprocess.CompletedProcess:
    """``streamseg ARGS`` in a real subprocess, as a user would run it."""
    proc = subprocess.run(
        [sys.executable, "-m", "streamseg", *args],
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=timeout,
        input=input,
    )
    if check and proc.returncode != 0:
        raise AssertionError(f"streamseg {' '.join(args)} exited {proc.returncode}:\n{proc.stderr}")
    return proc


def run_segment(
    source: Path | str,
    model: Path | str,
    *flags: str,
    max_frames: int | None = None,
    labels_out: Path | None = None,
    labels_format: str | None = None,
    **options,
) -> subprocess.CompletedProcess:
    """``streamseg run SOURCE --model MODEL [--max-frames N] [--labels-out DIR [--labels-format F]] FLAGS...``.

    The set-up most end-to-end tests share; ``options`` go to ``run_cli`` (``check=True``, ``timeout``).
    """
    args = ["run", str(source), "--model", str(model)]
    if max_frames is not None:
        args += ["--max-frames", str(max_frames)]
    if labels_out is not None:
        args += ["--labels-out", str(labels_out)]
    if labels_format is not None:
        args += ["--labels-format", labels_format]
    return run_cli(*args, *flags, **options)


def assert_one_line_error(proc: subprocess.CompletedProcess, *fragments: str) -> None:
    assert proc.returncode != 0
    lines = [line for line in proc.stderr.splitlines() if line.strip()]
    assert len(lines) == 1, proc.stderr
    assert "Traceback" not in proc.stderr
    assert lines[0].startswith("streamseg: error: ")
    for fragment in fragments:
        assert fragment in lines[0]
