"""Logs and metrics made by the OpenTelemetry Python SDK, for the logs and metrics tests.

Two ways: `emit_logs` / `emit_metrics` run the SDK's providers with its OTLP exporters
against a running receiver (what an app does); `sdk_logs_request` / `sdk_metrics_request`
capture what the SDK produces with its in-memory exporter / reader and encode it with the
SDK's own OTLP encoder, for tests that need the wire payload itself (replays, refusals).
Summary metrics are the one kind the Python SDK never emits (tests build those to the
OTLP spec and say so).
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from typing import Any

from opentelemetry.exporter.otlp.proto.common._log_encoder import encode_logs
from opentelemetry.exporter.otlp.proto.common.metrics_encoder import encode_metrics
from opentelemetry.proto.collector.logs.v1.logs_service_pb2 import ExportLogsServiceRequest
from opentelemetry.proto.collector.metrics.v1.metrics_service_pb2 import ExportMetricsServiceRequest
from opentelemetry._logs import SeverityNumber
from opentelemetry.sdk._logs import Logger, LoggerProvider
from opentelemetry.sdk._logs.export import (
    BatchLogRecordProcessor,
    InMemoryLogRecordExporter,
    LogRecordExporter,
    LogRecordExportResult,
)
from opentelemetry.sdk.metrics import Histogram, MeterProvider
from opentelemetry.sdk.metrics.export import (
    AggregationTemporality,
    InMemoryMetricReader,
    MetricExporter,
    MetricExportResult,
    PeriodicExportingMetricReader,
)
from opentelemetry.sdk.metrics.view import ExponentialBucketHistogramAggregation, View
from opentelemetry.sdk.resources import Resource

# The metric kinds the SDK produces here, by instrument: gauge (synchronous gauge), sum
# (counter, and a non-monotonic up-down counter), histogram (explicit buckets), exponential
# histogram (a View with the exponential aggregation).
METRIC_NAMES = {"gauge": "app.queue.depth", "sum": "app.requests", "histogram": "app.latency",
                "exponential_histogram": "app.tokens"}


class Recording:
    """Wraps an SDK exporter and keeps the result of every export (the app's view of it)."""

    def __init__(self, exporter: Any):
        self.exporter = exporter
        self.results: list[Any] = []

    def export(self, batch: Any, **kwargs: Any) -> Any:
        result = self.exporter.export(batch, **kwargs)
        self.results.append(result)
        return result

    def shutdown(self, **kwargs: Any) -> None:
        self.exporter.shutdown(**kwargs)

    def force_flush(self, timeout_millis: float = 10_000) -> bool:
        return True


class RecordingLogExporter(Recording, LogRecordExporter):
    pass


class RecordingMetricExporter(Recording, MetricExporter):
    def __init__(self, exporter: Any):
        MetricExporter.__init__(self, preferred_temporality=exporter._preferred_temporality,
                                preferred_aggregation=exporter._preferred_aggregation)
        Recording.__init__(self, exporter)


def resource(service: str) -> Resource:
    return Resource.create({"service.name": service, "service.instance.id": uuid.uuid4().hex})


@contextmanager
def sdk_logger(exporter: Any, service: str) -> Iterator[Logger]:
    """An SDK logger (the Logs API, what instrumentations and logging bridges emit through)
    whose records go to `exporter` in one batch, flushed on exit."""
    provider = LoggerProvider(resource=resource(service))
    provider.add_log_record_processor(BatchLogRecordProcessor(exporter))
    try:
        yield provider.get_logger("signals", "1.0")
    finally:
        provider.force_flush()
        provider.shutdown()


def emit_logs(exporter: Any, service: str, messages: Sequence[str], *, tracer: Any = None) -> tuple[str, str]:
    """Emit `messages` (WARN, one attribute each) through the SDK; with a `tracer`, inside a
    span of it, so the records carry its ids. Returns the span's (trace id, span id) in hex."""
    ids = ("", "")
    with sdk_logger(exporter, service) as logger:
        def emit() -> None:
            for i, text in enumerate(messages):
                logger.emit(body=text, severity_number=SeverityNumber.WARN, severity_text="WARN",
                            attributes={"app.step": i})

        if tracer is not None:
            with tracer.start_as_current_span("work") as span:
                ctx = span.get_span_context()
                ids = (format(ctx.trace_id, "032x"), format(ctx.span_id, "016x"))
                emit()
        else:
            emit()
    return ids


def meter_provider(reader: Any, service: str) -> MeterProvider:
    return MeterProvider(resource=resource(service), metric_readers=[reader], views=[
        View(instrument_name=METRIC_NAMES["exponential_histogram"], aggregation=ExponentialBucketHistogramAggregation()),
    ])


def record_metrics(provider: MeterProvider) -> None:
    """One of each kind the SDK makes, with known values."""
    meter = provider.get_meter("signals", "1.0")
    meter.create_gauge(METRIC_NAMES["gauge"], unit="{item}", description="items waiting").set(7, {"queue": "a"})
    requests = meter.create_counter(METRIC_NAMES["sum"], unit="{request}")
    requests.add(3, {"route": "/chat"})
    requests.add(2, {"route": "/embed"})
    meter.create_up_down_counter("app.sessions").add(-1)
    latency = meter.create_histogram(METRIC_NAMES["histogram"], unit="ms")
    for value in (5, 50, 500):
        latency.record(value, {"route": "/chat"})
    tokens = meter.create_histogram(METRIC_NAMES["exponential_histogram"], unit="{token}")
    for value in (10, 100, 1000, 10000):
        tokens.record(value)


def emit_metrics(exporter: Any, service: str) -> None:
    """Record one of each kind and export once, as a periodic reader does (its last
    collection, on shutdown)."""
    reader = PeriodicExportingMetricReader(exporter, export_interval_millis=3_600_000)
    provider = meter_provider(reader, service)
    record_metrics(provider)
    provider.shutdown()


def sdk_logs_request(service: str, messages: Sequence[str]) -> ExportLogsServiceRequest:
    """The OTLP request the SDK's log exporters send for `messages`."""
    memory = InMemoryLogRecordExporter()
    emit_logs(memory, service, messages)
    return encode_logs(memory.get_finished_logs())


def sdk_metrics_request(service: str) -> ExportMetricsServiceRequest:
    """The OTLP request the SDK's metric exporters send for `record_metrics` (cumulative)."""
    reader = InMemoryMetricReader(preferred_temporality={Histogram: AggregationTemporality.CUMULATIVE})
    provider = meter_provider(reader, service)
    record_metrics(provider)
    data = reader.get_metrics_data()
    provider.shutdown()
    return encode_metrics(data)


__all__ = ["METRIC_NAMES", "LogRecordExportResult", "MetricExportResult", "RecordingLogExporter", "RecordingMetricExporter",
           "emit_logs", "emit_metrics", "sdk_logs_request", "sdk_metrics_request"]
