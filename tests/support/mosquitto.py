"""A real MQTT broker for tests: Debian's mosquitto on a free 127.0.0.1 port, restartable on the same port.

Persistence is on (in the test's folder) so a broker that is stopped and started again keeps its clients'
sessions and the QoS 1 messages queued for them, as a production broker would.
"""

from __future__ import annotations

import getpass
import shutil
import socket
import subprocess
import time
from pathlib import Path

from tests.support.servers import Server, free_port

MOSQUITTO = shutil.which("mosquitto") or "/usr/sbin/mosquitto"


def mosquitto_missing() -> str | None:
    return None if Path(MOSQUITTO).exists() else "needs Debian's mosquitto (.ci/run installs it)"


class Mosquitto(Server):
    def __init__(self, folder: Path):
        self.port = free_port()
        self.folder = folder
        self.config = folder / "mosquitto.conf"
        # user: as root, mosquitto would switch to its own user, which cannot write in the test's folder
        self.config.write_text(
            f"listener {self.port} 127.0.0.1\nallow_anonymous true\nuser {getpass.getuser()}\n"
            f"persistence true\n"
            f"persistence_location {folder}/\nlog_dest file {folder}/mosquitto.log\n"
        )
        self._proc: subprocess.Popen | None = None

    def url(self, topic: str) -> str:
        return f"mqtt://127.0.0.1:{self.port}/{topic}"

    def start(self, timeout: float = 10) -> Mosquitto:
        self._proc = subprocess.Popen(
            [MOSQUITTO, "-c", str(self.config)], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
        )
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self._proc.poll() is not None:
                break
            try:
                socket.create_connection(("127.0.0.1", self.port), timeout=0.5).close()
                return self
            except OSError:
                time.sleep(0.05)
        self.stop()
        raise RuntimeError(f"mosquitto did not start on port {self.port}")

    def stop(self) -> None:
        """SIGTERM: the broker saves its sessions and exits, dropping every connection."""
        if self._proc is not None:
            self._proc.terminate()
            self._proc.wait(timeout=10)
            self._proc = None
