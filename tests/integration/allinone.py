"""Start and stop real tracehouse processes (all-in-one, sidecar, writer, query) for integration tests."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from dataclasses import dataclass, field
from pathlib import Path


from ports import free_port
from tracehouse.bench.processes import http_ok, wait_ready
from tracehouse.bench.run_kafka import metric

REPO = Path(__file__).resolve().parents[2]
CONFIGS = REPO / "deploy" / "config"
ALL_IN_ONE = CONFIGS / "all-in-one.yaml"


@dataclass
class AllInOne:
    """`tracehouse run` as a child process on free ports; ready when its probe says so.

    The defaults run the all-in-one; `config=CONFIGS / "sidecar.yaml"` with
    `probe="health"` runs a sidecar (or writer) whose probes come from `health_check`."""

    workdir: Path
    config: Path = ALL_IN_ONE
    env: dict[str, str] = field(default_factory=dict)
    probe: str = "query"  # which port answers /readyz: "query" (query_api) or "health" (health_check)
    proc: subprocess.Popen[bytes] | None = None
    grpc_port: int = 0
    http_port: int = 0
    query_port: int = 0
    health_port: int = 0
    mlflow_port: int = 0
    clickhouse_http_port: int = 0

    @property
    def data_dir(self) -> Path:
        return self.workdir / "data"

    @property
    def log_path(self) -> Path:
        return self.workdir / "tracehouse.log"

    @property
    def otlp_http(self) -> str:
        return f"http://127.0.0.1:{self.http_port}"

    @property
    def otlp_grpc(self) -> str:
        return f"127.0.0.1:{self.grpc_port}"

    @property
    def query(self) -> str:
        return f"http://127.0.0.1:{self.query_port}"

    @property
    def mlflow(self) -> str:
        """MLFLOW_TRACKING_URI for this process."""
        return f"http://127.0.0.1:{self.mlflow_port}"

    @property
    def health(self) -> str:
        return f"http://127.0.0.1:{self.health_port}"

    def start(self, timeout: float = 90.0) -> AllInOne:
        self.grpc_port, self.http_port, self.query_port, self.health_port = (
            free_port(), free_port(), free_port(), free_port())
        self.mlflow_port = free_port()
        self.clickhouse_http_port = free_port()
        self.http_port = int(self.env.get("TRACEHOUSE_OTLP_HTTP_PORT", self.http_port))
        env = {
            **os.environ,
            "TRACEHOUSE_CLICKHOUSE_DSN": f"chdb://{self.data_dir}",
            "TRACEHOUSE_BIND": "127.0.0.1",
            "TRACEHOUSE_OTLP_BIND": "127.0.0.1",  # the sidecar config's OTLP ports
            "TRACEHOUSE_OTLP_GRPC_PORT": str(self.grpc_port),
            "TRACEHOUSE_OTLP_HTTP_PORT": str(self.http_port),
            "TRACEHOUSE_QUERY_PORT": str(self.query_port),
            "TRACEHOUSE_HEALTH_PORT": str(self.health_port),
            "TRACEHOUSE_MLFLOW_PORT": str(self.mlflow_port),
            "TRACEHOUSE_CLICKHOUSE_HTTP_PORT": str(self.clickhouse_http_port),
            "TRACEHOUSE_LOG_FORMAT": "json",
            **self.env,
        }
        probe = self.health if self.probe == "health" else self.query
        log = self.log_path.open("ab")
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "tracehouse.core.cli", "run", "--config", str(self.config)],
            cwd=self.workdir, env=env, stdout=log, stderr=subprocess.STDOUT,
        )
        wait_ready(self.proc, lambda: http_ok(f"{probe}/readyz"), timeout=timeout, what="tracehouse",
                   log_tail=self.log_tail, poll_s=0.2)
        return self

    def stop(self, timeout: float = 60.0) -> int:
        """SIGTERM and wait for the drain; returns the exit code."""
        assert self.proc is not None
        self.proc.send_signal(signal.SIGTERM)
        try:
            return self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            self.kill()
            raise RuntimeError(f"tracehouse did not stop within {timeout}s:\n{self.log_tail()}") from None

    def kill(self) -> None:
        """SIGKILL: no drain, no flush, as a crash or an OOM kill would end it."""
        if self.proc is not None and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(10)

    def metric(self, name: str) -> float:
        """Sum of a Prometheus metric's samples (all label sets) from the process's /metrics."""
        return metric(self.health if self.probe == "health" else self.query, name)

    def mapped_files(self) -> str:
        """/proc/<pid>/maps: which shared libraries the process has loaded."""
        assert self.proc is not None
        return Path(f"/proc/{self.proc.pid}/maps").read_text()

    def rss_bytes(self) -> int:
        assert self.proc is not None
        for line in Path(f"/proc/{self.proc.pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) * 1024
        raise RuntimeError("no VmRSS")

    def log_tail(self, lines: int = 40) -> str:
        try:
            return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])
        except OSError:
            return "(no log)"
