"""Ray nodes on 127.0.0.1 for the fleet and batch tests and benchmarks: ``ray start --block`` processes, each in its own
session, so one node can be stopped, or killed as a machine dies, without touching the others (or anyone's)."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

from tests.support.paths import ROOT


class RayNode:
    """One ``ray start --block``: the head (``head=True``) or a node joining ``address``."""

    def __init__(
        self,
        log: Path,
        *,
        address: str | None = None,
        port: int | None = None,
        temp_dir: Path | None = None,
        cpus: int = 1,
        object_store: int = 100_000_000,
    ):
        args = ["--num-cpus", str(cpus), "--object-store-memory", str(object_store)]
        if address is None:
            assert port is not None and temp_dir is not None, "the head needs its port and temp folder"
            args += ["--head", "--port", str(port), "--include-dashboard=false", "--temp-dir", str(temp_dir)]
        else:
            args += ["--address", address]
        self.log = log
        ray = Path(sys.executable).with_name("ray")
        self.proc = subprocess.Popen(
            [str(ray), "start", "--block", "--disable-usage-stats", "--node-ip-address", "127.0.0.1", *args],
            stdout=log.open("w"),
            stderr=subprocess.STDOUT,
            env={**os.environ, "PYTHONPATH": str(ROOT)},
            start_new_session=True,
        )
        deadline = time.monotonic() + 120
        while "Ray runtime started" not in log.read_text():
            if self.proc.poll() is not None or time.monotonic() > deadline:
                self.kill()
                raise RuntimeError(f"ray start failed:\n{log.read_text()[-2000:]}")
            time.sleep(0.3)

    def kill(self) -> None:
        """The node dies at once, as a machine that loses power: SIGKILL to every process of its session."""
        try:
            os.killpg(self.proc.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
        self.proc.wait()

    def stop(self) -> None:
        """``ray start --block`` shuts its node down on SIGTERM; killed if it takes over a minute."""
        if self.proc.poll() is not None:
            self.kill()  # its children may live on
            return
        self.proc.terminate()
        try:
            self.proc.wait(timeout=60)
        except subprocess.TimeoutExpired:
            pass
        self.kill()
