"""Logs and metrics into ClickHouse (chDB, the real engine): the Collector clickhouseexporter's
otel_logs and otel_metrics_* tables, filled by an app with the OpenTelemetry Python SDK's
default exporters (traces, logs and metrics all on) over OTLP/HTTP and OTLP/gRPC through a
running service; exactly-once rows for data without ids; tenants."""

from __future__ import annotations

import asyncio
import json
import os
import uuid
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager, contextmanager
from typing import Any

import httpx
import pytest
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import BatchSpanProcessor, SpanExporter, SpanExportResult

from signals_sdk import (
    METRIC_NAMES,
    LogRecordExportResult,
    MetricExportResult,
    Recording,
    RecordingLogExporter,
    RecordingMetricExporter,
    emit_logs,
    emit_metrics,
    resource,
    sdk_logs_request,
    sdk_metrics_request,
)
from tracehouse.core.component import ComponentID, Kind, Settings
from tracehouse.core.config import load_config_dict
from tracehouse.core.pdata import LogBatch, MetricBatch
from tracehouse.core.service import Service
from tracehouse.core.testing import TestHost
from tracehouse.sinks.clickhouse.client import open_client
from tracehouse.sinks.clickhouse.config import ClickHouseExporterConfig
from tracehouse.sinks.clickhouse.exporter import ClickHouseExporter
from tracehouse.sinks.clickhouse.schema import migrate, schema_params

pytestmark = pytest.mark.integration

PB = {"content-type": "application/x-protobuf"}
METRIC_TABLES = {kind: f"otel_metrics_{kind}" for kind in
                 ("gauge", "sum", "histogram", "exponential_histogram", "summary")}

# The Collector clickhouseexporter's columns and types (exporter/clickhouseexporter/internal/
# sqltemplates/*_table.sql), as ClickHouse reports them, plus tracehouse's Tenant.
_METRIC_HEAD = [
    ("ResourceAttributes", "Map(LowCardinality(String), String)"), ("ResourceSchemaUrl", "String"),
    ("ScopeName", "String"), ("ScopeVersion", "String"), ("ScopeAttributes", "Map(LowCardinality(String), String)"),
    ("ScopeDroppedAttrCount", "UInt32"), ("ScopeSchemaUrl", "String"), ("ServiceName", "LowCardinality(String)"),
    ("MetricName", "String"), ("MetricDescription", "String"), ("MetricUnit", "String"),
    ("Attributes", "Map(LowCardinality(String), String)"), ("StartTimeUnix", "DateTime64(9)"),
    ("TimeUnix", "DateTime64(9)"),
]
_EXEMPLARS = [("Exemplars.FilteredAttributes", "Array(Map(LowCardinality(String), String))"),
              ("Exemplars.TimeUnix", "Array(DateTime64(9))"), ("Exemplars.Value", "Array(Float64)"),
              ("Exemplars.SpanId", "Array(String)"), ("Exemplars.TraceId", "Array(String)")]
_TENANT = [("Tenant", "LowCardinality(String)")]
COLLECTOR_SCHEMA = {
    "otel_logs": [
        ("Timestamp", "DateTime64(9)"), ("TimestampTime", "DateTime"), ("TraceId", "String"), ("SpanId", "String"),
        ("TraceFlags", "UInt8"), ("SeverityText", "LowCardinality(String)"), ("SeverityNumber", "UInt8"),
        ("ServiceName", "LowCardinality(String)"), ("Body", "String"), ("ResourceSchemaUrl", "LowCardinality(String)"),
        ("ResourceAttributes", "Map(LowCardinality(String), String)"), ("ScopeSchemaUrl", "LowCardinality(String)"),
        ("ScopeName", "String"), ("ScopeVersion", "LowCardinality(String)"),
        ("ScopeAttributes", "Map(LowCardinality(String), String)"),
        ("LogAttributes", "Map(LowCardinality(String), String)"), ("EventName", "String"), *_TENANT],
    "otel_metrics_gauge": [*_METRIC_HEAD, ("Value", "Float64"), ("Flags", "UInt32"), *_EXEMPLARS, *_TENANT],
    "otel_metrics_sum": [*_METRIC_HEAD, ("Value", "Float64"), ("Flags", "UInt32"), *_EXEMPLARS,
                         ("AggregationTemporality", "Int32"), ("IsMonotonic", "Bool"), *_TENANT],
    "otel_metrics_histogram": [*_METRIC_HEAD, ("Count", "UInt64"), ("Sum", "Float64"),
                               ("BucketCounts", "Array(UInt64)"), ("ExplicitBounds", "Array(Float64)"), *_EXEMPLARS,
                               ("Flags", "UInt32"), ("Min", "Float64"), ("Max", "Float64"),
                               ("AggregationTemporality", "Int32"), *_TENANT],
    "otel_metrics_exponential_histogram": [
        *_METRIC_HEAD, ("Count", "UInt64"), ("Sum", "Float64"), ("Scale", "Int32"), ("ZeroCount", "UInt64"),
        ("PositiveOffset", "Int32"), ("PositiveBucketCounts", "Array(UInt64)"), ("NegativeOffset", "Int32"),
        ("NegativeBucketCounts", "Array(UInt64)"), *_EXEMPLARS, ("Flags", "UInt32"), ("Min", "Float64"),
        ("Max", "Float64"), ("AggregationTemporality", "Int32"), *_TENANT],
    "otel_metrics_summary": [*_METRIC_HEAD, ("Count", "UInt64"), ("Sum", "Float64"),
                             ("ValueAtQuantiles.Quantile", "Array(Float64)"),
                             ("ValueAtQuantiles.Value", "Array(Float64)"), ("Flags", "UInt32"), *_TENANT],
}


