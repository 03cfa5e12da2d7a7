"""A real Prometheus server for tests: Debian's `prometheus` package, on a free loopback port.

`Prometheus(workdir, targets={"job": "host:port", ...}).start()` writes a config that
scrapes every target's `/metrics` each second, each under its own `job` label, keeps its
TSDB in `workdir`, and returns once `/-/ready` answers. `query` and `query_range` call the
HTTP API and return its JSON body (status included, so a test can assert on PromQL errors).

`make test-tools` (which `make test` runs) installs Debian's package (deploy/scripts/test-tools.sh);
where it cannot, the tests that need it skip with `SKIP_REASON`.
"""

from __future__ import annotations

import shutil
import subprocess
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import yaml

from ports import free_port
from tracehouse.bench.processes import http_ok, terminate, wait_ready

BINARY = "prometheus"
SKIP_REASON = ("prometheus not on PATH; `make test-tools` installs Debian's prometheus "
               "(deploy/scripts/test-tools.sh), or: apt-get install -y --no-install-recommends prometheus")


def binary() -> str | None:
    """The prometheus executable, or None (tests skip with SKIP_REASON)."""
    return shutil.which(BINARY)


@dataclass
class Prometheus:
    workdir: Path
    targets: dict[str, str]  # job -> "host:port" serving /metrics
    scrape_interval_s: int = 1
    port: int = 0
    proc: subprocess.Popen[bytes] | None = field(default=None, repr=False)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def log_path(self) -> Path:
        return self.workdir / "prometheus.log"

    def config(self) -> dict[str, Any]:
        interval = f"{self.scrape_interval_s}s"
        return {
            "global": {"scrape_interval": interval, "evaluation_interval": interval, "scrape_timeout": interval},
            "scrape_configs": [
                {"job_name": job, "metrics_path": "/metrics", "static_configs": [{"targets": [target]}]}
                for job, target in self.targets.items()
            ],
        }

    def start(self, timeout: float = 30.0) -> Prometheus:
        exe = binary()
        if exe is None:
            raise RuntimeError(SKIP_REASON)
        self.workdir.mkdir(parents=True, exist_ok=True)
        config = self.workdir / "prometheus.yml"
        config.write_text(yaml.safe_dump(self.config(), sort_keys=False))
        self.port = self.port or free_port()
        log = self.log_path.open("ab")
        self.proc = subprocess.Popen(
            [exe, f"--config.file={config}", f"--storage.tsdb.path={self.workdir / 'tsdb'}",
             f"--web.listen-address=127.0.0.1:{self.port}", "--storage.tsdb.retention.time=1d",
             "--log.level=warn"],
            cwd=self.workdir, stdout=log, stderr=subprocess.STDOUT)
        wait_ready(self.proc, lambda: http_ok(f"{self.url}/-/ready"), timeout=timeout, what="prometheus", log_tail=self.log_tail)
        return self

    def stop(self) -> None:
        terminate(self.proc)

    def __enter__(self) -> Prometheus:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    # ------------------------------------------------------------------ HTTP API

    def _get(self, path: str, params: dict[str, Any]) -> dict[str, Any]:
        # POST form, as Grafana does: long expressions never hit URL limits. Errors (bad
        # PromQL is a 400) come back as the API's JSON body for the caller to assert on.
        response = httpx.post(f"{self.url}{path}", data=params, timeout=30)
        body: dict[str, Any] = response.json()
        return body

    def query(self, expr: str, at: float | None = None) -> dict[str, Any]:
        """`/api/v1/query`: the API's JSON (`status`, `data` or `errorType`/`error`)."""
        params: dict[str, Any] = {"query": expr}
        if at is not None:
            params["time"] = f"{at:.3f}"
        return self._get("/api/v1/query", params)

    def query_range(self, expr: str, start: float, end: float, step: float = 1.0) -> dict[str, Any]:
        """`/api/v1/query_range` over [start, end] (unix seconds)."""
        return self._get("/api/v1/query_range",
                         {"query": expr, "start": f"{start:.3f}", "end": f"{end:.3f}", "step": f"{step:g}"})

    def label_values(self, label: str, match: str) -> list[str]:
        """`/api/v1/label/<label>/values?match[]=...`: what Grafana's `label_values(match, label)` asks."""
        body = httpx.get(f"{self.url}/api/v1/label/{label}/values", params={"match[]": match}, timeout=30).json()
        assert body["status"] == "success", body
        return list(body["data"])

    def value(self, expr: str, at: float | None = None) -> dict[tuple[tuple[str, str], ...], float]:
        """An instant query's samples as {sorted label pairs: value}; asserts it succeeded."""
        body = self.query(expr, at)
        assert body["status"] == "success", f"{expr}: {body}"
        assert body["data"]["resultType"] == "vector", body
        return {tuple(sorted(s["metric"].items())): float(s["value"][1]) for s in body["data"]["result"]}

    def scalar(self, expr: str, at: float | None = None) -> float:
        """The one sample of an instant query (0.0 when it returns none)."""
        samples = self.value(expr, at)
        assert len(samples) <= 1, f"{expr}: expected one series, got {samples}"
        return next(iter(samples.values()), 0.0)

    def targets_up(self) -> dict[str, bool]:
        """job -> whether its last scrape succeeded (jobs not scraped yet are missing)."""
        return {dict(labels)["job"]: v == 1.0 for labels, v in self.value("up").items()}

    def wait_for_scrapes(self, timeout: float = 30.0) -> None:
        """Until every target has been scraped successfully at least once."""
        deadline = time.monotonic() + timeout
        up: dict[str, bool] = {}
        while time.monotonic() < deadline:
            up = self.targets_up()
            if set(up) == set(self.targets) and all(up.values()):
                return
            time.sleep(0.2)
        raise AssertionError(f"targets not all up after {timeout}s: {up}\n{self.log_tail()}")

    def log_tail(self, lines: int = 30) -> str:
        try:
            return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])
        except OSError:
            return "(no log)"
