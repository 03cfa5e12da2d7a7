"""The OTLP receiver on logs and metrics: the OpenTelemetry Python SDK's log and metric
exporters over HTTP and gRPC, OTLP/JSON, partial success, refusals, bad input, a signal
without a pipeline, and tenants. What reaches the pipelines is checked on neighbour doubles
(`Sink`); the same on the real ClickHouse is tests/sinks/test_clickhouse_signals.py."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import grpc
import httpx
import pytest
from google.rpc import error_details_pb2
from grpc_status import rpc_status
from opentelemetry.exporter.otlp.proto.grpc._log_exporter import OTLPLogExporter as GrpcLogExporter
from opentelemetry.exporter.otlp.proto.grpc.metric_exporter import OTLPMetricExporter as GrpcMetricExporter
from opentelemetry.exporter.otlp.proto.http._log_exporter import OTLPLogExporter as HttpLogExporter
from opentelemetry.exporter.otlp.proto.http.metric_exporter import OTLPMetricExporter as HttpMetricExporter
from opentelemetry.proto.collector.logs.v1.logs_service_pb2 import ExportLogsServiceResponse
from opentelemetry.proto.collector.metrics.v1.metrics_service_pb2 import ExportMetricsServiceResponse

from signals_sdk import (
    METRIC_NAMES,
    LogRecordExportResult,
    MetricExportResult,
    RecordingLogExporter,
    RecordingMetricExporter,
    emit_logs,
    emit_metrics,
    sdk_logs_request,
    sdk_metrics_request,
)
from tracehouse.core.auth import AuthConfig
from tracehouse.core.component import ComponentID, Kind, Settings, Signal, SignalConsumers
from tracehouse.core.errors import RetryableError
from tracehouse.core.pdata import metric_points
from tracehouse.core.testing import Sink, TestHost
from tracehouse.extensions.bearertokenauth.config import BearerTokenAuthConfig
from tracehouse.extensions.bearertokenauth.extension import BearerTokenAuthExtension
from tracehouse.extensions.bearertokenauth.keys import digest, new_key
from tracehouse.ingest.otlp.config import GrpcConfig, HttpConfig, OtlpReceiverConfig, ProtocolsConfig
from tracehouse.ingest.otlp.receiver import OtlpReceiver
from tracehouse.processors.memory_limiter.config import MemoryLimiterConfig
from tracehouse.processors.memory_limiter.processor import MemoryLimiterProcessor

PB = {"content-type": "application/x-protobuf"}
JSON = {"content-type": "application/json"}
LOGS_EXPORT = "/opentelemetry.proto.collector.logs.v1.LogsService/Export"
METRICS_EXPORT = "/opentelemetry.proto.collector.metrics.v1.MetricsService/Export"
T = 1_795_000_000_000_000_000


@dataclass
class Running:
    receiver: OtlpReceiver
    sinks: dict[Signal, Sink]
    host: TestHost
    http: httpx.AsyncClient
    channel: grpc.aio.Channel

    def url(self, path: str) -> str:
        return f"http://127.0.0.1:{self.receiver.http_port}{path}"

    async def grpc(self, method: str, body: bytes, **kwargs: Any) -> bytes:
        call = self.channel.unary_unary(method, request_serializer=None, response_deserializer=None)
        result: bytes = await call(body, timeout=10, **kwargs)
        return result


async def start(consumers: Any, host: TestHost | None = None, auth: AuthConfig | None = None) -> Running:
    config = OtlpReceiverConfig(protocols=ProtocolsConfig(grpc=GrpcConfig(endpoint="127.0.0.1:0", auth=auth),
                                                          http=HttpConfig(endpoint="127.0.0.1:0", auth=auth)))
    receiver = OtlpReceiver(Settings(ComponentID("otlp"), Kind.RECEIVER), config, consumers)
    host = host or TestHost()
    await receiver.start(host)
    sinks = {s: consumers.get(s) for s in consumers.signals} if isinstance(consumers, SignalConsumers) else {}
    return Running(receiver, sinks, host, httpx.AsyncClient(timeout=10),
                   grpc.aio.insecure_channel(f"127.0.0.1:{receiver.grpc_port}"))


async def stop(r: Running) -> None:
    await r.http.aclose()
    await r.channel.close()
    await r.receiver.shutdown()


@pytest.fixture
async def running() -> AsyncIterator[Running]:
    r = await start(SignalConsumers({signal: Sink() for signal in Signal}))
    yield r
    await stop(r)


def log_exporter(protocol: str, r: Running) -> RecordingLogExporter:
    if protocol == "http":
        return RecordingLogExporter(HttpLogExporter(endpoint=r.url("/v1/logs"), timeout=10))
    return RecordingLogExporter(GrpcLogExporter(endpoint=f"127.0.0.1:{r.receiver.grpc_port}", insecure=True,
                                                timeout=10))


def metric_exporter(protocol: str, r: Running) -> RecordingMetricExporter:
    if protocol == "http":
        return RecordingMetricExporter(HttpMetricExporter(endpoint=r.url("/v1/metrics"), timeout=10))
    return RecordingMetricExporter(GrpcMetricExporter(endpoint=f"127.0.0.1:{r.receiver.grpc_port}", insecure=True,
                                                      timeout=10))


# -- the SDK's exporters ---------------------------------------------------------------------

@pytest.mark.parametrize("protocol", ["http", "grpc"])
async def test_the_sdk_log_and_metric_exporters_are_answered_with_success(running: Running, protocol: str) -> None:
    logs, metrics = log_exporter(protocol, running), metric_exporter(protocol, running)
    await asyncio.to_thread(emit_logs, logs, "checkout", ["order placed", "payment taken"])
    await asyncio.to_thread(emit_metrics, metrics, "checkout")
    assert logs.results == [LogRecordExportResult.SUCCESS]
    assert metrics.results == [MetricExportResult.SUCCESS]

    (log_batch,) = running.sinks[Signal.LOGS].batches
    records = [r for rl in log_batch.request.resource_logs for sl in rl.scope_logs for r in sl.log_records]
    assert [(r.body.string_value, r.severity_text) for r in records] == [("order placed", "WARN"),
                                                                       ("payment taken", "WARN")]
    (metric_batch,) = running.sinks[Signal.METRICS].batches
    kinds = {m.name: m.WhichOneof("data") for rm in metric_batch.request.resource_metrics
             for sm in rm.scope_metrics for m in sm.metrics}
    assert {kinds[name] for name in METRIC_NAMES.values()} == set(METRIC_NAMES)
    assert metric_batch.item_count == 6
    assert not running.sinks[Signal.TRACES].batches
    counters = running.host.telemetry.registry
    labels = {"receiver": "otlp", "transport": protocol}
    assert counters.get_sample_value("tracehouse_receiver_accepted_log_records_total", labels) == 2
    assert counters.get_sample_value("tracehouse_receiver_accepted_metric_points_total", labels) == 6


async def test_a_signal_without_a_pipeline_is_404_on_http_and_unimplemented_on_grpc() -> None:
    """As the Collector answers when no pipeline of the signal names the receiver."""
    r = await start(Sink())  # a plain consumer: a traces pipeline only
    try:
        logs = log_exporter("http", r)
        await asyncio.to_thread(emit_logs, logs, "svc", ["lost?"])
        assert logs.results == [LogRecordExportResult.FAILURE]
        body = sdk_logs_request("svc", ["x"]).SerializeToString()
        resp = await r.http.post(r.url("/v1/logs"), content=body, headers=PB)
        assert resp.status_code == 404
        assert "no logs pipeline" in resp.text and "/v1/traces" in resp.text
        with pytest.raises(grpc.aio.AioRpcError) as err:
            await r.grpc(METRICS_EXPORT, sdk_metrics_request("svc").SerializeToString())
        assert err.value.code() == grpc.StatusCode.UNIMPLEMENTED
    finally:
        await stop(r)


# -- OTLP/JSON ------------------------------------------------------------------------------

async def test_otlp_json_logs_and_metrics_follow_the_spec(running: Running) -> None:
    """Hex ids, int64 as strings, enums as integers. The summary is made to the OTLP spec:
    the Python SDK never emits one."""
    logs = {"resourceLogs": [{"resource": {"attributes": [{"key": "service.name", "value": {"stringValue": "js"}}]},
                              "scopeLogs": [{"logRecords": [{
                                  "timeUnixNano": str(T), "severityNumber": 17, "severityText": "ERROR",
                                  "body": {"stringValue": "boom"},
                                  "traceId": "5B8EFFF798038103D269B633813FC60C", "spanId": "EEE19B7EC3C1B174",
                                  "attributes": [{"key": "n", "value": {"intValue": "9007199254740993"}}]}]}]}]}
    resp = await running.http.post(running.url("/v1/logs"), content=json.dumps(logs), headers=JSON)
    assert resp.status_code == 200 and resp.json() == {}
    (record,) = running.sinks[Signal.LOGS].batches[0].request.resource_logs[0].scope_logs[0].log_records
    assert record.trace_id.hex() == "5b8efff798038103d269b633813fc60c" and record.span_id.hex() == "eee19b7ec3c1b174"
    assert record.severity_number == 17 and record.attributes[0].value.int_value == 9007199254740993

    metrics = {"resourceMetrics": [{"scopeMetrics": [{"metrics": [{"name": "rpc.latency", "summary": {"dataPoints": [{
        "timeUnixNano": str(T), "count": "3", "sum": 1.5,
        "quantileValues": [{"quantile": 0.5, "value": 0.4}, {"quantile": 0.99, "value": 0.9}]}]}},
        {"name": "hits", "sum": {"aggregationTemporality": 2, "isMonotonic": True,
                                 "dataPoints": [{"timeUnixNano": str(T), "asInt": "5"}]}}]}]}]}
    resp = await running.http.post(running.url("/v1/metrics"), content=json.dumps(metrics), headers=JSON)
    assert resp.status_code == 200, resp.text
    batch = running.sinks[Signal.METRICS].batches[0]
    summary, hits = batch.request.resource_metrics[0].scope_metrics[0].metrics
    assert summary.summary.data_points[0].count == 3 and len(summary.summary.data_points[0].quantile_values) == 2
    assert hits.sum.aggregation_temporality == 2 and hits.sum.data_points[0].as_int == 5
    assert batch.item_count == 2


# -- bad input and partial success ------------------------------------------------------------

async def test_bad_payloads_are_400_naming_the_problem(running: Running) -> None:
    bad_id = {"resourceLogs": [{"scopeLogs": [{"logRecords": [{"traceId": "not-hex"}]}]}]}
    resp = await running.http.post(running.url("/v1/logs"), content=json.dumps(bad_id), headers=JSON)
    assert resp.status_code == 400
    assert "resourceLogs[0].scopeLogs[0].logRecords[0].traceId" in resp.json()["message"]
    resp = await running.http.post(running.url("/v1/metrics"), content=b"\xff\xff\xff\x0f junk", headers=PB)
    assert resp.status_code == 400 and b"malformed OTLP protobuf" in resp.content
    with pytest.raises(grpc.aio.AioRpcError) as err:
        await running.grpc(LOGS_EXPORT, b"\xff\xff\xff\x0f junk")
    assert err.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert not running.sinks[Signal.LOGS].batches and not running.sinks[Signal.METRICS].batches


async def test_unstorable_log_records_and_points_are_rejected_through_partial_success(running: Running) -> None:
    request = sdk_logs_request("svc", ["kept", "bad id", "too late"])
    records = request.resource_logs[0].scope_logs[0].log_records
    records[1].trace_id = b"\x01" * 5
    records[2].time_unix_nano = 2**63
    resp = await running.http.post(running.url("/v1/logs"), content=request.SerializeToString(), headers=PB)
    assert resp.status_code == 200
    partial = ExportLogsServiceResponse.FromString(resp.content).partial_success
    assert partial.rejected_log_records == 2
    assert "invalid trace_id '0101010101'" in partial.error_message and "(and 1 more)" in partial.error_message
    assert running.sinks[Signal.LOGS].item_count == 1

    metrics = sdk_metrics_request("svc")
    gauge = next(m for sm in metrics.resource_metrics[0].scope_metrics for m in sm.metrics if m.WhichOneof("data") == "gauge")
    metric_points(gauge)[0].time_unix_nano = 2**63
    response = ExportMetricsServiceResponse.FromString(await running.grpc(METRICS_EXPORT, metrics.SerializeToString()))
    assert response.partial_success.rejected_data_points == 1
    assert "time_unix_nano" in response.partial_success.error_message and gauge.name in response.partial_success.error_message
    assert running.sinks[Signal.METRICS].item_count == 5


# -- refusals ---------------------------------------------------------------------------------

async def test_the_memory_limiter_refuses_logs_retryably_and_nothing_is_dropped() -> None:
    host, sink = TestHost(), Sink()
    sink.block()
    limiter = MemoryLimiterProcessor(Settings(ComponentID("memory_limiter"), Kind.PROCESSOR, "logs"),
                                     MemoryLimiterConfig(max_in_flight_spans=3, retry_after=2), sink)
    await limiter.start(host)
    r = await start(SignalConsumers({Signal.LOGS: limiter, Signal.TRACES: Sink()}), host)
    try:
        body = sdk_logs_request("svc", ["a", "b"]).SerializeToString()
        first = asyncio.create_task(r.http.post(r.url("/v1/logs"), content=body, headers=PB))
        await asyncio.sleep(0.2)  # held by the stalled exporter: 2 records in flight
        resp = await r.http.post(r.url("/v1/logs"), content=body, headers=PB)
        assert resp.status_code == 429 and resp.headers["retry-after"] == "2"
        with pytest.raises(grpc.aio.AioRpcError) as err:
            await r.grpc(LOGS_EXPORT, body)
        assert err.value.code() == grpc.StatusCode.RESOURCE_EXHAUSTED
        status = rpc_status.from_call(err.value)
        assert status is not None and any(d.Is(error_details_pb2.RetryInfo.DESCRIPTOR) for d in status.details)
        sink.unblock()
        assert (await first).status_code == 200
        assert sink.item_count == 2  # the acknowledged request only: the refused ones were not taken
        refused = host.telemetry.registry.get_sample_value(
            "tracehouse_receiver_refused_log_records_total", {"receiver": "otlp", "transport": "http",
                                                              "reason": "overload"})
        assert refused == 2
    finally:
        await stop(r)
        await limiter.shutdown()


async def test_a_pipeline_that_cannot_store_now_is_answered_503_with_retry_after(running: Running) -> None:
    running.sinks[Signal.METRICS].error = RetryableError("ClickHouse insert failed", retry_after=4)
    resp = await running.http.post(running.url("/v1/metrics"), content=sdk_metrics_request("svc").SerializeToString(),
                                   headers=PB)
    assert resp.status_code == 503 and resp.headers["retry-after"] == "4"
    with pytest.raises(grpc.aio.AioRpcError) as err:
        await running.grpc(METRICS_EXPORT, sdk_metrics_request("svc").SerializeToString())
    assert err.value.code() == grpc.StatusCode.UNAVAILABLE
    assert not running.sinks[Signal.METRICS].batches


# -- tenants --------------------------------------------------------------------------------

async def test_logs_and_metrics_belong_to_the_key_s_tenant(tmp_path: Path) -> None:
    key = new_key()
    keys = tmp_path / "keys.yaml"
    keys.write_text(json.dumps({"keys": [{"name": "shop", "tenant": "shop", "kind": "ingest", "sha256": digest(key)}]}))
    ext = BearerTokenAuthExtension(Settings(ComponentID("bearertokenauth"), Kind.EXTENSION),
                                   BearerTokenAuthConfig(filename=str(keys)))
    host = TestHost(extensions={ComponentID("bearertokenauth"): ext})
    await ext.start(host)
    sinks = {signal: Sink() for signal in Signal}
    r = await start(SignalConsumers(sinks), host, AuthConfig(authenticator="bearertokenauth"))
    try:
        request = sdk_logs_request("svc", ["hello"])
        claim = request.resource_logs[0].resource.attributes.add()
        claim.key, claim.value.string_value = "tracehouse.tenant", "someone-else"
        body = request.SerializeToString()
        assert (await r.http.post(r.url("/v1/logs"), content=body, headers=PB)).status_code == 401
        resp = await r.http.post(r.url("/v1/logs"), content=body, headers={**PB, "authorization": f"Bearer {key}"})
        assert resp.status_code == 200
        await r.grpc(METRICS_EXPORT, sdk_metrics_request("svc").SerializeToString(),
                     metadata=(("authorization", f"Bearer {key}"),))
        (logs,), (metrics,) = sinks[Signal.LOGS].batches, sinks[Signal.METRICS].batches
        assert (logs.tenant, metrics.tenant) == ("shop", "shop")
        assert all(kv.key != "tracehouse.tenant" for kv in logs.request.resource_logs[0].resource.attributes)
    finally:
        await stop(r)
        await ext.shutdown()