@pytest.fixture(scope="module")
def db(chdb_endpoint: str) -> str:
    """One database for the module, migrated once (migrations take seconds); each test keeps
    to rows of its own service names."""
    name = f"signals_{uuid.uuid4().hex[:10]}"
    client = open_client(chdb_endpoint)
    try:
        migrate(client, schema_params(name, "otel_traces", 0, 1000))
    finally:
        client.close()
    return name


def unique(name: str) -> str:
    return f"{name}-{uuid.uuid4().hex[:8]}"


def exporter_config(chdb_endpoint: str, database: str) -> ClickHouseExporterConfig:
    return ClickHouseExporterConfig(endpoint=chdb_endpoint, database=database, create_schema=False)


def service_config(chdb_endpoint: str, database: str) -> dict[str, Any]:
    pipe = {"receivers": ["otlp"], "processors": ["memory_limiter", "batch"], "exporters": ["clickhouse"]}
    return {
        "receivers": {"otlp": {"protocols": {"grpc": {"endpoint": "127.0.0.1:0"}, "http": {"endpoint": "127.0.0.1:0"}}}},
        "processors": {"memory_limiter": {}, "batch": {"timeout": "50ms"}},
        "exporters": {"clickhouse": {"endpoint": chdb_endpoint, "database": database, "create_schema": False}},
        "service": {"pipelines": {"traces": pipe, "logs": pipe, "metrics": pipe}},
    }


@asynccontextmanager
async def running(chdb_endpoint: str, database: str) -> AsyncIterator[tuple[Service, Any]]:
    service = Service(load_config_dict(service_config(chdb_endpoint, database)))
    await service.start()
    receiver = next(n.component for n in service._nodes if n.kind is Kind.RECEIVER)
    try:
        yield service, receiver
    finally:
        await service.shutdown()


@contextmanager
def environment(values: dict[str, str]) -> Iterator[None]:
    saved = {k: os.environ.get(k) for k in values}
    os.environ.update(values)
    try:
        yield
    finally:
        for k, v in saved.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v


class RecordingSpanExporter(Recording, SpanExporter):
    pass


def default_sdk_app(protocol: str, endpoint: str, service: str) -> dict[str, list[Any]]:
    """An app as the SDK's defaults make it: span, log and metric exporters built from
    OTEL_EXPORTER_OTLP_ENDPOINT alone, each signal to its standard path. Returns every
    export's result, by signal."""
    if protocol == "http":
        from opentelemetry.exporter.otlp.proto.http._log_exporter import OTLPLogExporter
        from opentelemetry.exporter.otlp.proto.http.metric_exporter import OTLPMetricExporter
        from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
    else:
        from opentelemetry.exporter.otlp.proto.grpc._log_exporter import OTLPLogExporter  # type: ignore[assignment]
        from opentelemetry.exporter.otlp.proto.grpc.metric_exporter import OTLPMetricExporter  # type: ignore[assignment]
        from opentelemetry.exporter.otlp.proto.grpc.trace_exporter import OTLPSpanExporter  # type: ignore[assignment]
    with environment({"OTEL_EXPORTER_OTLP_ENDPOINT": endpoint, "OTEL_EXPORTER_OTLP_TIMEOUT": "10"}):
        spans = RecordingSpanExporter(OTLPSpanExporter())
        logs = RecordingLogExporter(OTLPLogExporter())
        metrics = RecordingMetricExporter(OTLPMetricExporter())
    provider = TracerProvider(resource=resource(service))
    provider.add_span_processor(BatchSpanProcessor(spans))
    emit_logs(logs, service, ["cart loaded", "order placed"], tracer=provider.get_tracer("app"))
    provider.shutdown()
    emit_metrics(metrics, service)
    return {"traces": spans.results, "logs": logs.results, "metrics": metrics.results}


