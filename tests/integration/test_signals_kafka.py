"""Logs and metrics through the Kafka shape, in process: a sidecar (OTLP -> kafka exporter)
and writers (kafka receiver -> ClickHouse) on a real Kafka-protocol broker (tansu) and the
real ClickHouse engine (chDB). Input is the OpenTelemetry Python SDK's log and metric
exporters; a client retry and a full replay of the topics (a second consumer group) store
no row twice."""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import httpx
import pytest
from opentelemetry.exporter.otlp.proto.http._log_exporter import OTLPLogExporter
from opentelemetry.exporter.otlp.proto.http.metric_exporter import OTLPMetricExporter

from kafka_testing import create_topic, read_topic
from signals_sdk import RecordingLogExporter, RecordingMetricExporter, emit_logs, emit_metrics, sdk_logs_request
from tracehouse.core.config import load_config_dict
from tracehouse.core.component import Kind
from tracehouse.core.service import Service
from tracehouse.sinks.clickhouse.schema import migrate, schema_params

pytestmark = pytest.mark.integration

FAST = {"session_timeout": "3s", "heartbeat_interval": "300ms", "rebalance_timeout": "4s", "drain_timeout": "2s",
        "producer": {"enable_idempotence": False},  # tansu answers InitProducerId with an error
        "batch": {"timeout": "200ms"},
        "error_backoff": {"initial_interval": "100ms", "max_interval": "500ms", "randomization_factor": 0}}


@asynccontextmanager
async def started(config: dict[str, Any]) -> AsyncIterator[Service]:
    service = Service(load_config_dict(config))
    await service.start()
    try:
        yield service
    finally:
        await service.shutdown()


def sidecar(bootstrap: str, topics: dict[str, str]) -> dict[str, Any]:
    pipe = {"receivers": ["otlp"], "processors": ["memory_limiter"], "exporters": ["kafka"]}
    return {
        "receivers": {"otlp": {"protocols": {"http": {"endpoint": "127.0.0.1:0"}}}},
        "processors": {"memory_limiter": {}},
        "exporters": {"kafka": {"brokers": [bootstrap], "topic": topics["traces"], "logs": {"topic": topics["logs"]},
                                "metrics": {"topic": topics["metrics"]}, "producer": {"enable_idempotence": False}}},
        "service": {"pipelines": {"traces": pipe, "logs": pipe, "metrics": pipe}},
    }


def writer(bootstrap: str, topics: dict[str, str], group: str, endpoint: str, database: str) -> dict[str, Any]:
    pipe = {"receivers": ["kafka"], "exporters": ["clickhouse"]}
    return {
        "receivers": {"kafka": {"brokers": [bootstrap], "topic": topics["traces"], "logs": {"topic": topics["logs"]},
                                "metrics": {"topic": topics["metrics"]}, "group_id": group,
                                "dead_letter_topic": f"{topics['traces']}_dlq", **FAST}},
        "exporters": {"clickhouse": {"endpoint": endpoint, "database": database, "create_schema": False}},
        # Only logs and metrics pipelines: the traces topic is not read.
        "service": {"pipelines": {"logs": pipe, "metrics": pipe}},
    }


def rows(client: Any, database: str) -> dict[str, int]:
    tables = ["otel_logs", "otel_metrics_gauge", "otel_metrics_sum", "otel_metrics_histogram",
              "otel_metrics_exponential_histogram"]
    return {t: int(client.query(f"SELECT count() FROM {database}.{t}").result_rows[0][0]) for t in tables}


async def until(predicate: Any, timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        await asyncio.sleep(0.1)


EXPECTED = {"otel_logs": 3, "otel_metrics_gauge": 1, "otel_metrics_sum": 3, "otel_metrics_histogram": 1,
            "otel_metrics_exponential_histogram": 1}


async def test_logs_and_metrics_flow_through_kafka_once_even_when_retried_and_replayed(
        kafka_bootstrap: str, chdb_endpoint: str, client: Any) -> None:
    run = uuid.uuid4().hex[:8]
    topics = {"traces": f"spans_{run}", "logs": f"logs_{run}", "metrics": f"metrics_{run}"}
    for topic in topics.values():
        await create_topic(kafka_bootstrap, topic, partitions=2)
    database = f"kafka_signals_{run}"
    migrate(client, schema_params(database, "otel_traces", 0, 1000))

    async with started(sidecar(kafka_bootstrap, topics)) as side:
        receiver = next(n.component for n in side._nodes if n.kind is Kind.RECEIVER)
        base = f"http://127.0.0.1:{receiver.http_port}"  # type: ignore[attr-defined]
        logs = RecordingLogExporter(OTLPLogExporter(endpoint=f"{base}/v1/logs", timeout=10))
        metrics = RecordingMetricExporter(OTLPMetricExporter(endpoint=f"{base}/v1/metrics", timeout=10))
        await asyncio.to_thread(emit_logs, logs, "kafka-app", ["a", "b"])
        await asyncio.to_thread(emit_metrics, metrics, "kafka-app")
        assert [r.name for r in logs.results + metrics.results] == ["SUCCESS", "SUCCESS"]
        # A client retry after a lost answer: the same records again, at new offsets.
        retried = sdk_logs_request("kafka-app", ["c"]).SerializeToString()
        async with httpx.AsyncClient(timeout=10) as http:
            for _ in range(2):
                resp = await http.post(f"{base}/v1/logs", content=retried,
                                       headers={"content-type": "application/x-protobuf"})
                assert resp.status_code == 200

    # The Collector's otlp_proto: one resource's export request per message, keyed by it.
    logged = await read_topic(kafka_bootstrap, topics["logs"])
    assert len(logged) == 3 and all(r.key is not None and len(r.key) == 16 for r in logged)

    async with started(writer(kafka_bootstrap, topics, f"writer_{run}", chdb_endpoint, database)):
        await until(lambda: rows(client, database) == EXPECTED, 30, "the writer to store every row")
    # A replay of both topics from the start by another group (a writer that lost its
    # offsets): the same records, cut into batches again, store nothing twice.
    async with started(writer(kafka_bootstrap, topics, f"replay_{run}", chdb_endpoint, database)) as replay:
        registry = replay.telemetry.registry

        def replayed() -> bool:
            sent = {unit: (registry.get_sample_value(f"tracehouse_receiver_accepted_{unit}_total",
                                                     {"receiver": "kafka", "transport": "kafka"}) or 0)
                    for unit in ("log_records", "metric_points")}
            return sent == {"log_records": 4, "metric_points": 6}

        await until(replayed, 30, "the replay to read both topics")
    assert rows(client, database) == EXPECTED
    assert client.query(f"SELECT DISTINCT ServiceName FROM {database}.otel_logs").result_rows == [("kafka-app",)]
