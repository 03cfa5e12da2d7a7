"""SIGTERM drains: a request waiting in a batch is flushed, stored and acknowledged before exit."""

from __future__ import annotations

import json
import threading
import time
from pathlib import Path

import httpx
import pytest
import yaml

from allinone import ALL_IN_ONE, AllInOne
from otlp_fixtures import FIXTURES

pytestmark = pytest.mark.integration


def test_sigterm_flushes_batches_before_exit(tmp_path: Path) -> None:
    config = yaml.safe_load(ALL_IN_ONE.read_text())
    # A batch that would wait a minute: only the drain can send it in time.
    config["processors"]["batch"] = {"send_batch_size": 100000, "timeout": "60s", "group_commit": False}
    path = tmp_path / "slow-batch.yaml"
    path.write_text(yaml.safe_dump(config))
    server = AllInOne(tmp_path, config=path).start()
    body = (FIXTURES / "mlflow" / "http-protobuf.pb").read_bytes()
    result: dict[str, object] = {}

    def send() -> None:
        try:
            result["response"] = httpx.post(f"{server.otlp_http}/v1/traces", content=body, timeout=60,
                                            headers={"content-type": "application/x-protobuf"})
        except Exception as exc:  # recorded for the assertion below
            result["error"] = exc

    sender = threading.Thread(target=send)
    sender.start()
    time.sleep(1.0)
    assert sender.is_alive(), "the request should be waiting in the batch"
    started = time.monotonic()
    assert server.stop() == 0
    sender.join(10)
    assert "error" not in result, result
    response = result["response"]
    assert isinstance(response, httpx.Response) and response.status_code == 200
    assert time.monotonic() - started < 30, "drained without waiting for the batch timeout"
    records = [json.loads(line) for line in server.log_path.read_text().splitlines() if line.startswith("{")]
    events = [r["event"] for r in records]
    assert "draining: stopping receivers, flushing batches, closing exporters" in events
    assert events[-1] == "service stopped"
    assert any(r.get("otelcol.component.id") == "otlp" and r.get("otelcol.component.kind") == "receiver"
               for r in records), "component logs carry their bound context"

    again = AllInOne(tmp_path, config=path).start()
    try:
        page = httpx.get(f"{again.query}/api/v1/traces", timeout=30,
                         params={"start": "2020-01-01T00:00:00Z", "service": "mlflow-app"}).json()
        assert sum(t["span_count"] for t in page["traces"]) == 6
    finally:
        assert again.stop() == 0
