"""The `health_check` extension: probes and metrics for processes without the query API."""

from __future__ import annotations

from typing import Any

import httpx

from tracehouse.core.component import ComponentID, Kind, Status
from tracehouse.core.config import load_config_dict
from tracehouse.extensions.health_check.extension import HealthCheckExtension
from tracehouse.core.service import Service


def _config() -> dict[str, Any]:
    return {
        "receivers": {"otlp": {"protocols": {"http": {"endpoint": "127.0.0.1:0"}}}},
        "exporters": {"debug": {}},
        "extensions": {"health_check": {"endpoint": "127.0.0.1:0"}},
        "service": {"extensions": ["health_check"],
                    "pipelines": {"traces": {"receivers": ["otlp"], "exporters": ["debug"]}}},
    }


def _health_port(service: Service) -> int:
    (node,) = [n for n in service._nodes if n.kind is Kind.EXTENSION]
    assert isinstance(node.component, HealthCheckExtension) and node.component.port
    return node.component.port


async def test_probes_and_metrics_follow_component_status() -> None:
    service = Service(load_config_dict(_config()))
    await service.start()
    try:
        async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{_health_port(service)}") as http:
            live, ready, metrics = await http.get("/healthz"), await http.get("/readyz"), await http.get("/metrics")
            assert live.status_code == 200 and live.json() == {"status": "ok"}
            assert ready.status_code == 200 and ready.json()["status"] == "ready"
            assert ready.json()["components"]["exporter/debug"] == {"status": "ok", "error": None}
            assert metrics.status_code == 200 and metrics.headers["content-type"].startswith("text/plain")
            assert b"tracehouse_receiver_accepted_spans" in metrics.content

            # A sink that is failing but retrying keeps the pod ready (never tie the sidecar to Kafka).
            service.report_status(ComponentID("debug"), Kind.EXPORTER, Status.RECOVERABLE_ERROR, "broker down")
            ready = await http.get("/readyz")
            assert ready.status_code == 200
            assert ready.json()["components"]["exporter/debug"] == {"status": "recoverable_error",
                                                                    "error": "broker down"}

            service.report_status(ComponentID("debug"), Kind.EXPORTER, Status.PERMANENT_ERROR, "bad config")
            assert (await http.get("/readyz")).status_code == 503
            assert (await http.get("/healthz")).status_code == 200

            service.report_status(ComponentID("debug"), Kind.EXPORTER, Status.FATAL_ERROR, "crashed")
            assert (await http.get("/healthz")).json() == {"status": "unhealthy"}

            missing = await http.get("/api/v1/traces")
            assert missing.status_code == 404 and "/healthz" in missing.json()["error"]
            assert (await http.post("/healthz")).status_code == 405
    finally:
        await service.shutdown()