@pytest.mark.parametrize("protocol", ["http", "grpc"])
async def test_an_app_with_default_sdk_settings_gets_success_on_all_three_signals_and_every_table_fills(
        chdb_endpoint: str, client: Any, db: str, protocol: str) -> None:
    app = unique("shop-app")
    async with running(chdb_endpoint, db) as (_, receiver):
        port = receiver.http_port if protocol == "http" else receiver.grpc_port
        results = await asyncio.to_thread(default_sdk_app, protocol, f"http://127.0.0.1:{port}", app)
    assert results == {"traces": [SpanExportResult.SUCCESS], "logs": [LogRecordExportResult.SUCCESS],
                       "metrics": [MetricExportResult.SUCCESS]}

    def rows(sql: str) -> list[Any]:
        return [tuple(r) for r in client.query(sql, parameters={"app": app}).result_rows]

    (span,) = rows(f"SELECT TraceId, SpanId FROM {db}.otel_traces WHERE ServiceName = {{app:String}}")
    # The logs were emitted inside the span: found by its ids, as a trace's logs are.
    logs = rows(f"SELECT Body, SeverityText, SeverityNumber, LogAttributes['app.step'], ScopeName, Tenant, "
                f"Timestamp > toDateTime64('2020-01-01', 9) FROM {db}.otel_logs "
                f"WHERE TraceId = '{span[0]}' AND SpanId = '{span[1]}' AND ServiceName = {{app:String}} "
                f"ORDER BY Timestamp")
    # (no keys configured: the default tenant, stored as '')
    assert logs == [("cart loaded", "WARN", 13, "0", "signals", "", True),
                    ("order placed", "WARN", 13, "1", "signals", "", True)]

    where = "WHERE ServiceName = {app:String}"
    assert rows(f"SELECT MetricName, Value, Attributes['queue'], MetricUnit FROM {db}.otel_metrics_gauge {where}") == [
        (METRIC_NAMES["gauge"], 7.0, "a", "{item}")]
    assert rows(f"SELECT MetricName, Attributes['route'], Value, IsMonotonic, AggregationTemporality "
                f"FROM {db}.otel_metrics_sum {where} ORDER BY 1, 2") == [
        ("app.requests", "/chat", 3.0, True, 2), ("app.requests", "/embed", 2.0, True, 2),
        ("app.sessions", "", -1.0, False, 2)]
    assert rows(f"SELECT MetricName, Count, Sum, Min, Max, length(BucketCounts) = length(ExplicitBounds) + 1 "
                f"FROM {db}.otel_metrics_histogram {where}") == [(METRIC_NAMES["histogram"], 3, 555.0, 5.0, 500.0, True)]
    assert rows(f"SELECT MetricName, Count, Sum, arraySum(PositiveBucketCounts), Scale <= 20 "
                f"FROM {db}.otel_metrics_exponential_histogram {where}") == [
        (METRIC_NAMES["exponential_histogram"], 4, 11110.0, 4, True)]


def test_the_tables_have_the_collector_clickhouseexporter_columns_and_types(client: Any, db: str) -> None:
    database = db
    for table, expected in COLLECTOR_SCHEMA.items():
        got = client.query("SELECT name, type FROM system.columns WHERE database = {d:String} AND table = {t:String} "
                           "ORDER BY position", parameters={"d": database, "t": table}).result_rows
        assert [tuple(r) for r in got] == expected, table
    keys = client.query("SELECT sorting_key FROM system.tables WHERE database = {d:String} AND name = 'otel_logs'",
                        parameters={"d": database}).result_rows
    assert keys == [("Tenant, ServiceName, TimestampTime, Timestamp",)]


