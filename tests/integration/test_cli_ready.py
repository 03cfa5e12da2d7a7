"""`tracehouse run` says where it listens once it serves: in JSON mode, one record."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from allinone import AllInOne

pytestmark = pytest.mark.integration


def test_run_logs_one_json_ready_record_with_the_bound_listeners(tmp_path: Path) -> None:
    server = AllInOne(tmp_path).start()
    try:
        records = [json.loads(line) for line in server.log_path.read_text().splitlines() if line.startswith("{")]
    finally:
        assert server.stop() == 0
    ready = [r for r in records if r.get("event") == "ready"]
    assert len(ready) == 1, records[-5:]
    assert ready[0]["listeners"] == {
        "extension/query_api query API and UI": f"http://127.0.0.1:{server.query_port}",
        "receiver/otlp OTLP/gRPC": f"http://127.0.0.1:{server.grpc_port}",
        "receiver/otlp OTLP/HTTP": f"http://127.0.0.1:{server.http_port}",
        "receiver/mlflow MLflow tracking": f"http://127.0.0.1:{server.mlflow_port}",
        "extension/clickhouse_http ClickHouse HTTP (Grafana, clients)": f"http://127.0.0.1:{server.clickhouse_http_port}",
    }
    assert ready[0]["env"] == {"OTEL_EXPORTER_OTLP_ENDPOINT": f"http://127.0.0.1:{server.http_port}",
                               "OTEL_EXPORTER_OTLP_PROTOCOL": "http/protobuf",
                               "MLFLOW_TRACKING_URI": f"http://127.0.0.1:{server.mlflow_port}"}