async def test_a_summary_made_to_the_otlp_spec_lands_in_otel_metrics_summary(
        chdb_endpoint: str, client: Any, db: str) -> None:
    """The Python SDK emits no summary; this one is OTLP/JSON written to the spec."""
    legacy = unique("legacy")
    body = {"resourceMetrics": [{
        "resource": {"attributes": [{"key": "service.name", "value": {"stringValue": legacy}}]},
        "scopeMetrics": [{"scope": {"name": "prom", "version": "2"}, "metrics": [{
            "name": "rpc.duration", "unit": "s", "summary": {"dataPoints": [{
                "startTimeUnixNano": "1795000000000000000", "timeUnixNano": "1795000060000000000",
                "count": "4", "sum": 2.5, "attributes": [{"key": "rpc", "value": {"stringValue": "get"}}],
                "quantileValues": [{"quantile": 0.5, "value": 0.5}, {"quantile": 0.99, "value": 1.25}]}]}}]}]}]}
    async with running(chdb_endpoint, db) as (_, receiver):
        async with httpx.AsyncClient(timeout=10) as http:
            resp = await http.post(f"http://127.0.0.1:{receiver.http_port}/v1/metrics", content=json.dumps(body),
                                   headers={"content-type": "application/json"})
            assert resp.status_code == 200, resp.text
    rows = client.query(f"SELECT ServiceName, ScopeName, ScopeVersion, MetricName, MetricUnit, Attributes, Count, Sum, "
                        f"`ValueAtQuantiles.Quantile`, `ValueAtQuantiles.Value`, toUnixTimestamp64Nano(TimeUnix) "
                        f"FROM {db}.otel_metrics_summary WHERE ServiceName = {{s:String}}",
                        parameters={"s": legacy}).result_rows
    assert rows == [(legacy, "prom", "2", "rpc.duration", "s", {"rpc": "get"}, 4, 2.5, [0.5, 0.99], [0.5, 1.25],
                     1795000060000000000)]


def counts(client: Any, database: str, service: str) -> dict[str, int]:
    tables = ["otel_logs", *METRIC_TABLES.values()]
    return {t: int(client.query(f"SELECT count() FROM {database}.{t} WHERE ServiceName = {{s:String}}",
                                parameters={"s": service}).result_rows[0][0]) for t in tables}


async def test_a_client_retry_of_logs_and_metrics_stores_no_duplicate_row(
        chdb_endpoint: str, client: Any, db: str) -> None:
    """The client's first request was stored but its answer lost: it sends the same items
    again, in a new request (the SDK's payload, sent twice)."""
    app = unique("retrying")
    logs = sdk_logs_request(app, ["one", "two", "three"]).SerializeToString()
    metrics = sdk_metrics_request(app).SerializeToString()
    async with running(chdb_endpoint, db) as (service, receiver):
        async with httpx.AsyncClient(timeout=10) as http:
            for _ in range(2):
                for path, body in (("/v1/logs", logs), ("/v1/metrics", metrics)):
                    resp = await http.post(f"http://127.0.0.1:{receiver.http_port}{path}", content=body, headers=PB)
                    assert resp.status_code == 200
        registry = service.telemetry.registry
        duplicates = {unit: registry.get_sample_value(f"tracehouse_exporter_duplicate_{unit}_total",
                                                      {"exporter": "clickhouse"}) for unit in ("log_records", "metric_points")}
    assert counts(client, db, app) == {"otel_logs": 3, "otel_metrics_gauge": 1, "otel_metrics_sum": 3,
                                              "otel_metrics_histogram": 1, "otel_metrics_exponential_histogram": 1,
                                              "otel_metrics_summary": 0}
    assert duplicates == {"log_records": 3, "metric_points": 6}


async def test_only_identical_items_are_duplicates_and_tenants_never_hide_each_other(
        chdb_endpoint: str, client: Any, db: str) -> None:
    app = unique("twins")
    exporter = ClickHouseExporter(Settings(ComponentID("clickhouse"), Kind.EXPORTER), exporter_config(chdb_endpoint, db))
    await exporter.start(TestHost())
    try:
        request = sdk_logs_request(app, ["same time", "same time, other body"])
        first, second = request.resource_logs[0].scope_logs[0].log_records
        second.observed_time_unix_nano = first.observed_time_unix_nano  # the same nanosecond
        second.time_unix_nano = first.time_unix_nano
        await exporter.consume(LogBatch.from_request(request))
        shop = LogBatch.from_request(request)
        shop.tenant = "shop"
        await exporter.consume(shop)  # the same content, another tenant's
        metrics = MetricBatch.from_bytes(sdk_metrics_request(app).SerializeToString())
        await exporter.consume(metrics)
        changed = metrics.clone()
        changed.request.resource_metrics[0].scope_metrics[0].metrics[0].gauge.data_points[0].as_int = 8
        changed.mark_mutated()
        await exporter.consume(changed)  # same series and time, another value: not a duplicate
    finally:
        await exporter.shutdown()
    where = {"parameters": {"s": app}}
    logs = client.query(f"SELECT Tenant, count() FROM {db}.otel_logs WHERE ServiceName = {{s:String}} "
                        "GROUP BY Tenant ORDER BY Tenant", **where).result_rows
    assert logs == [("", 2), ("shop", 2)]
    gauges = client.query(f"SELECT Value FROM {db}.otel_metrics_gauge WHERE ServiceName = {{s:String}} ORDER BY Value",
                          **where).result_rows
    assert gauges == [(7.0,), (8.0,)]
    assert exporter.skipped_duplicates == 5  # the changed batch's other points
